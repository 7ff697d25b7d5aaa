"""An import job's life in the chunked-job engine: start, chunks, finalize, cancel, resume, recover.

The state machine itself is jobs.runner; this module says what an import
adds to it: its chunk step (imports.chunks), its counters, what its end
means (completed with or without row errors, the edge sync, the ZIP's
extracted photos) and the message of a job whose chunks failed. The
functions below are the public entry points (imports.services re-exports
them); their names and arguments are what callers and tasks use.
"""

from django.db import connection, transaction

from jobs.runner import TRANSIENT_DATABASE_ERRORS, ChunkedJobRunner
from sync import services as sync_services
from sync.locks import advisory_lock

from .chunks import import_chunk_write
from .models import ImportChunk, ImportJob
from .selectors import CHUNK_COUNTERS
from .writer import ConcurrentChange
from .zip_import import zip_files_discard

Status = ImportJob.Status

# "EFAN": one ANALYZE of agents at a time, whichever worker notices the statistics are stale.
ANALYZE_LOCK_KEY = 0x4546414E
# ANALYZE once the rows changed since the last one reach this share of what the planner believes the
# table holds (autovacuum waits for 10% + 50 rows, then for its next round, often after the import).
ANALYZE_CHANGED_FRACTION = 0.5
ANALYZE_MIN_CHANGED = 20_000


class ImportRunner(ChunkedJobRunner):
    label = "Import job"
    job_model = ImportJob
    chunk_model = ImportChunk
    parent_field = "job"
    chunk_task_path = "imports.tasks.import_chunk_process_task"
    counters = {f"{name}_rows": field for name, field in CHUNK_COUNTERS.items()}
    # A row created by another transaction under our feet: the next attempt sees it.
    transient_errors = (*TRANSIENT_DATABASE_ERRORS, ConcurrentChange)
    # A cancelled job is finalized too: its counts then include the chunks that were running.
    finalizable = (Status.RUNNING, Status.CANCELLED)
    resumable = (Status.RUNNING, Status.CANCELLED, Status.FAILED)
    cancellable = (Status.PENDING, Status.PLANNING, Status.RUNNING)

    def process_chunk(self, job: ImportJob, chunk: ImportChunk) -> None:
        import_chunk_write(job, chunk)

    def chunk_process(self, *, job_id: int, chunk_index: int) -> bool:
        done = super().chunk_process(job_id=job_id, chunk_index=chunk_index)
        if done and not connection.in_atomic_block:
            agents_statistics_refresh()
        return done

    def job_succeeded(self, job: ImportJob) -> None:
        job.status = Status.COMPLETED_WITH_ERRORS if job.failed_rows else Status.COMPLETED

    def failed_message(self, job: ImportJob, failed: list[ImportChunk], failed_count: int) -> str:
        return _failed_chunks_message(job, failed, failed_count)

    def job_closed(self, job: ImportJob) -> None:
        if not job.dry_run and (job.created_rows or job.updated_rows):
            transaction.on_commit(_edge_sync_request)
        if job.format == ImportJob.Format.ZIP and job.status in (
            Status.COMPLETED,
            Status.COMPLETED_WITH_ERRORS,
        ):  # no chunk will run again: the photos extracted at planning can go
            job_id = job.pk
            transaction.on_commit(lambda: zip_files_discard(job_id=job_id))

    def progress_started(self, job: ImportJob):
        return job.planned_at or job.created_at


IMPORT_JOBS = ImportRunner()


