"""`manage.py benchmark_import`: the import pipeline against COPY + upsert, in the same run.

The command never benchmarks on the database the settings point at. It
(re)creates a dedicated database (default `estateflow_bench`) on the same
PostgreSQL server, then runs itself again in a child process whose
DATABASE_URL is that database: the child migrates it, starts the Celery
workers with the same environment and runs imports.benchmark. A fresh process
means nothing configured for the developer's database (a cached connection,
a settings object) can be reached by the benchmark's TRUNCATEs.
"""

import os
import re
import signal
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from imports import benchmark

CHILD_ENV = "ESTATEFLOW_BENCHMARK_DATABASE"
DEFAULT_SERVER = {"HOST": "127.0.0.1", "PORT": "5432", "USER": "postgres", "PASSWORD": ""}
DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]*bench[a-z0-9_]*$")


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CommandError(f"--rows: {text!r} is not a comma-separated list of whole numbers") from None
    if not sizes or any(n < 1 for n in sizes):
        raise CommandError("--rows: give one or more sizes of at least 1 row")
    return sizes


class Command(BaseCommand):
    help = (
        "Benchmark the import pipeline end to end (real Celery workers on Redis, PostgreSQL) against "
        "COPY + INSERT ... ON CONFLICT on the same files, in a dedicated database it recreates."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rows", default=",".join(str(n) for n in benchmark.DEFAULT_SIZES),
                            help="Comma-separated sizes, run in order (default %(default)s).")  # fmt: skip
        parser.add_argument("--workers", type=int, default=benchmark.DEFAULT_WORKERS,
                            help="Celery worker processes to start (default %(default)s).")  # fmt: skip
        parser.add_argument("--chunk-size", type=int, default=benchmark.DEFAULT_CHUNK_SIZE)
        parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
        parser.add_argument(
            "--broker-url",
            default=os.environ.get("BENCHMARK_BROKER_URL", benchmark.DEFAULT_BROKER_URL),
            help="Redis for the benchmark's own queues, which it purges (default %(default)s).",
        )
        parser.add_argument(
            "--database",
            default="estateflow_bench",
            help="Database to drop, create and migrate on the server of DATABASE_URL; its name must "
            "contain 'bench' (default %(default)s).",
        )

    def handle(self, *args, **options):
        sizes = _sizes(options["rows"])
        if options["workers"] < 1:
            raise CommandError("--workers must be at least 1")
        if not 100 <= options["chunk_size"] <= 50_000:
            raise CommandError("--chunk-size must be between 100 and 50,000")
        name = options["database"]
        if not DATABASE_NAME.match(name):
            raise CommandError(f"--database {name!r}: use a lower-case name that contains 'bench'.")
        if os.environ.get(CHILD_ENV) == name and connection.settings_dict.get("NAME") == name:
            return self._run(sizes, options)
        return self._spawn(sizes, options)

    # --- parent: dedicated database, then this command again in a process pointed at it ---------
    def _server(self) -> dict:
        current = settings.DATABASES["default"]
        if current["ENGINE"].endswith("postgresql"):
            return {k: current.get(k) or "" for k in DEFAULT_SERVER} | {"NAME": current["NAME"]}
        return {**DEFAULT_SERVER, "NAME": ""}

    def _database_recreate(self, server: dict, name: str) -> None:
        import psycopg
        from psycopg import sql

        params = benchmark._psycopg_params({**server, "NAME": "postgres"})
        try:
            with psycopg.connect(**params, autocommit=True, connect_timeout=5) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.Error as exc:
            raise CommandError(
                f"Could not recreate database {name} on {server['HOST']}:{server['PORT']}: {exc}"
            ) from exc

    def _spawn(self, sizes: list[int], options: dict) -> None:
        child_args = [
            "--rows", ",".join(map(str, sizes)), "--workers", str(options["workers"]),
            "--chunk-size", str(options["chunk_size"]), "--broker-url", options["broker_url"],
            "--database", options["database"], *(["--json"] if options["json"] else []),
        ]  # fmt: skip
        self._child_run(options, child_env=CHILD_ENV, command="benchmark_import", child_args=child_args)

    def _child_run(self, options: dict, *, child_env: str, command: str, child_args: list[str]) -> None:
        """Recreate the dedicated database, run `command` again pointed at it, relay its output."""
        name = options["database"]
        server = self._server()
        if server["NAME"] == name:
            raise CommandError(f"DATABASE_URL points at {name}; {command} drops it. Pick another --database.")
        try:
            benchmark.broker_check(options["broker_url"])
        except benchmark.BenchmarkError as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"Recreating database {name} on {server['HOST']}:{server['PORT']} ...")
        self._database_recreate(server, name)
        env = dict(os.environ)
        env.update(
            {
                child_env: name,
                "DATABASE_URL": benchmark.database_url({**server, "NAME": name}),
                "CELERY_BROKER_URL": options["broker_url"],
                "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE")
                or settings.SETTINGS_MODULE,
                "DJANGO_DEBUG": "false",
            }
        )
        argv = [sys.executable, str(settings.BASE_DIR / "manage.py"), command, *child_args]
        child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True, cwd=settings.BASE_DIR)
        previous = signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
        try:
            for line in child.stdout:
                self.stdout.write(line, ending="")
            code = child.wait()
        except KeyboardInterrupt:
            # The child got the same Ctrl-C; let it stop its workers before we return.
            child.wait()
            raise SystemExit(130) from None
        finally:
            signal.signal(signal.SIGTERM, previous)
        if code:
            raise SystemExit(code)

    def _child_prepare(self, options: dict) -> None:
        """In the child: stop the workers on kill as on Ctrl-C, and migrate the fresh database."""

        def terminate(*_):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, terminate)
        self.stderr.write(f"Migrating {options['database']} ...")
        call_command("migrate", verbosity=0, interactive=False)

    # --- child: the benchmark itself, on the dedicated database ----------------------------------
    def _run(self, sizes: list[int], options: dict) -> None:
        self._child_prepare(options)
        try:
            report = benchmark.benchmark_run(
                sizes=sizes,
                workers=options["workers"],
                chunk_size=options["chunk_size"],
                broker_url=options["broker_url"],
                log=lambda message: self.stderr.write(message),
            )
        except benchmark.BenchmarkError as exc:
            raise CommandError(str(exc)) from exc
        except KeyboardInterrupt:
            self.stderr.write("Interrupted: the benchmark's workers are stopped.")
            raise SystemExit(130) from None
        self.stdout.write(
            benchmark.report_json(report) if options["json"] else benchmark.report_table(report)
        )
        if not report.ok:
            self.stderr.write("Some passes did not import every row as expected (see counts).")
            raise SystemExit(1)
