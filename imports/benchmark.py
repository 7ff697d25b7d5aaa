"""Import throughput benchmark: the real pipeline against COPY + upsert, in the same run.

For each size, on files made by the project generator (fixed seed, no invalid
rows), three passes run through the real pipeline — `import_job_create` in
this process, planning and chunks in separate Celery worker processes over
Redis, PostgreSQL — and then through the baseline on the same file:

* insert: the agents table is empty;
* update: the same ids, every row changed (years_experience and
  transactions_ytd + 1, rewritten from the insert file);
* unchanged: the update file again.

The baseline is what a hand-written loader would do: csv.reader, COPY into
a temp table, one INSERT ... ON CONFLICT (id) DO UPDATE ... WHERE IS
DISTINCT FROM into the same indexed agents table, commit, with psycopg
directly. It writes the same table, so it pays the same indexes, foreign
key and statement-level sync triggers; it does no validation, no identity
or slug resolution, no journal and no row errors.

This module truncates the agents and import tables of the database it runs
on; it refuses a database whose name does not say it is disposable
(`test_…` or containing `bench`). `manage.py benchmark_import` creates such a
database and runs this module in a process whose settings point at it.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.core.files import File
from django.db import connection
from django.test.utils import override_settings
from django.utils import timezone

from agents.generator import agent_file_write, agent_rows_generate
from agents.models import Agent

from .models import ImportJob
from .services import import_job_create
from .tasks import IMPORT_QUEUE

DEFAULT_SIZES = (10, 100, 1_000, 10_000, 100_000, 500_000)
DEFAULT_WORKERS = 2
DEFAULT_CHUNK_SIZE = 5_000
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/14"
SEED = 42
PASSES = ("insert", "update", "unchanged")
# Columns the update file changes in every row (kept within the validators' ranges).
UPDATED_COLUMNS = ("years_experience", "transactions_ytd")
WORKER_START_TIMEOUT = 90.0
WORKER_STOP_TIMEOUT = 15.0
SAMPLE_INTERVAL = 0.25
DISPOSABLE_NAME = re.compile(r"^test_|bench")

Log = Callable[[str], None]


class BenchmarkError(RuntimeError):
    """The benchmark cannot run or a pass did not finish; the message says why."""


# --- results -------------------------------------------------------------------------


@dataclass
class PassResult:
    rows: int
    phase: str  # insert | update | unchanged
    status: str
    pipeline_seconds: float  # job.created_at -> job.finished_at, from the database
    pipeline_wall_seconds: float  # this process: before import_job_create -> terminal status seen
    baseline_seconds: float
    baseline_written: int
    created: int
    updated: int
    unchanged: int
    failed: int
    chunks: int
    peak_worker_mb: float | None
    # Where the pipeline's time went: upload + planning (created -> planned), then the chunks.
    planning_seconds: float = 0.0
    chunk_seconds_sum: float = 0.0  # sum of ImportChunk.duration_ms (work inside chunk transactions)
    chunk_seconds_max: float = 0.0
    expected: dict = field(default_factory=dict)

    @property
    def pipeline_rows_per_second(self) -> float:
        return self.rows / self.pipeline_seconds if self.pipeline_seconds else 0.0

    @property
    def baseline_rows_per_second(self) -> float:
        return self.rows / self.baseline_seconds if self.baseline_seconds else 0.0

    @property
    def ratio(self) -> float | None:
        return self.pipeline_seconds / self.baseline_seconds if self.baseline_seconds else None

    @property
    def counts_ok(self) -> bool:
        actual = {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}
        return (
            self.status == ImportJob.Status.COMPLETED
            and self.failed == 0
            and all(actual[k] == v for k, v in self.expected.items())
        )

    def as_dict(self) -> dict:
        data = asdict(self)
        data["pass"] = data.pop("phase")
        data.update(
            pipeline_rows_per_second=round(self.pipeline_rows_per_second, 1),
            baseline_rows_per_second=round(self.baseline_rows_per_second, 1),
            ratio=round(self.ratio, 3) if self.ratio is not None else None,
            counts_ok=self.counts_ok,
        )
        for key in ("pipeline_seconds", "pipeline_wall_seconds", "baseline_seconds", "planning_seconds"):
            data[key] = round(data[key], 4)
        return data


@dataclass
class BenchmarkReport:
    results: list[PassResult]
    meta: dict

    @property
    def ok(self) -> bool:
        return all(r.counts_ok for r in self.results)

    def as_dict(self) -> dict:
        return {"meta": self.meta, "results": [r.as_dict() for r in self.results], "ok": self.ok}


def report_table(report: BenchmarkReport) -> str:
    head = (
        f"{'rows':>9}  {'pass':<9}  {'pipeline s':>10}  {'pipeline r/s':>12}  {'baseline s':>10}  "
        f"{'baseline r/s':>12}  {'ratio':>6}  {'peak worker MB':>14}  counts"
    )
    lines = [head, "-" * len(head)]
    for r in report.results:
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        peak = f"{r.peak_worker_mb:.0f}" if r.peak_worker_mb is not None else "-"
        counts = (
            "ok" if r.counts_ok else f"WRONG ({r.status}: {r.created}/{r.updated}/{r.unchanged}/{r.failed})"
        )
        lines.append(
            f"{r.rows:>9,}  {r.phase:<9}  {r.pipeline_seconds:>10.2f}  {r.pipeline_rows_per_second:>12,.0f}  "
            f"{r.baseline_seconds:>10.2f}  {r.baseline_rows_per_second:>12,.0f}  {ratio:>6}  {peak:>14}  {counts}"
        )
    m = report.meta
    lines += [
        "",
        f"Machine: {m['cpu_count']} cores, {m['platform']}; {m['postgresql']}; 1-minute load "
        f"{m['load_average'][0]} before, {m['load_average'][1]} after.",
        f"Pipeline: {m['workers']} Celery worker process(es) ({m['worker_command']}), chunk size "
        f"{m['chunk_size']:,}, broker {m['broker']}, database {m['database']}; seconds are "
        "job.created_at -> job.finished_at (file upload, planning, chunks, finalize).",
        "Baseline: csv.reader + COPY into a temp table + one INSERT ... ON CONFLICT (id) DO UPDATE "
        "... WHERE IS DISTINCT FROM, same indexed agents table, same FK and statement-level sync "
        "triggers; no validation, journal or row errors. ratio = pipeline s / baseline s.",
    ]
    return "\n".join(lines)


# --- files -----------------------------------------------------------------------------


def benchmark_files_write(rows: int, directory: Path, *, seed: int = SEED) -> tuple[Path, Path]:
    """(insert file, update file) for `rows` rows: the generator's output, and the same rows changed."""
    insert_path = directory / f"agents-{rows}.csv"
    update_path = directory / f"agents-{rows}-update.csv"
    agent_file_write(
        rows=agent_rows_generate(count=rows, seed=seed, invalid_rate=0.0), out=insert_path, fmt="csv"
    )
    with (
        insert_path.open(newline="", encoding="utf-8") as src,
        update_path.open("w", newline="", encoding="utf-8") as dst,
    ):
        reader = csv.reader(src)
        writer = csv.writer(dst)
        header = next(reader)
        writer.writerow(header)
        positions = [header.index(c) for c in UPDATED_COLUMNS]
        for cells in reader:
            for i in positions:
                cells[i] = str(int(cells[i]) + 1)
            writer.writerow(cells)
    return insert_path, update_path


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
        cursor.execute("TRUNCATE agents, sync_change, import_jobs CASCADE")
        cursor.execute("ANALYZE agents")


