"""Celery shell around assets.services.r2_sync_run."""

from celery import shared_task

from .models import AssetSyncRun
from .services import r2_sync_run, r2_sync_run_create

MAX_RETRIES = 3


@shared_task(
    name="assets.r2_sync_run",
    bind=True,
    acks_late=True,
    # A run that dies with its worker is redelivered; r2_sync_run resumes it.
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
    ignore_result=True,
)
def r2_sync_run_task(self, run_id: int | None = None, reason: str = "beat") -> int:
    """Push agents' photos to R2. Beat calls it without arguments; r2_sync_request passes a run id.

    A bucket outage (after boto3's own retries) fails the run record; the task
    then retries a bounded number of times with growing delays, each retry a
    new run record so the history shows every attempt.
    """
    if run_id is None:
        run_id = r2_sync_run_create(reason=reason).pk
    run = r2_sync_run(run_id=run_id)
    if run.status == AssetSyncRun.Status.FAILED and self.request.retries < MAX_RETRIES:
        retry_reason = f"retry {self.request.retries + 1} after failed run {run.pk}"
        raise self.retry(
            kwargs={"run_id": None, "reason": retry_reason}, countdown=60 * 2**self.request.retries
        )
    return run.pk
