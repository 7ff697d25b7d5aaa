"""The benchmark's database guards, Celery broker and worker pool (also used by imports.drill).

Split out of imports.benchmark (which re-exports these names).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

from .benchmark_report import BenchmarkError
from .tasks import IMPORT_QUEUE

WORKER_START_TIMEOUT = 90.0
WORKER_STOP_TIMEOUT = 15.0
SAMPLE_INTERVAL = 0.25
DISPOSABLE_NAME = re.compile(r"^test_|bench")


# --- database ----------------------------------------------------------------------------


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for a PostgreSQL settings dict (what the workers are given)."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{quote(settings_dict['NAME'], safe='')}"


def _psycopg_params(settings_dict: dict) -> dict:
    params = {
        "dbname": settings_dict["NAME"],
        "user": settings_dict.get("USER") or None,
        "password": settings_dict.get("PASSWORD") or None,
        "host": settings_dict.get("HOST") or None,
        "port": settings_dict.get("PORT") or None,
    }
    return {k: v for k, v in params.items() if v is not None}


def database_assert_disposable() -> None:
    name = connection.settings_dict["NAME"]
    if not DISPOSABLE_NAME.search(name):
        raise BenchmarkError(
            f"Refusing to benchmark on database {name!r}: it truncates the agents and import tables. "
            "Use a database whose name starts with test_ or contains 'bench' "
            "(manage.py benchmark_import creates estateflow_bench)."
        )


def tables_reset() -> None:
    """Empty agents and everything an import wrote (the database is disposable, see above)."""
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE agents, sync_change, import_jobs, import_row_digests CASCADE")
        cursor.execute("ANALYZE agents")


# Tables whose statistics and visibility maps the import's queries rely on.
AUTOVACUUM_TABLES = ("agents", "import_row_digests")


def autovacuum_emulate(*, vacuum: bool) -> list[str]:
    """On a server that runs with autovacuum off, ANALYZE (and VACUUM) the tables above when autovacuum would.

    Production runs autovacuum; a CI server may not (this one's conf.d sets
    autovacuum = off). Without it the agents table keeps the statistics of an
    empty table for the whole run, the planner picks plans that grow with the
    table, and index-only scans visit the heap for every row. Same rules as
    autovacuum, from the server's settings: ANALYZE once the rows changed since
    the last analyze exceed autovacuum_analyze_threshold + scale_factor x rows;
    with `vacuum`, VACUUM ANALYZE once dead or inserted rows exceed their
    thresholds. Returns what it ran.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.relname, "
            "  s.n_dead_tup > current_setting('autovacuum_vacuum_threshold')::float"
            "   + current_setting('autovacuum_vacuum_scale_factor')::float * greatest(c.reltuples, 0) "
            "  OR s.n_ins_since_vacuum > current_setting('autovacuum_vacuum_insert_threshold')::float"
            "   + current_setting('autovacuum_vacuum_insert_scale_factor')::float * greatest(c.reltuples, 0), "
            "  s.n_mod_since_analyze > current_setting('autovacuum_analyze_threshold')::float"
            "   + current_setting('autovacuum_analyze_scale_factor')::float * greatest(c.reltuples, 0) "
            "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
            "WHERE current_setting('autovacuum') = 'off' AND s.relname = ANY(%s)",
            [list(AUTOVACUUM_TABLES)],
        )
        due = cursor.fetchall()
        ran = []
        for name, vacuum_due, analyze_due in due:  # names from AUTOVACUUM_TABLES
            if vacuum and vacuum_due:
                ran.append(f"VACUUM (ANALYZE) {name}")
            elif analyze_due:
                ran.append(f"ANALYZE {name}")
        for statement in ran:
            cursor.execute(statement)
    return ran


def _setting(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s)", [name])
        return cursor.fetchone()[0]


def _postgres_version() -> str:
    return f"PostgreSQL {_setting('server_version').split()[0]}"


# --- broker ------------------------------------------------------------------------------


def _celery_app():
    from estateflow.celery import app

    return app


def _celery_pools_reset(app) -> None:
    # Drop, never close: other holders of the old pool (a test process's
    # publishers) would fail with "Acquire on closed pool".
    app._pool = None
    app.amqp._producer_pool = None


@contextlib.contextmanager
def celery_broker(broker_url: str) -> Iterator:
    """Publish to `broker_url` for real (never eager) while the block runs."""
    app = _celery_app()
    saved = (app.conf.broker_url, app.conf.task_always_eager, os.environ.get("CELERY_BROKER_URL"))
    # Celery lets the CELERY_BROKER_URL environment variable override the configuration.
    os.environ["CELERY_BROKER_URL"] = broker_url
    app.conf.broker_url = broker_url
    app.conf.task_always_eager = False
    _celery_pools_reset(app)
    try:
        yield app
    finally:
        _celery_pools_reset(app)
        app.conf.broker_url, app.conf.task_always_eager, env = saved
        if env is None:
            os.environ.pop("CELERY_BROKER_URL", None)
        else:
            os.environ["CELERY_BROKER_URL"] = env


def broker_check(broker_url: str) -> None:
    """Fail with a clear message when no broker answers at `broker_url`."""
    from kombu import Connection

    if not broker_url.startswith(("redis://", "rediss://")):
        raise BenchmarkError(f"The benchmark needs a Redis broker; got {broker_url!r}.")
    try:
        with Connection(broker_url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=3)
    except Exception as exc:
        raise BenchmarkError(
            f"No Celery broker reachable at {broker_url} ({exc.__class__.__name__}: {exc}). "
            "Start Redis (redis-server --port 6379) or pass --broker-url; the benchmark never runs "
            "tasks in-process."
        ) from exc


