"""The runner: one state machine for every kind of chunked job.

A job is planned or requested elsewhere (its chunk rows created, its
status set to running); from then on this module moves it:

    chunk_begin -> chunk_process -> (done | chunk_attempt_failed -> retry | chunk_fail)
    job_finalize once no chunk is open; job_cancel, job_resume, jobs_recover at any time.

Every step takes ids, locks what it changes and can run twice: a chunk
delivered twice, in a row or concurrently, is done once, because its
done-mark is written in the transaction that does its work and the chunk
row stays locked for that whole transaction. That lock is also how the
recovery sweep tells a live worker from a dead one (SELECT … FOR UPDATE
SKIP LOCKED).

A kind subclasses ChunkedJobRunner, names its models, counters and chunk
task, and writes `process_chunk`; the hooks `job_succeeded`,
`failed_message` and `job_closed` say what its end means.
"""

import logging
import time
from datetime import timedelta
from typing import ClassVar

from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from .models import ChunkedJob, ChunkStatus, JobChunk, TimedJobChunk
from .policy import MAX_CHUNK_ATTEMPTS, chunk_statement_time_limit

logger = logging.getLogger(__name__)

# Worth another attempt: the database went away, a deadlock, a serialization failure.
TRANSIENT_DATABASE_ERRORS = (OperationalError, InterfaceError)
# Pending chunks of a job with no finished chunk for this long lost their messages (a broker restart).
RECOVER_PENDING_AFTER = timedelta(minutes=5)
ERROR_MAX_CHARS = 2000
FAILED_CHUNKS_LISTED = 5

RUNNERS: dict[str, "ChunkedJobRunner"] = {}