def _postgres_version() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        return f"PostgreSQL {cursor.fetchone()[0].split()[0]}"


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


# --- passes ------------------------------------------------------------------------------------


def pipeline_pass(path: Path, *, chunk_size: int, pool: WorkerPool, timeout: float) -> dict:
    """Import `path` through the real pipeline; wait for a terminal status."""
    pool.peaks_reset()
    started = time.perf_counter()
    with path.open("rb") as handle:
        job = import_job_create(file=File(handle), original_name=path.name, chunk_size=chunk_size)
    while True:
        status = ImportJob.objects.filter(pk=job.pk).values_list("status", flat=True).get()
        if status in ImportJob.TERMINAL:
            break
        pool.check_alive()
        if time.perf_counter() - started > timeout:
            raise BenchmarkError(f"Import job {job.pk} ({path.name}) still {status} after {timeout:.0f} s.")
        time.sleep(0.05)
    wall = time.perf_counter() - started
    peak = pool.peak_mb()
    job.refresh_from_db()
    chunk_ms = [ms or 0 for ms in job.chunks.values_list("duration_ms", flat=True)]
    outcome = {
        "status": job.status,
        "pipeline_seconds": (job.finished_at - job.created_at).total_seconds(),
        "pipeline_wall_seconds": wall,
        "created": job.created_rows,
        "updated": job.updated_rows,
        "unchanged": job.unchanged_rows,
        "failed": job.failed_rows,
        "chunks": len(chunk_ms),
        "peak_worker_mb": peak,
        "planning_seconds": (job.planned_at - job.created_at).total_seconds() if job.planned_at else 0.0,
        "chunk_seconds_sum": sum(chunk_ms) / 1000,
        "chunk_seconds_max": max(chunk_ms, default=0) / 1000,
        "error_message": job.error_message,
    }
    for name in filter(None, (job.file.name, job.staged_file)):
        with contextlib.suppress(OSError):
            job.file.storage.delete(name)
    return outcome


