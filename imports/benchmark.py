"""Import throughput benchmark: the real pipeline against COPY + upsert, in the same run.

For each size, on files made by the project generator (fixed seed, no invalid
rows), three passes run through the real pipeline — `import_job_create` in
this process, planning and chunks in separate Celery worker processes over
Redis, PostgreSQL — and then through the baseline on the same file:

* insert: the agents table is empty;
* update: the same ids, every row changed (years_experience and
  transactions_ytd + 1, rewritten from the insert file);
* unchanged: the update file again;
* 1% changed: the update file with every 100th row changed (years_experience
  + 1), the nightly re-export the digests of imports.digests are for.

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
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from django.core.files import File
from django.db import connection
from django.test.utils import override_settings
from django.utils import timezone

from agents.generator import agent_file_write, agent_rows_generate
from agents.models import Agent

from .benchmark_report import BenchmarkError, BenchmarkReport, PassResult, report_json, report_table  # noqa: F401
from .benchmark_workers import (  # noqa: F401
    DISPOSABLE_NAME,
    SAMPLE_INTERVAL,
    WORKER_START_TIMEOUT,
    WORKER_STOP_TIMEOUT,
    WorkerPool,
    _postgres_version,
    _psycopg_params,
    _setting,
    autovacuum_emulate,
    broker_check,
    celery_broker,
    database_assert_disposable,
    database_url,
    queues_purge,
    tables_reset,
    worker_env,
)
from .models import ImportJob
from .services import import_job_create
from .tasks import IMPORT_QUEUE

DEFAULT_SIZES = (10, 100, 1_000, 10_000, 100_000, 500_000)
DEFAULT_WORKERS = 2
DEFAULT_CHUNK_SIZE = 5_000
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/14"
# How often a pass checks whether autovacuum (off on some CI servers) would have analyzed by now.
AUTOVACUUM_CHECK_INTERVAL = 1.0
SEED = 42
PASSES = ("insert", "update", "unchanged", "1% changed")
# Columns the update file changes in every row (kept within the validators' ranges).
UPDATED_COLUMNS = ("years_experience", "transactions_ytd")
# The 1% changed pass: every NIGHTLY_EVERY-th row of the update file, in changed_file_write's column.
NIGHTLY_EVERY = 100

Log = Callable[[str], None]


# --- files -----------------------------------------------------------------------------


def benchmark_files_write(rows: int, directory: Path, *, seed: int = SEED) -> tuple[Path, Path]:
    """(insert file, update file) for `rows` rows: the generator's output, and the same rows changed."""
    insert_path = directory / f"agents-{rows}.csv"
    update_path = directory / f"agents-{rows}-update.csv"
    agent_file_write(
        rows=agent_rows_generate(count=rows, seed=seed, invalid_rate=0.0), out=insert_path, fmt="csv"
    )
    changed_file_write(insert_path, update_path, every=1, columns=UPDATED_COLUMNS)
    return insert_path, update_path


def changed_file_write(
    source: Path, target: Path, *, every: int, columns: Sequence[str] = UPDATED_COLUMNS[:1]
) -> int:
    """Copy a generated CSV with every `every`-th row changed (integer `columns` + 1); returns rows changed.

    every=1 is the update pass; every=100 is a nightly re-export with 1% of its rows changed.
    """
    changed = 0
    with (
        source.open(newline="", encoding="utf-8") as src,
        target.open("w", newline="", encoding="utf-8") as dst,
    ):
        reader = csv.reader(src)
        writer = csv.writer(dst)
        header = next(reader)
        writer.writerow(header)
        positions = [header.index(c) for c in columns]
        for number, cells in enumerate(reader):
            if number % every == 0:
                for i in positions:
                    cells[i] = str(int(cells[i]) + 1)
                changed += 1
            writer.writerow(cells)
    return changed


# --- passes ------------------------------------------------------------------------------------


def pipeline_pass(path: Path, *, chunk_size: int, pool: WorkerPool, timeout: float) -> dict:
    """Import `path` through the real pipeline; wait for a terminal status."""
    pool.peaks_reset()
    started = time.perf_counter()
    with path.open("rb") as handle:
        job = import_job_create(file=File(handle), original_name=path.name, chunk_size=chunk_size)
    autovacuum_checked_at = started
    while True:
        status = ImportJob.objects.filter(pk=job.pk).values_list("status", flat=True).get()
        if status in ImportJob.TERMINAL:
            break
        pool.check_alive()
        now = time.perf_counter()
        if now - started > timeout:
            raise BenchmarkError(f"Import job {job.pk} ({path.name}) still {status} after {timeout:.0f} s.")
        if now - autovacuum_checked_at >= AUTOVACUUM_CHECK_INTERVAL:
            autovacuum_emulate(vacuum=False)
            autovacuum_checked_at = now
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
        "autovacuum": _setting("autovacuum"),
        "autovacuum_emulated": "with autovacuum off, ANALYZE agents and import_row_digests at "
        f"autovacuum's thresholds every {AUTOVACUUM_CHECK_INTERVAL:.0f} s during a pass, VACUUM ANALYZE between "
        "passes (untimed)",
        "nightly_pass_changes": f"every {NIGHTLY_EVERY}th row of the update file: {UPDATED_COLUMNS[0]} + 1",
        "baseline": "csv.reader + COPY into temp table + INSERT ... ON CONFLICT (id) DO UPDATE "
        "WHERE IS DISTINCT FROM; same table, indexes, FK and sync triggers",
    }
    return BenchmarkReport(results=results, meta=meta)


def _size_run(rows: int, *, root: Path, chunk_size: int, pool: WorkerPool, log: Log) -> list[PassResult]:
    log(f"{rows:,} rows: generating files ...")
    insert_file, update_file = benchmark_files_write(rows, root)
    nightly_file = root / f"agents-{rows}-nightly.csv"
    changed = changed_file_write(update_file, nightly_file, every=NIGHTLY_EVERY)
    files = {
        "insert": insert_file,
        "update": update_file,
        "unchanged": update_file,
        "1% changed": nightly_file,
    }
    expected = {
        "insert": {"created": rows},
        "update": {"updated": rows},
        "unchanged": {"unchanged": rows},
        "1% changed": {"created": 0, "updated": changed, "unchanged": rows - changed},
    }
    outcomes: dict[str, dict] = {}
    tables_reset()
    for phase in PASSES:
        outcome = pipeline_pass(files[phase], chunk_size=chunk_size, pool=pool, timeout=_pass_timeout(rows))
        outcomes[phase] = outcome
        autovacuum_emulate(vacuum=True)  # untimed: the next pass starts on what autovacuum would leave
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
        autovacuum_emulate(vacuum=True)
        log(
            f"{rows:,} rows {phase}: baseline {base['baseline_seconds']:.2f} s "
            f"({rows / base['baseline_seconds']:,.0f} rows/s), {base['baseline_written']:,} rows written"
        )
        outcome = outcomes[phase]
        outcome.pop("error_message")
        results.append(PassResult(rows=rows, phase=phase, expected=expected[phase], **outcome, **base))
    for path in (insert_file, update_file, nightly_file):
        path.unlink(missing_ok=True)
    return results
