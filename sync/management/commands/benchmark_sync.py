from django.core.management.base import BaseCommand, CommandError

from sync.benchmark import benchmark_report_json, benchmark_report_text, benchmark_sync_run


class Command(BaseCommand):
    help = (
        "Full-sync N synthetic agents into a fresh local D1 engine (miniflare) and measure it against "
        "pushing the same pre-built requests straight to the same engine."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=10_000)
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args, rows: int, as_json: bool, **options):
        if rows < 1:
            raise CommandError("--rows must be positive")
        try:
            report = benchmark_sync_run(rows=rows)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(benchmark_report_json(report) if as_json else benchmark_report_text(report))
        if not report["verify"]["clean"]:
            raise CommandError("d1_verify found drift after the benchmark sync")