def _baseline_sql(header: list[str]) -> tuple[str, str, list]:
    """(temp table DDL, upsert SQL, upsert params) for a file with these columns."""
    fields = {f.column: f for f in Agent._meta.concrete_fields}
    unknown = [c for c in header if c not in fields]
    if unknown or "id" not in header:
        raise BenchmarkError(f"Baseline: the file's columns {unknown} are not agents columns (or no id).")
    now = timezone.now()
    extra_columns, extra_values, params = [], [], []
    for column, f in fields.items():
        if column in header:
            continue
        if column == "slug":  # NOT NULL UNIQUE, no default: the id is unique
            extra_columns.append(column)
            extra_values.append("s.id")
        elif column in ("created_at", "updated_at"):
            extra_columns.append(column)
            extra_values.append("%s")
            params.append(now)
        elif f.has_default():
            from psycopg.types.json import Jsonb

            value = f.get_default()
            extra_columns.append(column)
            extra_values.append("%s")
            params.append(Jsonb(value) if f.get_internal_type() == "JSONField" else value)
    file_columns = ", ".join(header)
    updated = [c for c in header if c != "id"]
    ddl = f"CREATE TEMP TABLE bench_stage ON COMMIT DROP AS SELECT {file_columns} FROM agents WITH NO DATA"  # noqa: S608
    upsert = (
        f"INSERT INTO agents ({file_columns}, {', '.join(extra_columns)}) "  # noqa: S608
        f"SELECT {', '.join('s.' + c for c in header)}, {', '.join(extra_values)} FROM bench_stage s "
        f"ON CONFLICT (id) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in updated)}, "
        f"updated_at = EXCLUDED.updated_at "
        f"WHERE ROW({', '.join('agents.' + c for c in updated)}) "
        f"IS DISTINCT FROM ROW({', '.join('EXCLUDED.' + c for c in updated)})"
    )
    return ddl, upsert, params


