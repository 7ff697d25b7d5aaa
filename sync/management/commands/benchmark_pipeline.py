"""`manage.py benchmark_pipeline --rows N`: a generated file to a verified D1, then the nightly 1% change.

Like benchmark_import (whose database handling it reuses), it never runs on
the database the settings point at: it recreates a dedicated database
(default `estateflow_bench_pipeline`), then runs itself again in a child
process whose DATABASE_URL is that database; the child migrates it and runs
sync.benchmark_pipeline. Exit 1 when a stage fails or a check does not hold.
"""

import os

from django.core.management.base import CommandError
from django.db import connection

from imports.benchmark_report import BenchmarkError
from imports.management.commands import benchmark_import
from sync import benchmark_pipeline
from sync.benchmark_pipeline_report import report_json, report_text

CHILD_ENV = "ESTATEFLOW_PIPELINE_DATABASE"


class Command(benchmark_import.Command):
    help = (
        "End to end on real Celery workers and a fresh local D1 engine: import a generated file, sync it "
        "to D1, d1_verify; then the same file with 1% of its rows changed, its import, the incremental "
        "sync and d1_verify. Reports time per stage and end to end, rows/s, requests and bytes to D1, and "
        "the ratio to the live system's 15.79 rows/s; in a dedicated database it recreates. Exits 1 when "
        "a stage fails or a check does not hold."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--rows", type=int, default=100_000, help="Rows of the file (default %(default)s)."
        )
        parser.add_argument("--workers", type=int, default=benchmark_pipeline.DEFAULT_WORKERS,
                            help="Celery worker processes to start (default %(default)s).")  # fmt: skip
        parser.add_argument("--chunk-size", type=int, default=benchmark_pipeline.DEFAULT_CHUNK_SIZE)
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
        parser.add_argument(
            "--broker-url",
            default=os.environ.get("PIPELINE_BROKER_URL", benchmark_pipeline.DEFAULT_BROKER_URL),
            help="Redis for the benchmark's own queues, which it purges (default %(default)s).",
        )
        parser.add_argument(
            "--database",
            default="estateflow_bench_pipeline",
            help="Database to drop, create and migrate; its name must contain 'bench' (default %(default)s).",
        )

    def handle(self, *args, **options):
        if options["rows"] < benchmark_pipeline.NIGHTLY_EVERY:
            raise CommandError(f"--rows must be at least {benchmark_pipeline.NIGHTLY_EVERY}")
        if options["workers"] < 1:
            raise CommandError("--workers must be at least 1")
        if not 100 <= options["chunk_size"] <= 50_000:
            raise CommandError("--chunk-size must be between 100 and 50,000")
        name = options["database"]
        if not benchmark_import.DATABASE_NAME.match(name):
            raise CommandError(f"--database {name!r}: use a lower-case name that contains 'bench'.")
        if os.environ.get(CHILD_ENV) == name and connection.settings_dict.get("NAME") == name:
            return self._pipeline(options)
        child_args = []
        for option in ("rows", "workers", "chunk_size", "broker_url", "database"):
            child_args += ["--" + option.replace("_", "-"), str(options[option])]
        child_args += ["--json"] if options["json"] else []
        return self._child_run(
            options, child_env=CHILD_ENV, command="benchmark_pipeline", child_args=child_args
        )

    def _pipeline(self, options: dict) -> None:
        self._child_prepare(options)
        try:
            report = benchmark_pipeline.benchmark_pipeline_run(
                rows=options["rows"],
                workers=options["workers"],
                chunk_size=options["chunk_size"],
                broker_url=options["broker_url"],
                log=lambda message: self.stderr.write(message),
            )
        except BenchmarkError as exc:
            raise CommandError(str(exc)) from exc
        except KeyboardInterrupt:
            self.stderr.write("Interrupted: the benchmark's workers and D1 engine are stopped.")
            raise SystemExit(130) from None
        self.stdout.write(report_json(report) if options["json"] else report_text(report))
        if not report.ok:
            self.stderr.write("A stage failed or a check does not hold (see FAIL above).")
            raise SystemExit(1)
