"""Celery shells around the import services; names are stable, arguments are ids.

Chunk tasks of imports and rollbacks are made by the chunked-job engine
(jobs.tasks.chunk_task), which holds their one retry and time-limit policy
(jobs.policy) and the recovery sweep at worker start.
"""

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from jobs.runner import jobs_recover
from jobs.tasks import chunk_task

from . import services
from .models import ImportChunk, ImportJob
from .rollback import ROLLBACKS

logger = logging.getLogger(__name__)

IMPORT_QUEUE = "imports"

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
    except services.IMPORT_JOBS.transient_errors as exc:
        raise import_job_plan_task.retry(exc=exc, countdown=5) from exc
    except Exception as exc:
        logger.exception("Planning of import job %s crashed", job_id)
        services.import_job_fail(job_id=job_id, message=f"Planning failed unexpectedly: {exc}")
        return
    if planned:
        indexes = list(ImportChunk.objects.filter(job_id=job_id).values_list("index", flat=True))
        services.import_chunks_enqueue(job_id=job_id, indexes=indexes)


import_chunk_process_task = chunk_task(
    services.IMPORT_JOBS, name="imports.import_chunk_process", queue=IMPORT_QUEUE
)
import_rollback_chunk_task = chunk_task(ROLLBACKS, name="imports.import_rollback_chunk", queue=IMPORT_QUEUE)


@shared_task(name="imports.import_job_resume", acks_late=True, queue=IMPORT_QUEUE)
def import_job_resume_task(job_id: int) -> None:
    services.import_job_resume(job_id=job_id)


@shared_task(name="imports.import_jobs_recover", acks_late=True, queue=IMPORT_QUEUE)
def import_jobs_recover_task() -> None:
    # The periodic sweep (beat entry "imports-recover") of every kind of chunked job:
    # import, rollback and any other registered with the engine.
    jobs_recover()