def baseline_pass(path: Path) -> dict:
    """csv.reader + COPY into a temp table + one upsert + commit, timed; psycopg directly."""
    import psycopg

    with path.open(newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    ddl, upsert, params = _baseline_sql(header)
    with psycopg.connect(**_psycopg_params(connection.settings_dict)) as conn:
        started = time.perf_counter()
        with conn.cursor() as cursor, path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            next(reader)
            cursor.execute(ddl)
            with cursor.copy(f"COPY bench_stage ({', '.join(header)}) FROM STDIN") as copy:  # noqa: S608
                for cells in reader:
                    copy.write_row([c or None for c in cells])
            cursor.execute(upsert, params)
            written = cursor.rowcount
        conn.commit()
        seconds = time.perf_counter() - started
    return {"baseline_seconds": seconds, "baseline_written": written}


# --- the run -------------------------------------------------------------------------------------


def _pass_timeout(rows: int) -> float:
    return 120 + rows / 200  # generous: 500,000 rows may take 40 min before we call it stuck


def benchmark_run(
    *,
    sizes: Sequence[int] = DEFAULT_SIZES,
    workers: int = DEFAULT_WORKERS,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    broker_url: str = DEFAULT_BROKER_URL,
    workdir: Path | None = None,
    log: Log = lambda message: None,
) -> BenchmarkReport:
    """Run every size's passes on the current (disposable) database with real workers."""
    database_assert_disposable()
    if workers < 1:
        raise BenchmarkError("--workers must be at least 1.")
    broker_check(broker_url)
    load_start = os.getloadavg()
    own_dir = workdir is None
    root = Path(tempfile.mkdtemp(prefix="estateflow-bench-")) if own_dir else Path(workdir)
    media_root = root / "media"
    media_root.mkdir(parents=True, exist_ok=True)
    results: list[PassResult] = []
    pool: WorkerPool | None = None
    try:
        with celery_broker(broker_url) as app, override_settings(MEDIA_ROOT=str(media_root)):
            queues_purge(app)
            env = worker_env(broker_url=broker_url, media_root=media_root)
            pool = WorkerPool(workers, env=env, log_dir=root)
            log(f"Starting {workers} Celery worker process(es) on queue {IMPORT_QUEUE!r} ({broker_url}) ...")
            pool.start(app)
            for rows in sizes:
                results.extend(_size_run(rows, root=root, chunk_size=chunk_size, pool=pool, log=log))
            tables_reset()
    finally:
        if pool is not None:
            pool.stop()
            with contextlib.suppress(Exception), celery_broker(broker_url) as app:
                queues_purge(app)
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)
    meta = {
        "cpu_count": os.cpu_count(),
        # Other work on the machine skews every figure: the 1-minute load before and after.
        "load_average": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
        "platform": f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
        "postgresql": _postgres_version(),
        "database": connection.settings_dict["NAME"],
        "broker": broker_url,
        "workers": workers,
        "worker_command": "celery -A estateflow worker -Q imports -c 1 --pool prefork (one per worker)",
        "chunk_size": chunk_size,
        "seed": SEED,
        "sizes": list(sizes),
        "update_pass_changes": list(UPDATED_COLUMNS),
        "baseline": "csv.reader + COPY into temp table + INSERT ... ON CONFLICT (id) DO UPDATE "
        "WHERE IS DISTINCT FROM; same table, indexes, FK and sync triggers",
    }
    return BenchmarkReport(results=results, meta=meta)


def _size_run(rows: int, *, root: Path, chunk_size: int, pool: WorkerPool, log: Log) -> list[PassResult]:
    log(f"{rows:,} rows: generating files ...")
    insert_file, update_file = benchmark_files_write(rows, root)
    files = {"insert": insert_file, "update": update_file, "unchanged": update_file}
    expected = {"insert": {"created": rows}, "update": {"updated": rows}, "unchanged": {"unchanged": rows}}
    outcomes: dict[str, dict] = {}
    tables_reset()
    for phase in PASSES:
        outcome = pipeline_pass(files[phase], chunk_size=chunk_size, pool=pool, timeout=_pass_timeout(rows))
        outcomes[phase] = outcome
        log(
            f"{rows:,} rows {phase}: pipeline {outcome['pipeline_seconds']:.2f} s "
            f"({rows / outcome['pipeline_seconds']:,.0f} rows/s) {outcome['status']}, "
            f"{outcome['created']:,} created / {outcome['updated']:,} updated / "
            f"{outcome['unchanged']:,} unchanged / {outcome['failed']:,} rejected; upload+planning "
            f"{outcome['planning_seconds']:.2f} s, {outcome['chunks']} chunks {outcome['chunk_seconds_sum']:.2f} s "
            f"in all (longest {outcome['chunk_seconds_max']:.2f} s), peak worker {outcome['peak_worker_mb']} MB"
            + (f": {outcome['error_message'][:300]}" if outcome["error_message"] else "")
        )
    tables_reset()
    results = []
    for phase in PASSES:
        base = baseline_pass(files[phase])
        log(
            f"{rows:,} rows {phase}: baseline {base['baseline_seconds']:.2f} s "
            f"({rows / base['baseline_seconds']:,.0f} rows/s), {base['baseline_written']:,} rows written"
        )
        outcome = outcomes[phase]
        outcome.pop("error_message")
        results.append(PassResult(rows=rows, phase=phase, expected=expected[phase], **outcome, **base))
    for path in (insert_file, update_file):
        path.unlink(missing_ok=True)
    return results


def report_json(report: BenchmarkReport) -> str:
    return json.dumps(report.as_dict(), indent=2)
