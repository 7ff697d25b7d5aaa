"""Celery shells around sync.services; names are stable because beat and callers use them."""

from celery import shared_task

from .models import SyncRun
from .services import d1_verify, sync_run_execute

BUSY_RETRY_SECONDS = 30
FAILED_RETRY_CAP_SECONDS = 600


@shared_task(
    name="sync.d1_sync_run",
    bind=True,
    acks_late=True,
    max_retries=10,
    ignore_result=True,
)
def d1_sync_run_task(self, reason: str = "scheduled", full: bool = False) -> int | None:
    """One D1 sync. Idempotent: a rerun pushes the same rows again, harmlessly."""
    run = sync_run_execute(full=full, reason=reason)
    if self.request.is_eager:
        return run.pk
    if run.status == SyncRun.Status.SKIPPED:
        # Another sync holds the lock and may have taken its snapshot before
        # the caller's commit; come back rather than drop the request.
        raise self.retry(countdown=BUSY_RETRY_SECONDS)
    if run.status == SyncRun.Status.FAILED:
        # D1 stayed unavailable through the client's own retries; back off further.
        raise self.retry(countdown=min(FAILED_RETRY_CAP_SECONDS, 30 * 2**self.request.retries))
    return run.pk


@shared_task(name="sync.d1_verify_run", acks_late=True, max_retries=3, ignore_result=True)
def d1_verify_task(repair: bool = False) -> int:
    return d1_verify(repair=repair).pk
