"""Export benchmark: N agents exported in each format by real Celery workers, against the in-request export.

The agents are the project generator's rows loaded with COPY
(agents.benchmark.bench_fill). Each format is started through
`export_request` (as the admin's Export button does, forced to the
background) and run by `celery worker` processes (imports.benchmark_workers'
WorkerPool, which samples each process's peak RSS from /proc); the time is
from the request to the completed job, the file is checked for its row
count and deleted.

Baseline, in the same run: what the Export button did before, django-import-export
inside the request (`AgentResource().export()` into a tablib Dataset, then the
format's `export_data`), timed with its peak RSS in a fresh process of its own
(exports.benchmark_baseline). It holds every row in memory, so it runs on the
first `baseline_rows` agents only (all of them when N is smaller) and the
ratio compares rows per second.

Like benchmark_import, it refuses a database whose name does not say it is
disposable; `manage.py benchmark_export` creates one and runs this in a child
process pointed at it.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import override_settings

from agents.benchmark import bench_fill
from estateflow.storage import shared_storage
from imports.benchmark_report import BenchmarkError
from imports.benchmark_workers import (
    WorkerPool,
    _postgres_version,
    broker_check,
    celery_broker,
    database_assert_disposable,
    queues_purge,
    worker_env,
)

from .models import ExportJob
from .services import export_request
from .tasks import EXPORT_QUEUE

DEFAULT_ROWS = 100_000
DEFAULT_WORKERS = 2
DEFAULT_CHUNK_SIZE = 10_000
DEFAULT_BASELINE_ROWS = 20_000
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/12"  # its own: the benchmark purges its queues
SEED = 42
FORMATS = ("csv", "xlsx", "json")
BENCH_USERNAME = "benchmark-export"

Log = Callable[[str], None]


def _pass_timeout(rows: int) -> float:
    return 120 + rows / 100  # 500,000 rows: 85 min before we call it stuck


def background_pass(*, user, file_format: str, rows: int, chunk_size: int, pool: WorkerPool) -> dict:
    """One export through the workers: request -> completed job; the file's rows are counted."""
    pool.peaks_reset()
    started = time.perf_counter()
    with override_settings(EXPORT_DIRECT_MAX_ROWS=0):
        job = export_request(user=user, file_format=file_format, query_string="", chunk_size=chunk_size).job
    timeout = _pass_timeout(rows)
    while True:
        status = ExportJob.objects.filter(pk=job.pk).values_list("status", flat=True).get()
        if status in ExportJob.TERMINAL:
            break
        pool.check_alive()
        if time.perf_counter() - started > timeout:
            raise BenchmarkError(f"Export job {job.pk} ({file_format}) still {status} after {timeout:.0f} s.")
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    peak = pool.peak_mb()
    job.refresh_from_db()
    if job.status != ExportJob.Status.COMPLETED:
        raise BenchmarkError(f"Export job {job.pk} ({file_format}) {job.status}: {job.error_message}")
    chunks = job.chunks.order_by("index")
    chunk_ms = [ms or 0 for ms in chunks.values_list("duration_ms", flat=True)]
    last_chunk_end = max(c for c in chunks.values_list("finished_at", flat=True) if c)
    result = {
        "format": file_format,
        "rows": rows,
        "exported_rows": job.exported_rows,
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds, 1),
        "peak_worker_mb": peak,
        "file_mb": round((job.file_size or 0) / 1024**2, 1),
        "chunks": len(chunk_ms),
        "chunk_seconds_sum": round(sum(chunk_ms) / 1000, 2),
        "chunk_seconds_max": round(max(chunk_ms, default=0) / 1000, 2),
        "assembly_seconds": round((job.finished_at - last_chunk_end).total_seconds(), 2),
    }
    with contextlib.suppress(OSError):
        shared_storage().delete(job.file)
    return result


