"""Celery shells around imports.services; names are stable, arguments are ids."""

import logging

import psycopg
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_ready
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection

from . import rollback, services
from .models import ImportChunk, ImportJob, ImportRollbackChunk
from .writer import ConcurrentChange

logger = logging.getLogger(__name__)

IMPORT_QUEUE = "imports"
CHUNK_SOFT_TIME_LIMIT = settings.IMPORT_CHUNK_SOFT_TIME_LIMIT
CHUNK_MAX_RETRIES = 5
# Worth retrying: the database went away, a deadlock, a row created under our feet.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, ConcurrentChange)


# Import and rollback chunks: redelivered if a worker dies, retried a bounded number of times.
CHUNK_TASK_OPTIONS = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "queue": IMPORT_QUEUE,
    "max_retries": CHUNK_MAX_RETRIES,
    "soft_time_limit": CHUNK_SOFT_TIME_LIMIT,
    "time_limit": CHUNK_SOFT_TIME_LIMIT + 60,
}
TIME_LIMIT_MESSAGE = f"exceeded the time limit of {CHUNK_SOFT_TIME_LIMIT} s; try a smaller chunk size"


def _is_statement_timeout(exc: Exception) -> bool:
    """PostgreSQL cancelled a statement at the chunk's time limit (see services.chunk_statement_time_limit)."""
    return isinstance(exc.__cause__, psycopg.errors.QueryCanceled)


def _retry_delay(retries: int) -> float:
    return min(settings.IMPORT_RETRY_BASE_DELAY * 2**retries, 30.0)


# Planning checks IMPORT_PLAN_TIME_LIMIT between rows itself; Celery's limits, a little
# later, stop a worker stuck inside one long call (a parser fed a hostile file).
PLAN_SOFT_TIME_LIMIT = settings.IMPORT_PLAN_TIME_LIMIT + 60


@shared_task(
    name="imports.import_job_plan",
    acks_late=True,
    queue=IMPORT_QUEUE,
    max_retries=3,
    soft_time_limit=PLAN_SOFT_TIME_LIMIT,
    time_limit=PLAN_SOFT_TIME_LIMIT + 60,
)
def import_job_plan_task(job_id: int) -> None:
    try:
        planned = services.import_job_plan(job_id=job_id)
    except ImportJob.DoesNotExist:
        logger.warning("Import job %s no longer exists; planning skipped", job_id)
        return
    except SoftTimeLimitExceeded:
        services.import_job_fail(
            job_id=job_id,
            message=f"Reading the file took longer than {settings.IMPORT_PLAN_TIME_LIMIT:,} s "
            "(IMPORT_PLAN_TIME_LIMIT); split it into smaller files.",
        )
        return
    except TRANSIENT_ERRORS as exc:
        raise import_job_plan_task.retry(exc=exc, countdown=5) from exc
    except Exception as exc:
        logger.exception("Planning of import job %s crashed", job_id)
        services.import_job_fail(job_id=job_id, message=f"Planning failed unexpectedly: {exc}")
        return
    if planned:
        indexes = list(ImportChunk.objects.filter(job_id=job_id).values_list("index", flat=True))
        services.import_chunks_enqueue(job_id=job_id, indexes=indexes)


@shared_task(name="imports.import_chunk_process", **CHUNK_TASK_OPTIONS)
def import_chunk_process_task(self, job_id: int, chunk_index: int) -> None:
    _chunk_task_run(
        self,
        label=f"Import job {job_id} chunk {chunk_index}",
        process=lambda: services.import_chunk_process(job_id=job_id, chunk_index=chunk_index),
        fail=lambda message: services.import_chunk_fail(
            job_id=job_id, chunk_index=chunk_index, message=message
        ),
        record_error=lambda message: services.import_chunk_record_error(
            job_id=job_id, chunk_index=chunk_index, message=message
        ),
        finalize=lambda: services.import_job_finalize(job_id=job_id),
    )


def _chunk_task_run(task, *, label: str, process, fail, record_error, finalize) -> None:
    """How an import or rollback chunk task meets failure: one policy for both.

    Transient database trouble retries with backoff, a bounded number of
    times; a time limit or any other error fails the chunk at once (no
    endless requeue). Either way the job is finalized, so it never stays
    'running' with nothing left to run.
    """
    try:
        process()
    except (ImportChunk.DoesNotExist, ImportRollbackChunk.DoesNotExist):
        logger.warning("%s no longer exists; skipped", label)
        return
    except SoftTimeLimitExceeded:
        fail(TIME_LIMIT_MESSAGE)
    except TRANSIENT_ERRORS as exc:
        connection.close()  # a terminated backend leaves the connection unusable
        message = f"{exc.__class__.__name__}: {exc}"
        if _is_statement_timeout(exc):
            fail(TIME_LIMIT_MESSAGE)
        elif task.request.retries >= task.max_retries:
            fail(f"failed {task.max_retries + 1} times: {message}")
        else:
            record_error(message)
            raise task.retry(exc=exc, countdown=_retry_delay(task.request.retries)) from exc
    except DatabaseError as exc:
        # Not transient (a constraint, a bad statement): retrying cannot help.
        logger.exception("%s failed", label)
        fail(f"database error: {exc}")
    except Exception as exc:
        logger.exception("%s crashed", label)
        fail(f"unexpected error: {exc!r}")
    finalize()


@shared_task(name="imports.import_job_resume", acks_late=True, queue=IMPORT_QUEUE)
def import_job_resume_task(job_id: int) -> None:
    services.import_job_resume(job_id=job_id)


@shared_task(name="imports.import_jobs_recover", acks_late=True, queue=IMPORT_QUEUE)
def import_jobs_recover_task() -> None:
    services.import_jobs_recover()
    rollback.import_rollbacks_recover()


@shared_task(name="imports.import_rollback_chunk", **CHUNK_TASK_OPTIONS)
def import_rollback_chunk_task(self, rollback_id: int, chunk_index: int) -> None:
    _chunk_task_run(
        self,
        label=f"Rollback {rollback_id} chunk {chunk_index}",
        process=lambda: rollback.import_rollback_chunk_process(rollback_id=rollback_id, index=chunk_index),
        fail=lambda message: rollback.import_rollback_chunk_fail(
            rollback_id=rollback_id, index=chunk_index, message=message
        ),
        record_error=lambda message: rollback.import_rollback_chunk_record_error(
            rollback_id=rollback_id, index=chunk_index, message=message
        ),
        finalize=lambda: rollback.import_rollback_finalize(rollback_id=rollback_id),
    )


@worker_ready.connect
def import_jobs_recover_on_worker_start(sender=None, **kwargs) -> None:
    # A worker that starts may be the replacement of one that was killed mid-chunk.
    # The sweep runs here, not as a task: a task would wait behind every chunk
    # message already queued, and the orphaned chunks with it.
    try:
        services.import_jobs_recover(worker_start=True)
        rollback.import_rollbacks_recover()
    except DatabaseError:
        logger.exception("Recovery sweep at worker start failed; the periodic sweep will retry")
    finally:
        connection.close()
