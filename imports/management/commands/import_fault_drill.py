"""`manage.py import_fault_drill`: SIGKILL workers during an import and its rollback, then check.

Like benchmark_import (whose database handling it reuses), it never runs on the
database the settings point at: it recreates a dedicated database (default
`estateflow_bench_drill`), then runs itself again in a child process whose
DATABASE_URL is that database; the child migrates it and runs imports.drill.
"""

import os

from django.core.management.base import CommandError
from django.db import connection

from imports import benchmark, drill
from imports.management.commands import benchmark_import

CHILD_ENV = "ESTATEFLOW_DRILL_DATABASE"


class Command(benchmark_import.Command):
    help = (
        "Fault drill: import a file over pre-loaded rows with real Celery workers while SIGKILLing "
        "random workers, check exact counts, roll back (killing a worker again) and check the agents "
        "checksum; in a dedicated database it recreates. Exits non-zero when a check fails."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=drill.DEFAULT_ROWS)
        parser.add_argument("--existing", type=int, default=drill.DEFAULT_EXISTING,
                            help="Rows pre-loaded (the file's first N) before the import (default %(default)s).")  # fmt: skip
        parser.add_argument("--kills", type=int, default=drill.DEFAULT_KILLS,
                            help="Workers SIGKILLed at random moments during the import (default %(default)s).")  # fmt: skip
        parser.add_argument("--workers", type=int, default=drill.DEFAULT_WORKERS)
        parser.add_argument("--chunk-size", type=int, default=drill.DEFAULT_CHUNK_SIZE)
        parser.add_argument("--seed", type=int, default=drill.DEFAULT_SEED,
                            help="Seeds the generated rows and the kill schedule (default %(default)s).")  # fmt: skip
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
        parser.add_argument(
            "--broker-url",
            default=os.environ.get("DRILL_BROKER_URL", drill.DEFAULT_BROKER_URL),
            help="Redis for the drill's own queues, which it purges (default %(default)s).",
        )
        parser.add_argument(
            "--database",
            default="estateflow_bench_drill",
            help="Database to drop, create and migrate; its name must contain 'bench' (default %(default)s).",
        )

    def handle(self, *args, **options):
        if options["workers"] < 1:
            raise CommandError("--workers must be at least 1")
        if options["rows"] < 1 or not 0 <= options["existing"] <= options["rows"]:
            raise CommandError("--rows must be at least 1 and --existing between 0 and --rows")
        if options["kills"] < 0:
            raise CommandError("--kills must be 0 or more")
        if not 100 <= options["chunk_size"] <= 50_000:
            raise CommandError("--chunk-size must be between 100 and 50,000")
        name = options["database"]
        if not benchmark_import.DATABASE_NAME.match(name):
            raise CommandError(f"--database {name!r}: use a lower-case name that contains 'bench'.")
        if os.environ.get(CHILD_ENV) == name and connection.settings_dict.get("NAME") == name:
            return self._drill(options)
        return self._spawn_drill(options)

    def _spawn_drill(self, options: dict) -> None:
        child_args = []
        for option in (
            "rows",
            "existing",
            "kills",
            "workers",
            "chunk_size",
            "seed",
            "broker_url",
            "database",
        ):
            child_args += ["--" + option.replace("_", "-"), str(options[option])]
        child_args += ["--json"] if options["json"] else []
        self._child_run(options, child_env=CHILD_ENV, command="import_fault_drill", child_args=child_args)

    def _drill(self, options: dict) -> None:
        self._child_prepare(options)
        try:
            report = drill.drill_run(
                rows=options["rows"],
                existing=options["existing"],
                kills=options["kills"],
                workers=options["workers"],
                chunk_size=options["chunk_size"],
                seed=options["seed"],
                broker_url=options["broker_url"],
                log=lambda message: self.stderr.write(message),
            )
        except benchmark.BenchmarkError as exc:
            raise CommandError(str(exc)) from exc
        except KeyboardInterrupt:
            self.stderr.write("Interrupted: the drill's workers are stopped.")
            raise SystemExit(130) from None
        self.stdout.write(drill.report_json(report) if options["json"] else drill.report_text(report))
        if not report.ok:
            raise SystemExit(1)
