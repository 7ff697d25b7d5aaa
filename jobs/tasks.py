"""Celery tasks of chunked jobs: one factory, one failure policy, the sweep at worker start.

A chunk task is a thin shell: its name is stable (messages in flight name
it), its arguments are ids, its body is idempotent (ChunkedJobRunner), it
is acknowledged late and redelivered if its worker dies, and it is retried a
bounded number of times (jobs.policy).
"""

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_ready
from django.db import DatabaseError, connection

from .policy import (
    CHUNK_HARD_TIME_LIMIT,
    CHUNK_SOFT_TIME_LIMIT,
    MAX_CHUNK_ATTEMPTS,
    TIME_LIMIT_MESSAGE,
    is_statement_timeout,
    retry_delay,
)
from .runner import ChunkedJobRunner, jobs_recover

logger = logging.getLogger(__name__)


def chunk_task(runner: ChunkedJobRunner, *, name: str, queue: str):
    """The Celery task that runs one chunk of `runner`'s jobs: task(job_id, chunk_index)."""

    @shared_task(
        name=name,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        queue=queue,
        # A backstop only: chunk_attempt_failed stops first (see jobs.policy).
        max_retries=MAX_CHUNK_ATTEMPTS - 1,
        soft_time_limit=CHUNK_SOFT_TIME_LIMIT,
        time_limit=CHUNK_HARD_TIME_LIMIT,
    )
    def chunk_task_run(self, job_id: int, chunk_index: int) -> None:
        chunk_run(self, runner, job_id=job_id, chunk_index=chunk_index)

    return chunk_task_run


def chunk_run(task, runner: ChunkedJobRunner, *, job_id: int, chunk_index: int) -> None:
    """How a chunk task meets failure, for every kind.

    Transient database trouble retries with backoff, a bounded number of
    times; a time limit or any other error fails the chunk at once (no
    endless requeue). Either way the job is finalized, so it never stays
    'running' with nothing left to run.
    """
    label = f"{runner.label} {job_id} chunk {chunk_index}"

    def fail(message: str) -> None:
        runner.chunk_fail(job_id=job_id, chunk_index=chunk_index, message=message)

    try:
        runner.chunk_process(job_id=job_id, chunk_index=chunk_index)
    except runner.chunk_model.DoesNotExist:
        logger.warning("%s no longer exists; skipped", label)
        return
    except SoftTimeLimitExceeded:
        fail(TIME_LIMIT_MESSAGE)
    except runner.transient_errors as exc:
        connection.close()  # a terminated backend leaves the connection unusable
        message = f"{exc.__class__.__name__}: {exc}"
        if is_statement_timeout(exc):
            fail(TIME_LIMIT_MESSAGE)
        elif runner.chunk_attempt_failed(
            job_id=job_id, chunk_index=chunk_index, message=message, retries=task.request.retries
        ):
            raise task.retry(exc=exc, countdown=retry_delay(task.request.retries)) from exc
    except DatabaseError as exc:
        # Not transient (a constraint, a bad statement): retrying cannot help.
        logger.exception("%s failed", label)
        fail(f"database error: {exc}")
    except Exception as exc:
        logger.exception("%s crashed", label)
        fail(f"unexpected error: {exc!r}")
    runner.job_finalize(job_id=job_id)


@worker_ready.connect
def chunked_jobs_recover_on_worker_start(sender=None, **kwargs) -> None:
    # A worker that starts may be the replacement of one that was killed mid-chunk.
    # The sweep runs here, not as a task: a task would wait behind every chunk
    # message already queued, and the orphaned chunks with it.
    try:
        jobs_recover(worker_start=True)
    except DatabaseError:
        logger.exception("Recovery sweep at worker start failed; the periodic sweep will retry")
    finally:
        connection.close()
