"""Celery shells around the export services; names are stable, arguments are ids.

Chunk tasks come from the chunked-job engine (jobs.tasks.chunk_task) with its
retry and time-limit policy; planning and assembly are single steps of a
job and fail the job the same way when they cannot go on.
"""

import logging
from collections.abc import Callable

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import connection
from django.utils import timezone

from jobs.policy import CHUNK_SOFT_TIME_LIMIT, MAX_CHUNK_ATTEMPTS, retry_delay
from jobs.tasks import chunk_task

from . import services
from .models import ExportJob

logger = logging.getLogger(__name__)

# The queue of chunked bulk jobs (imports' too): the workers sized for chunks take it.
EXPORT_QUEUE = "imports"
# The assembly reads and writes the whole file once: several chunks' worth of work.
ASSEMBLE_SOFT_TIME_LIMIT = 3 * CHUNK_SOFT_TIME_LIMIT


def _job_step_run(task, step: Callable[..., bool], *, job_id: int, what: str, time_limit: int) -> None:
    """Run a job's planning or assembly: transient database errors retry, anything else fails the job."""
    try:
        step(job_id=job_id)
    except ExportJob.DoesNotExist:
        logger.warning("Export job %s no longer exists; %s skipped", job_id, what)
    except SoftTimeLimitExceeded:
        services.export_job_fail(
            job_id=job_id, message=f"The {what} took longer than its time limit of {time_limit:,} s."
        )
    except services.EXPORT_JOBS.transient_errors as exc:
        connection.close()  # a terminated backend leaves the connection unusable
        if task.request.retries >= task.max_retries:
            services.export_job_fail(job_id=job_id, message=f"{what.capitalize()} failed: {exc}")
            return
        raise task.retry(exc=exc, countdown=retry_delay(task.request.retries)) from exc
    except Exception as exc:
        logger.exception("Export job %s: %s crashed", job_id, what)
        services.export_job_fail(job_id=job_id, message=f"{what.capitalize()} failed unexpectedly: {exc!r}")


@shared_task(
    name="exports.export_job_plan",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    queue=EXPORT_QUEUE,
    max_retries=MAX_CHUNK_ATTEMPTS - 1,
    soft_time_limit=CHUNK_SOFT_TIME_LIMIT,
    time_limit=CHUNK_SOFT_TIME_LIMIT + 60,
)
def export_job_plan_task(self, job_id: int) -> None:
    _job_step_run(
        self, services.export_job_plan, job_id=job_id, what="planning", time_limit=CHUNK_SOFT_TIME_LIMIT
    )


export_chunk_write_task = chunk_task(
    services.EXPORT_JOBS, name="exports.export_chunk_write", queue=EXPORT_QUEUE
)


@shared_task(
    name="exports.export_job_assemble",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    queue=EXPORT_QUEUE,
    max_retries=MAX_CHUNK_ATTEMPTS - 1,
    soft_time_limit=ASSEMBLE_SOFT_TIME_LIMIT,
    time_limit=ASSEMBLE_SOFT_TIME_LIMIT + 60,
)
def export_job_assemble_task(self, job_id: int) -> None:
    _job_step_run(
        self,
        services.export_job_assemble,
        job_id=job_id,
        what="assembly",
        time_limit=ASSEMBLE_SOFT_TIME_LIMIT,
    )


@shared_task(name="exports.export_files_expire", acks_late=True, queue=EXPORT_QUEUE)
def export_files_expire_task() -> None:
    # Beat entry "exports-expire" (exports.apps); idempotent: a file already gone is skipped.
    services.export_files_expire(now=timezone.now())
