from django.core.management.base import BaseCommand, CommandError

from agents.benchmark import (
    BENCH_DATABASE,
    benchmark_admin_run,
    benchmark_report_json,
    benchmark_report_text,
)


class Command(BaseCommand):
    help = (
        "Fill a dedicated PostgreSQL database with N generated agents and measure the agent admin's "
        "changelist pages (p50/p95 server time, SQL queries) against the stock Django admin."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=500_000)
        parser.add_argument("--repeat", type=int, default=20, help="Measured requests per page.")
        parser.add_argument("--baseline-repeat", type=int, default=5)
        parser.add_argument("--no-baseline", action="store_true")
        parser.add_argument("--database", default=BENCH_DATABASE, help="Scratch database (created).")
        parser.add_argument("--refill", action="store_true", help="Refill even if the rows are there.")
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args, rows, repeat, baseline_repeat, no_baseline, database, refill, as_json, **opts):
        if rows < 1 or repeat < 1 or baseline_repeat < 1:
            raise CommandError("--rows, --repeat and --baseline-repeat must be positive")
        try:
            report = benchmark_admin_run(
                rows=rows,
                repeat=repeat,
                baseline_repeat=baseline_repeat,
                database=database,
                refill=refill,
                baseline=not no_baseline,
                progress=None if as_json else (lambda msg: self.stderr.write(msg)),
            )
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(benchmark_report_json(report) if as_json else benchmark_report_text(report))
