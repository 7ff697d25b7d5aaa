"""`manage.py benchmark_export --rows N`: background exports on real workers against the in-request export.

Like benchmark_import (whose database handling it reuses), it never runs on the
database the settings point at: it recreates a dedicated database (default
`estateflow_bench_export`), then runs itself again in a child process whose
DATABASE_URL is that database; the child migrates it and runs exports.benchmark.
"""

import os

from django.core.management.base import CommandError
from django.db import connection

from exports import benchmark
from imports.benchmark_report import BenchmarkError
from imports.management.commands import benchmark_import

CHILD_ENV = "ESTATEFLOW_EXPORT_BENCHMARK_DATABASE"


class Command(benchmark_import.Command):
    help = (
        "Export N generated agents as CSV, XLSX and JSON through real Celery workers (time, rows/s, worker "
        "peak RSS) and the former in-request django-import-export export on the same rows, in a dedicated "
        "database it recreates."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=benchmark.DEFAULT_ROWS)
        parser.add_argument("--workers", type=int, default=benchmark.DEFAULT_WORKERS,
                            help="Celery worker processes to start (default %(default)s).")  # fmt: skip
        parser.add_argument("--chunk-size", type=int, default=benchmark.DEFAULT_CHUNK_SIZE)
        parser.add_argument("--baseline-rows", type=int, default=benchmark.DEFAULT_BASELINE_ROWS,
                            help="Rows the in-request baseline exports (at most --rows; default %(default)s: "
                                 "it holds every row in memory).")  # fmt: skip
        parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
        parser.add_argument(
            "--broker-url",
            default=os.environ.get("BENCHMARK_BROKER_URL", benchmark.DEFAULT_BROKER_URL),
            help="Redis for the benchmark's own queues, which it purges (default %(default)s).",
        )
        parser.add_argument(
            "--database",
            default="estateflow_bench_export",
            help="Database to drop, create and migrate; its name must contain 'bench' (default %(default)s).",
        )

    def handle(self, *args, **options):
        if options["rows"] < 1 or options["baseline_rows"] < 1:
            raise CommandError("--rows and --baseline-rows must be at least 1")
        if options["workers"] < 1:
            raise CommandError("--workers must be at least 1")
        if not 100 <= options["chunk_size"] <= 100_000:
            raise CommandError("--chunk-size must be between 100 and 100,000")
        name = options["database"]
        if not benchmark_import.DATABASE_NAME.match(name):
            raise CommandError(f"--database {name!r}: use a lower-case name that contains 'bench'.")
        if os.environ.get(CHILD_ENV) == name and connection.settings_dict.get("NAME") == name:
            return self._benchmark(options)
        child_args = []
        for option in ("rows", "workers", "chunk_size", "baseline_rows", "broker_url", "database"):
            child_args += ["--" + option.replace("_", "-"), str(options[option])]
        child_args += ["--json"] if options["json"] else []
        self._child_run(options, child_env=CHILD_ENV, command="benchmark_export", child_args=child_args)

    def _benchmark(self, options: dict) -> None:
        self._child_prepare(options)
        try:
            report = benchmark.benchmark_export_run(
                rows=options["rows"],
                workers=options["workers"],
                chunk_size=options["chunk_size"],
                baseline_rows=options["baseline_rows"],
                broker_url=options["broker_url"],
                log=lambda message: self.stderr.write(message),
            )
        except BenchmarkError as exc:
            raise CommandError(str(exc)) from exc
        except KeyboardInterrupt:
            self.stderr.write("Interrupted: the benchmark's workers are stopped.")
            raise SystemExit(130) from None
        self.stdout.write(
            benchmark.report_json(report) if options["json"] else benchmark.report_table(report)
        )