class ChunkedJobRunner:
    """Begin, process, fail, finalize, cancel, resume and recover one kind of chunked job."""

    label: ClassVar[str]  # in logs and messages: "Import job 12 chunk 3"
    job_model: ClassVar[type[ChunkedJob]]
    chunk_model: ClassVar[type[JobChunk]]
    parent_field: ClassVar[str]  # the chunk's foreign key to its job
    chunk_task_path: ClassVar[str]  # dotted path of the Celery task made by jobs.tasks.chunk_task
    counters: ClassVar[dict[str, str]] = {}  # job field: chunk field summed over done chunks
    transient_errors: ClassVar[tuple[type[Exception], ...]] = TRANSIENT_DATABASE_ERRORS
    # Job statuses finalize acts on: running closes the job, others only refresh its counts.
    finalizable: ClassVar[tuple[str, ...]] = ("running",)
    resumable: ClassVar[tuple[str, ...]] = ("running", "failed")
    cancellable: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        # The recovery sweep walks every kind that exists in the process.
        RUNNERS[self.label] = self

    # --- what a kind supplies ------------------------------------------------------------

    def process_chunk(self, job: ChunkedJob, chunk: JobChunk) -> None:
        """Do the chunk's work and set its counters; runs inside its transaction, chunk locked."""
        raise NotImplementedError

    def job_succeeded(self, job: ChunkedJob) -> None:
        """Set the status of a running job whose chunks are all done (called locked, then saved)."""
        job.status = job.Status.COMPLETED

    def failed_message(self, job: ChunkedJob, failed: list[JobChunk], failed_count: int) -> str:
        """The job's error message when chunks failed (the first FAILED_CHUNKS_LISTED given)."""
        return "; ".join(f"chunk {c.index}: {c.error}" for c in failed)

    def job_closed(self, job: ChunkedJob) -> None:
        """After a running job ended (succeeded or failed), inside finalize's transaction."""

    def progress_started(self, job: ChunkedJob):
        """When the job's chunks could first have started (the recovery sweep's clock)."""
        return job.started_at or job.created_at

    # --- chunks ---------------------------------------------------------------------------

    def _chunks(self, job_id: int, chunk_index: int):
        return self.chunk_model.objects.filter(**{f"{self.parent_field}_id": job_id, "index": chunk_index})

    def _chunk_locked(self, job_id: int, chunk_index: int) -> JobChunk:
        return (
            self._chunks(job_id, chunk_index)
            .select_for_update(of=("self",))
            .select_related(self.parent_field)
            .get()
        )

    def _job_locked(self, job_id: int) -> ChunkedJob:
        return self.job_model.objects.select_for_update().get(pk=job_id)

    @property
    def _timed(self) -> bool:
        return issubclass(self.chunk_model, TimedJobChunk)

    def chunk_begin(self, *, job_id: int, chunk_index: int) -> bool:
        """Count an attempt; False when the chunk must not run (done, given up, job not running)."""
        with transaction.atomic():
            chunk = self._chunk_locked(job_id, chunk_index)
            job = getattr(chunk, self.parent_field)
            if chunk.status in (ChunkStatus.DONE, ChunkStatus.FAILED):
                return False
            if job.status != job.Status.RUNNING:
                return False
            if chunk.attempts >= MAX_CHUNK_ATTEMPTS:
                # Redelivered after as many starts as the policy allows (workers killed mid-chunk).
                chunk.status = ChunkStatus.FAILED
                chunk.error = f"gave up after {chunk.attempts} attempts. {chunk.error}".strip()
                stamp = "finished_at"
            else:
                chunk.attempts += 1
                chunk.status = ChunkStatus.RUNNING
                stamp = "started_at"
            fields = ["attempts", "status", "error"]
            if self._timed:
                setattr(chunk, stamp, timezone.now())
                fields.append(stamp)
            chunk.save(update_fields=fields)
        return chunk.status == ChunkStatus.RUNNING

    def chunk_process(self, *, job_id: int, chunk_index: int) -> bool:
        """Do one chunk in one transaction with its done-mark; False when there was nothing to do.

        The chunk row stays locked while it runs, which also tells the
        recovery sweep that a live worker holds it.
        """
        if not self.chunk_begin(job_id=job_id, chunk_index=chunk_index):
            return False
        started = time.monotonic()
        with transaction.atomic():
            chunk = self._chunk_locked(job_id, chunk_index)
            chunk_statement_time_limit()
            job = getattr(chunk, self.parent_field)
            if chunk.status != ChunkStatus.RUNNING or job.status != job.Status.RUNNING:
                return False
            self.process_chunk(job, chunk)
            chunk.status = ChunkStatus.DONE
            chunk.error = ""
            chunk.duration_ms = int((time.monotonic() - started) * 1000)
            if self._timed:
                chunk.finished_at = timezone.now()
            chunk.save()
        return True

    def chunk_attempt_failed(self, *, job_id: int, chunk_index: int, message: str, retries: int = 0) -> bool:
        """After a transient error: True when the chunk waits (pending) for another attempt.

        False when the attempts are used up (the chunk is failed with the
        message) or the chunk is done already (a duplicate finished it).
        `retries` is Celery's count, for failures before an attempt was counted.
        """
        chunks = self._chunks(job_id, chunk_index).not_done()
        attempts = chunks.values_list("attempts", flat=True).first()
        if attempts is None:
            return False
        tries = max(attempts, retries + 1)
        if tries >= MAX_CHUNK_ATTEMPTS:
            self.chunk_fail(
                job_id=job_id, chunk_index=chunk_index, message=f"failed {tries} times: {message}"
            )
            return False
        chunks.update(error=message[:ERROR_MAX_CHARS], status=ChunkStatus.PENDING)
        return True

    def chunk_fail(self, *, job_id: int, chunk_index: int, message: str) -> None:
        """Give up on a chunk: it will not be retried; the job ends failed with this message."""
        fields = {"error": message[:ERROR_MAX_CHARS], "status": ChunkStatus.FAILED}
        if self._timed:
            fields["finished_at"] = timezone.now()
        self._chunks(job_id, chunk_index).not_done().update(**fields)

    def chunks_enqueue(self, *, job_id: int, indexes: list[int]) -> None:
        task = import_string(self.chunk_task_path)
        for index in indexes:
            task.delay(job_id, index)

    def chunks_start(self, *, job_id: int, indexes: list[int]) -> None:
        """Once this transaction commits, enqueue the chunks; with none, close the job."""
        transaction.on_commit(lambda: self.chunks_enqueue(job_id=job_id, indexes=indexes))
        if not indexes:
            transaction.on_commit(lambda: self.job_finalize(job_id=job_id))

    # --- the job ----------------------------------------------------------------------------

    def job_counts_refresh(self, job: ChunkedJob) -> None:
        """Copy the chunk sums onto the job's own counters (set when the job ends)."""
        totals = job.chunks.totals(**self.counters)
        for field in self.counters:
            setattr(job, field, totals[field])

    def job_fail(self, *, job_id: int, message: str) -> None:
        """End a job that cannot go on (its file is refused at planning, say)."""
        with transaction.atomic():
            job = self._job_locked(job_id)
            if job.is_terminal:
                return
            job.status = job.Status.FAILED
            job.error_message = message
            job.finished_at = timezone.now()
            job.save(update_fields=["status", "error_message", "finished_at"])
        logger.warning("%s %s failed: %s", self.label, job_id, message)

    def job_finalize(self, *, job_id: int) -> bool:
        """Close the job once no chunk is left to run; True when this call closed it."""
        with transaction.atomic():
            job = self._job_locked(job_id)
            if job.status not in self.finalizable:
                return False
            closing = job.status == job.Status.RUNNING
            if closing and job.chunks.open().exists():
                return False
            self.job_counts_refresh(job)
            if closing:
                failed_chunks = job.chunks.failed().order_by("index")
                failed = list(failed_chunks[:FAILED_CHUNKS_LISTED])
                if failed:
                    job.status = job.Status.FAILED
                    job.error_message = self.failed_message(job, failed, failed_chunks.count())
                else:
                    self.job_succeeded(job)
                job.finished_at = timezone.now()
            job.save()
            if closing:
                self.job_closed(job)
        return closing

    def job_cancel(self, *, job_id: int) -> bool:
        """Stop a job: chunks not begun yet will not run; those running finish (and count)."""
        with transaction.atomic():
            job = self._job_locked(job_id)
            if job.status not in self.cancellable:
                return False
            job.status = job.Status.CANCELLED
            job.finished_at = timezone.now()
            self.job_counts_refresh(job)
            job.save()
        return True

    def job_resume(self, *, job_id: int) -> list[int]:
        """Re-enqueue every chunk not done yet (a cancelled, failed or interrupted job); returns them.

        Safe to call at any time: a chunk delivered twice is a no-op the
        second time. The attempts start again from zero.
        """
        with transaction.atomic():
            job = self._job_locked(job_id)
            if job.status not in self.resumable:
                return []
            # Chunks a live worker holds stay locked and are skipped: they finish on their own.
            indexes = list(
                job.chunks.not_done().select_for_update(skip_locked=True).values_list("index", flat=True)
            )
            job.chunks.filter(index__in=indexes).not_done().update(status=ChunkStatus.PENDING, attempts=0)
            job.status = job.Status.RUNNING
            job.error_message = ""
            job.finished_at = None
            job.save(update_fields=["status", "error_message", "finished_at"])
            self.chunks_start(job_id=job_id, indexes=indexes)
        return indexes

    def jobs_recover(self, *, worker_start: bool = False) -> dict[int, list[int]]:
        """Re-enqueue chunks that no live worker holds: run at worker start and periodically.

        A running chunk keeps its row locked for its whole transaction, so a
        'running' chunk we can lock with SKIP LOCKED lost its worker (killed,
        OOM, machine gone). Pending chunks are re-sent at a worker's start (a
        killed worker takes its prefetched messages with it) and, for timed
        chunks, when no chunk of the job finished for a while (a broker
        restart lost them); a duplicate of a live message is a no-op.
        """
        recovered: dict[int, list[int]] = {}
        for job in self.job_model.objects.running():
            with transaction.atomic():
                orphaned = list(
                    job.chunks.running().select_for_update(skip_locked=True).values_list("index", flat=True)
                )
                if worker_start or self._stalled(job):
                    orphaned += list(job.chunks.pending().values_list("index", flat=True))
                if orphaned:
                    job.chunks.running().filter(index__in=orphaned).update(status=ChunkStatus.PENDING)
            if orphaned:
                recovered[job.pk] = orphaned
                self.chunks_enqueue(job_id=job.pk, indexes=orphaned)
        for job_id, indexes in recovered.items():
            logger.warning("%s %s: re-enqueued chunks %s with no live worker", self.label, job_id, indexes)
        return recovered

    def _stalled(self, job: ChunkedJob) -> bool:
        if not self._timed:
            return False
        last = (
            job.chunks.filter(finished_at__isnull=False)
            .order_by("-finished_at")
            .values_list("finished_at", flat=True)
            .first()
        )
        return timezone.now() - (last or self.progress_started(job)) > RECOVER_PENDING_AFTER


def jobs_recover(*, worker_start: bool = False) -> dict[str, dict[int, list[int]]]:
    """The recovery sweep of every kind of chunked job: {label: {job id: re-enqueued chunks}}."""
    return {label: runner.jobs_recover(worker_start=worker_start) for label, runner in RUNNERS.items()}