def queues_purge(app) -> None:
    """Drop leftovers: chunks of an interrupted run, sync requests our jobs enqueued."""
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in (IMPORT_QUEUE, app.conf.task_default_queue):
            with contextlib.suppress(Exception):
                channel.queue_purge(queue)


# --- workers -------------------------------------------------------------------------------


def _proc_status_kb(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _proc_children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


class WorkerPool:
    """N `celery worker -Q imports -c 1 --pool prefork` processes, each in its own session.

    Separate worker processes (not one worker with -c N) so each has its own
    broker connection and prefetch of one chunk, like one worker per core or
    container in production, and so peak memory is per worker. prefork (not
    solo) because the chunk task's soft time limit needs it.
    """

    def __init__(self, count: int, *, env: dict[str, str], log_dir: Path):
        self.count = count
        self.env = env
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []
        self.names: list[str] = []
        self._peak_kb = 0
        self._lock = threading.Lock()
        self._stop_sampling = threading.Event()
        self._sampler: threading.Thread | None = None

    def command(self, name: str) -> list[str]:
        return [
            sys.executable, "-m", "celery", "-A", "estateflow", "worker",
            "-Q", IMPORT_QUEUE, "-c", "1", "--pool", "prefork", "-n", name,
            "--without-gossip", "--without-mingle", "-l", "WARNING",
        ]  # fmt: skip

    def start(self, app) -> None:
        host = socket.gethostname()
        for i in range(self.count):
            self.spawn(f"bench{i + 1}-{os.getpid()}@{host}", log_name=f"worker-{i + 1}.log")
        self.wait_ready(app)
        self._sampler = threading.Thread(target=self._sample_loop, name="bench-rss", daemon=True)
        self._sampler.start()

    def spawn(self, name: str, *, log_name: str) -> subprocess.Popen:
        """Start one worker process (not waiting for it), in its own session and process group."""
        log_file = (self.log_dir / log_name).open("wb")
        proc = subprocess.Popen(
            self.command(name),
            cwd=settings.BASE_DIR,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us, not them: we stop them ourselves
        )
        log_file.close()
        self.procs.append(proc)
        self.names.append(name)
        return proc

    def wait_ready(self, app, names: Sequence[str] | None = None) -> None:
        """Wait until every worker in `names` (default: all) answers a ping."""
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        waiting = set(self.names if names is None else names)
        while waiting:
            self.check_alive()
            if time.monotonic() > deadline:
                raise BenchmarkError(
                    f"Workers {sorted(waiting)} did not answer a ping within {WORKER_START_TIMEOUT:.0f} s."
                    + self.logs_tail()
                )
            replies = app.control.ping(destination=sorted(waiting), timeout=1.0) or []
            for reply in replies:
                waiting -= set(reply)

    def check_alive(self) -> None:
        for proc, name in zip(self.procs, self.names, strict=True):
            if proc.poll() is not None:
                raise BenchmarkError(f"Worker {name} exited with code {proc.returncode}." + self.logs_tail())

    def logs_tail(self, lines: int = 30) -> str:
        out = []
        for path in sorted(self.log_dir.glob("worker-*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            if text:
                out.append(f"\n--- {path.name} (last {len(text)} lines) ---\n" + "\n".join(text))
        return "".join(out)

    def pids(self) -> list[int]:
        """Worker main processes and their pool children (the ones that run the chunks)."""
        pids = []
        for proc in self.procs:
            if proc.poll() is None:
                pids.append(proc.pid)
                pids.extend(_proc_children(proc.pid))
        return pids

    def _sample(self) -> None:
        peak = max((_proc_status_kb(pid, "VmHWM") or 0 for pid in self.pids()), default=0)
        with self._lock:
            self._peak_kb = max(self._peak_kb, peak)

    def _sample_loop(self) -> None:
        while not self._stop_sampling.wait(SAMPLE_INTERVAL):
            self._sample()

    def peaks_reset(self) -> None:
        """Reset the kernel's per-process peak RSS (clear_refs 5), so each pass reads its own."""
        for pid in self.pids():
            with contextlib.suppress(OSError), open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as fh:
                fh.write("5")
        with self._lock:
            self._peak_kb = 0

    def peak_mb(self) -> float | None:
        self._sample()
        with self._lock:
            return round(self._peak_kb / 1024, 1) if self._peak_kb else None

    def stop(self) -> None:
        self._stop_sampling.set()
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)  # warm shutdown of this worker and its pool
        deadline = time.monotonic() + WORKER_STOP_TIMEOUT
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # Pool children of a worker that was killed: same process group, started by us.
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        if self._sampler is not None:
            self._sampler.join(timeout=2)


def worker_env(*, broker_url: str, media_root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE") or settings.SETTINGS_MODULE,
        DATABASE_URL=database_url(connection.settings_dict),
        CELERY_BROKER_URL=broker_url,
        CELERY_TASK_ALWAYS_EAGER="false",
        DJANGO_MEDIA_ROOT=str(media_root),
        # Production-like: DEBUG keeps every query in memory.
        DJANGO_DEBUG="false",
        LOG_LEVEL="WARNING",
    )
    env.pop("CELERY_RESULT_BACKEND", None)
    return env