def agents_statistics_refresh() -> bool:
    """ANALYZE agents when an import has outgrown the planner's statistics; True when it ran.

    A first load into an empty table otherwise keeps "empty" statistics for the
    whole import, and the chunks' key lookups (identity, shared licences) pick
    plans that get slower with every chunk: at 500,000 rows, chunks took 10-21 s
    instead of 2-6 s. Run after a chunk's transaction, outside it: ANALYZE
    takes a lock that no chunk's writes wait for, and one worker does it.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.n_mod_since_analyze, greatest(c.reltuples, 0) FROM pg_stat_user_tables s "
            "JOIN pg_class c ON c.oid = s.relid WHERE s.relid = 'agents'::regclass"
        )
        row = cursor.fetchone()
    if row is None or row[0] < max(ANALYZE_MIN_CHANGED, ANALYZE_CHANGED_FRACTION * row[1]):
        return False
    with advisory_lock(ANALYZE_LOCK_KEY) as acquired:
        if not acquired:  # another worker is at it
            return False
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE agents")
    return True


def import_job_start(*, job_id: int) -> None:
    """Plan the job once this transaction commits (planning enqueues its chunks)."""
    from .tasks import import_job_plan_task

    transaction.on_commit(lambda: import_job_plan_task.delay(job_id))


def import_chunk_process(*, job_id: int, chunk_index: int) -> bool:
    """Import one chunk in one transaction: rows, journal, row errors and the done-mark."""
    return IMPORT_JOBS.chunk_process(job_id=job_id, chunk_index=chunk_index)


def import_chunk_fail(*, job_id: int, chunk_index: int, message: str) -> None:
    """Give up on a chunk: it will not be retried; the job ends failed with this message."""
    IMPORT_JOBS.chunk_fail(job_id=job_id, chunk_index=chunk_index, message=message)


def import_chunks_enqueue(*, job_id: int, indexes: list[int]) -> None:
    IMPORT_JOBS.chunks_enqueue(job_id=job_id, indexes=indexes)


def import_job_fail(*, job_id: int, message: str) -> None:
    IMPORT_JOBS.job_fail(job_id=job_id, message=message)


def import_job_finalize(*, job_id: int) -> bool:
    """Close the job once no chunk is left to run; True when this call closed it."""
    return IMPORT_JOBS.job_finalize(job_id=job_id)


def import_job_cancel(*, job_id: int) -> bool:
    return IMPORT_JOBS.job_cancel(job_id=job_id)


def import_job_resume(*, job_id: int) -> list[int]:
    """Re-enqueue every chunk not done yet (cancelled, failed or interrupted jobs); returns them.

    A job stopped before its chunks existed is planned again instead.
    """
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job_id)
        if job.status in (Status.PENDING, Status.PLANNING):
            job.status = Status.PENDING
            job.save(update_fields=["status"])
            import_job_start(job_id=job.pk)
            return []
        if not job.chunks.exists():  # cancelled before planning ended: nothing to resume
            return []
        return IMPORT_JOBS.job_resume(job_id=job_id)


def import_jobs_recover(*, worker_start: bool = False) -> dict[int, list[int]]:
    """Re-enqueue import chunks that no live worker holds (see ChunkedJobRunner.jobs_recover)."""
    return IMPORT_JOBS.jobs_recover(worker_start=worker_start)


def _failed_chunks_message(job: ImportJob, failed: list[ImportChunk], failed_count: int) -> str:
    """Why a job failed after planning, which chunks landed, and what finishes the story.

    Bad data never fails a chunk (it becomes row errors), so this is the
    database, a worker or a time limit: what landed stays until resumed or rolled back.
    """
    details = "; ".join(f"chunk {c.index} (lines from {c.first_line}): {c.error}" for c in failed)
    done = list(
        job.chunks.filter(status=ImportChunk.Status.DONE).order_by("index").values_list("index", flat=True)
    )
    total = len(done) + failed_count
    head = f"{failed_count} of {total} chunk(s) could not be imported: {details}."
    if job.dry_run or not done:
        return f"{head} No rows were written. `manage.py import_resume {job.pk}` retries once the cause is fixed."
    return (
        f"{head} Chunk(s) {_index_ranges(done)} were written ({job.created_rows:,} created, "
        f"{job.updated_rows:,} updated). Finish with `manage.py import_resume {job.pk}` (retries the failed "
        f"chunks once the cause is fixed) or `manage.py import_rollback {job.pk}` (undoes what was written)."
    )


def _index_ranges(indexes: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    ranges: list[list[int]] = []
    for index in indexes:
        if ranges and index == ranges[-1][1] + 1:
            ranges[-1][1] = index
        else:
            ranges.append([index, index])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def _edge_sync_request() -> None:
    """Push the import to the edge (D1)."""
    sync_services.d1_sync_request(reason="import finished")
