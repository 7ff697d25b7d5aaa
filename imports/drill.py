"""Fault drill: an import killed repeatedly by SIGKILL, then an exact rollback, on real workers.

Against a disposable database (see imports.benchmark: the same guards, files,
broker and worker pool), the drill

1. pre-loads the first `existing` rows of the generated file with COPY +
   upsert (imports.benchmark.baseline_pass) and takes agents_table_checksum;
2. imports the whole file changed in every row (benchmark's update file), so
   the existing rows are updated and the others created, with N Celery worker
   processes, and SIGKILLs a random worker's process group `kills` times at
   random moments (seeded RNG) while the job runs; each time a replacement
   worker starts (its start-up recovery re-enqueues the chunk the dead worker
   held), and after the last kill import_job_resume re-enqueues what died in
   a killed worker's prefetch, as an operator would;
3. checks the counts, that no row or journal entry exists twice, and
4. rolls the import back with the workers, killing one mid-rollback and
   resuming, and checks the table checksum equals the one taken before.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from django.core.files import File
from django.db import connection
from django.test.utils import override_settings

from agents.selectors import agents_table_checksum

from .benchmark import (
    baseline_pass,
    benchmark_files_write,
    broker_check,
    celery_broker,
    database_assert_disposable,
    queues_purge,
    tables_reset,
    worker_env,
)
from .drill_report import Check, DrillError, DrillReport, Kill, report_json, report_text  # noqa: F401
from .drill_workers import (  # noqa: F401
    POLL,
    PRIOR_ROWS_PER_SECOND,
    KillableWorkerPool,
    _chunk_progress,
    _head_file,
    _job_status,
    _next_delay,
    _sleep_while_running,
    _timeout,
    _wait,
)
from .models import ImportChunk, ImportJob, ImportJournalEntry, ImportRollback, ImportRollbackChunk
from .rollback import import_rollback_request, import_rollback_resume
from .services import import_job_create, import_job_resume

DEFAULT_ROWS = 200_000
DEFAULT_EXISTING = 100_000
DEFAULT_KILLS = 5
DEFAULT_WORKERS = 2
DEFAULT_CHUNK_SIZE = 5_000
DEFAULT_SEED = 42
# Redis databases in use elsewhere: 15 tests, 14 benchmark_import, 13 test_benchmark, 12 someone else's.
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/10"

Log = Callable[[str], None]


# --- the drill ------------------------------------------------------------------------------------


def drill_run(
    *,
    rows: int = DEFAULT_ROWS,
    existing: int = DEFAULT_EXISTING,
    kills: int = DEFAULT_KILLS,
    workers: int = DEFAULT_WORKERS,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    seed: int = DEFAULT_SEED,
    broker_url: str = DEFAULT_BROKER_URL,
    workdir: Path | None = None,
    log: Log = lambda message: None,
) -> DrillReport:
    """Run the drill on the current (disposable) database; it truncates agents and imports."""
    database_assert_disposable()
    if workers < 1:
        raise DrillError("--workers must be at least 1.")
    if rows < 1 or not 0 <= existing <= rows:
        raise DrillError("--rows must be at least 1 and --existing between 0 and --rows.")
    if kills < 0:
        raise DrillError("--kills must be 0 or more.")
    broker_check(broker_url)
    rng = random.Random(seed)
    own_dir = workdir is None
    root = Path(tempfile.mkdtemp(prefix="estateflow-drill-")) if own_dir else Path(workdir)
    media_root = root / "media"
    media_root.mkdir(parents=True, exist_ok=True)
    pool: KillableWorkerPool | None = None
    started = time.perf_counter()
    try:
        with celery_broker(broker_url) as app, override_settings(MEDIA_ROOT=str(media_root)):
            queues_purge(app)
            tables_reset()
            log(f"Generating {rows:,} rows (seed {seed}) ...")
            insert_file, update_file = benchmark_files_write(rows, root, seed=seed)
            timings: dict = {}
            t = time.perf_counter()
            if existing:
                head = _head_file(insert_file, existing, root / f"agents-{existing}-existing.csv")
                baseline_pass(head)
            timings["preload_seconds"] = round(time.perf_counter() - t, 2)
            before = agents_table_checksum()
            log(f"Pre-loaded {before['rows']:,} rows by COPY; checksum {before['md5']}")
            pool = KillableWorkerPool(workers, env=worker_env(broker_url=broker_url, media_root=media_root),
                                      log_dir=root)  # fmt: skip
            log(f"Starting {workers} Celery worker process(es) ({broker_url}) ...")
            pool.start(app)
            report = _drill(
                app, pool, rng, file=update_file, rows=rows, existing=existing, kills=kills,
                workers=workers, chunk_size=chunk_size, before=before, timings=timings, log=log,
            )  # fmt: skip
            tables_reset()
    finally:
        if pool is not None:
            pool.stop()
            with contextlib.suppress(Exception), celery_broker(broker_url) as app:
                queues_purge(app)
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)
    report.timings["total_seconds"] = round(time.perf_counter() - started, 2)
    report.meta.update(
        rows=rows, existing=existing, kills_requested=kills, workers=workers, chunk_size=chunk_size,
        seed=seed, broker=broker_url, database=connection.settings_dict["NAME"], cpu_count=os.cpu_count(),
    )  # fmt: skip
    return report


def _drill(app, pool, rng, *, file, rows, existing, kills, workers, chunk_size, before, timings, log):
    checks: list[Check] = []
    kill_log: list[Kill] = []
    timeout = _timeout(rows)

    # --- the import, with kills -----------------------------------------------------------------
    t = time.perf_counter()
    with file.open("rb") as handle:
        job = import_job_create(file=File(handle), original_name=file.name, chunk_size=chunk_size)
    _wait(lambda: _job_status(job.pk) != ImportJob.Status.PENDING and _job_status(job.pk) != "planning",
          timeout=timeout, what="planning", pool=pool)  # fmt: skip
    running_since = time.monotonic()
    log(f"Import job {job.pk} running: {job.chunks.count()} chunks; {kills} kill(s) to come")
    for k in range(kills):
        done, total = _chunk_progress(ImportChunk, job=job)
        delay = _next_delay(rng, done=done, total=total, elapsed=time.monotonic() - running_since,
                            kills_left=kills - k, chunk_size=chunk_size)  # fmt: skip
        if not _sleep_while_running(job.pk, delay):
            log(f"The job ended before kill {k + 1}.")
            break
        victim = pool.victim(app, rng)
        if _job_status(job.pk) != ImportJob.Status.RUNNING:
            log(f"The job ended before kill {k + 1}.")
            break
        done, total = _chunk_progress(ImportChunk, job=job)
        running = ImportChunk.objects.filter(job=job, status="running").count()
        pool.kill(victim)
        kill = Kill("import", round(time.monotonic() - running_since, 2), victim, done, total, running,
                    _job_status(job.pk) == ImportJob.Status.RUNNING)  # fmt: skip
        kill_log.append(kill)
        replacement = pool.replace()
        log(f"Kill {k + 1}: SIGKILL {victim} at {kill.at_seconds:.2f} s ({done}/{total} done, {running} running); "
            f"replacement {replacement}")  # fmt: skip
    import_kills = len(kill_log)
    resumed: list[int] = []
    if import_kills:
        pool.wait_ready(app)  # the replacements are up (their recovery has been enqueued)
        resumed = import_job_resume(job_id=job.pk)
        log(f"Operator resume: re-enqueued chunks {resumed}")
    job = _wait(lambda: (j := ImportJob.objects.get(pk=job.pk)).is_terminal and j,
                timeout=timeout, what=f"import job {job.pk} to end", pool=pool)  # fmt: skip
    timings["import_wall_seconds"] = round(time.perf_counter() - t, 2)
    timings["import_job_seconds"] = round((job.finished_at - job.created_at).total_seconds(), 2)
    log(f"Import job {job.pk} {job.status}: {job.created_rows:,} created / {job.updated_rows:,} updated / "
        f"{job.unchanged_rows:,} unchanged / {job.failed_rows:,} rejected")  # fmt: skip

    # --- import checks ------------------------------------------------------------------------------
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT id) FROM agents")
        agents, distinct = cursor.fetchone()
    journal = ImportJournalEntry.objects.filter(job=job)
    entries = journal.count()
    journal_distinct = journal.values("agent_id").distinct().count()
    created, updated = rows - existing, existing
    checks += [
        Check("import status completed", job.status == ImportJob.Status.COMPLETED,
              f"{job.status}{': ' + job.error_message[:300] if job.error_message else ''}"),
        Check("created == rows - existing", job.created_rows == created, f"{job.created_rows:,} (expected {created:,})"),
        Check("updated == existing", job.updated_rows == updated, f"{job.updated_rows:,} (expected {updated:,})"),
        Check("unchanged == 0", job.unchanged_rows == 0, f"{job.unchanged_rows:,}"),
        Check("rejected == 0", job.failed_rows == 0, f"{job.failed_rows:,}"),
        Check("no duplicate ids", agents == distinct, f"count(*) {agents:,}, count(distinct id) {distinct:,}"),
        Check("agents count == rows", agents == rows, f"{agents:,} (expected {rows:,})"),
        Check("journal entries == created + updated", entries == job.created_rows + job.updated_rows,
              f"{entries:,} (created + updated {job.created_rows + job.updated_rows:,})"),
        Check("one journal entry per row", entries == journal_distinct,
              f"{entries:,} entries, {journal_distinct:,} distinct agents"),
    ]  # fmt: skip
    counts = {
        "created": job.created_rows,
        "updated": job.updated_rows,
        "unchanged": job.unchanged_rows,
        "failed": job.failed_rows,
        "chunks": job.chunks.count(),
        "chunks_retried": job.chunks.filter(attempts__gt=1).count(),
        "resumed_chunks": len(resumed),
        "journal_entries": entries,
        "agents_after_import": agents,
    }

    # --- the rollback, with one kill ------------------------------------------------------------------
    t = time.perf_counter()
    rollback = import_rollback_request(job_id=job.pk)
    rb_since = time.monotonic()
    rollback_kills = 0
    if rollback.status == ImportRollback.Status.RUNNING:
        # A random moment: once a random number of the rollback's chunks (1 to half) are done.
        target = rng.randint(1, max(1, rollback.chunks.count() // 2))

        def started_or_over():
            done, _ = _chunk_progress(ImportRollbackChunk, rollback=rollback)
            status = ImportRollback.objects.filter(pk=rollback.pk).values_list("status", flat=True).get()
            return status != ImportRollback.Status.RUNNING or done >= target

        _wait(started_or_over, timeout=timeout, what="the rollback to start", pool=pool)
        rb_status = ImportRollback.objects.filter(pk=rollback.pk).values_list("status", flat=True).get()
        if rb_status == ImportRollback.Status.RUNNING:
            victim = pool.victim(app, rng)
            done, total = _chunk_progress(ImportRollbackChunk, rollback=rollback)
            running = ImportRollbackChunk.objects.filter(rollback=rollback, status="running").count()
            pool.kill(victim)
            status_after = (
                ImportRollback.objects.filter(pk=rollback.pk).values_list("status", flat=True).get()
            )
            kill_log.append(Kill("rollback", round(time.monotonic() - rb_since, 2), victim, done, total, running,
                                 status_after == ImportRollback.Status.RUNNING))  # fmt: skip
            rollback_kills = 1
            replacement = pool.replace()
            log(
                f"Rollback kill: SIGKILL {victim} ({done}/{total} chunks done, {running} running); replacement {replacement}"
            )
            pool.wait_ready(app)
            counts["rollback_resumed_chunks"] = len(import_rollback_resume(rollback_id=rollback.pk))
        else:
            log("The rollback ended before a worker could be killed.")
    rollback = _wait(
        lambda: (r := ImportRollback.objects.get(pk=rollback.pk)).status != ImportRollback.Status.RUNNING and r,
        timeout=timeout, what=f"rollback {rollback.pk} to end", pool=pool,
    )  # fmt: skip
    timings["rollback_wall_seconds"] = round(time.perf_counter() - t, 2)
    job.refresh_from_db()
    after = agents_table_checksum()
    log(f"Rollback {rollback.status}: {rollback.deleted_rows:,} deleted / {rollback.restored_rows:,} restored; "
        f"checksum {after['md5']} (before {before['md5']})")  # fmt: skip
    checks += [
        Check("rollback completed, job rolled_back",
              rollback.status == ImportRollback.Status.COMPLETED and job.status == ImportJob.Status.ROLLED_BACK,
              f"rollback {rollback.status}, job {job.status}"
              f"{': ' + rollback.error_message[:300] if rollback.error_message else ''}"),
        Check("rollback deleted == created", rollback.deleted_rows == job.created_rows,
              f"{rollback.deleted_rows:,} (created {job.created_rows:,})"),
        Check("rollback restored == updated", rollback.restored_rows == job.updated_rows,
              f"{rollback.restored_rows:,} (updated {job.updated_rows:,})"),
        Check("agents checksum after rollback == before", after == before,
              f"{after['rows']:,} rows {after['md5']} vs {before['rows']:,} rows {before['md5']}"),
    ]  # fmt: skip
    counts.update(
        rollback_deleted=rollback.deleted_rows,
        rollback_restored=rollback.restored_rows,
        rollback_skipped=rollback.skipped_rows,
        rollback_chunks_retried=rollback.chunks.filter(attempts__gt=1).count(),
    )
    meta = {
        "import_kills_done": import_kills,
        "rollback_kills_done": rollback_kills,
        "job_id": job.pk,
        "checksum_before": before,
        "checksum_after": after,
    }
    return DrillReport(checks=checks, kills=kill_log, timings=timings, counts=counts, meta=meta)