def baseline_pass(*, file_format: str, rows: int, env: dict[str, str]) -> dict:
    """The former in-request export of the first `rows` agents, in a fresh process (exports.benchmark_baseline)."""
    done = subprocess.run(
        [sys.executable, "-m", "exports.benchmark_baseline", file_format, str(rows)],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise BenchmarkError(f"Baseline {file_format} failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["baseline_rows"] != rows:
        raise BenchmarkError(f"Baseline {file_format}: {result['baseline_rows']:,} rows instead of {rows:,}.")
    return result


def benchmark_export_run(
    *,
    rows: int = DEFAULT_ROWS,
    workers: int = DEFAULT_WORKERS,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    baseline_rows: int = DEFAULT_BASELINE_ROWS,
    broker_url: str = DEFAULT_BROKER_URL,
    workdir: Path | None = None,
    log: Log = lambda message: None,
) -> dict:
    """Fill the (disposable) database with `rows` agents and export them in each format with real workers."""
    database_assert_disposable()
    broker_check(broker_url)
    load_start = os.getloadavg()
    log(f"Filling {rows:,} generated agents (COPY) ...")
    fill = bench_fill(rows=rows, seed=SEED, force=True, progress=log)
    user, _ = get_user_model().objects.get_or_create(
        username=BENCH_USERNAME, defaults={"is_staff": True, "is_superuser": True}
    )
    own_dir = workdir is None
    root = Path(tempfile.mkdtemp(prefix="estateflow-bench-export-")) if own_dir else Path(workdir)
    media_root = root / "media"
    media_root.mkdir(parents=True, exist_ok=True)
    results = []
    pool: WorkerPool | None = None
    try:
        with celery_broker(broker_url) as app, override_settings(MEDIA_ROOT=str(media_root)):
            queues_purge(app)
            env = worker_env(broker_url=broker_url, media_root=media_root)
            pool = WorkerPool(workers, env=env, log_dir=root)
            log(f"Starting {workers} Celery worker process(es) on queue {EXPORT_QUEUE!r} ({broker_url}) ...")
            pool.start(app)
            for file_format in FORMATS:
                result = background_pass(
                    user=user, file_format=file_format, rows=rows, chunk_size=chunk_size, pool=pool
                )
                log(
                    f"{file_format}: {result['seconds']:.1f} s ({result['rows_per_second']:,.0f} rows/s), "
                    f"peak worker {result['peak_worker_mb']} MB, {result['file_mb']} MB file, "
                    f"assembly {result['assembly_seconds']:.1f} s"
                )
                results.append(result)
    finally:
        if pool is not None:
            pool.stop()
            with contextlib.suppress(Exception), celery_broker(broker_url) as app:
                queues_purge(app)
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)
    measured = min(rows, baseline_rows)
    for result in results:
        log(f"{result['format']}: baseline (in-request django-import-export) on {measured:,} rows ...")
        result.update(baseline_pass(file_format=result["format"], rows=measured, env=env))
        result["speedup"] = round(result["rows_per_second"] / result["baseline_rows_per_second"], 1)
    meta = {
        "rows": rows,
        "cpu_count": os.cpu_count(),
        # Other work on the machine skews every figure: the 1-minute load before and after.
        "load_average": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
        "platform": f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
        "postgresql": _postgres_version(),
        "database": connection.settings_dict["NAME"],
        "workers": workers,
        "worker_command": f"celery -A estateflow worker -Q {EXPORT_QUEUE} -c 1 --pool prefork (one per worker)",
        "chunk_size": chunk_size,
        "fill": fill,
        "baseline": "django-import-export in the request: AgentResource().export() then the format's "
        f"export_data, on the first {measured:,} agents",
    }
    return {"results": results, "meta": meta}


def report_json(report: dict) -> str:
    return json.dumps(report, indent=2, default=str)


def report_table(report: dict) -> str:
    meta = report["meta"]
    lines = [
        f"Background exports of {meta['rows']:,} agents, {meta['workers']} worker process(es), "
        f"chunks of {meta['chunk_size']:,} rows; {meta['platform']}, {meta['postgresql']}, "
        f"{meta['cpu_count']} CPUs, load average {meta['load_average'][0]} -> {meta['load_average'][1]}",
        "",
        f"{'format':<6} {'seconds':>8} {'rows/s':>8} {'worker peak':>12} {'file':>8} {'assembly':>9} | "
        f"{'baseline rows':>13} {'seconds':>8} {'rows/s':>8} {'peak':>8} | {'speedup':>7}",
    ]
    for r in report["results"]:
        lines.append(
            f"{r['format']:<6} {r['seconds']:>8.1f} {r['rows_per_second']:>8,.0f} "
            f"{r['peak_worker_mb']!s:>9} MB {r['file_mb']:>5.0f} MB {r['assembly_seconds']:>7.1f} s | "
            f"{r['baseline_rows']:>13,} {r['baseline_seconds']:>8.1f} {r['baseline_rows_per_second']:>8,.0f} "
            f"{r['baseline_peak_mb']!s:>5} MB | {r['speedup']:>6}x"
        )
    lines += ["", f"Baseline: {meta['baseline']}."]
    return "\n".join(lines) + "\n"
