"""The SyncRun of every run that writes to D1 (sync and repair): begun, pushed through, totalled the same way.

One definition so a repair records what a sync records (retries,
statements, the largest statement) and fails the way a sync fails.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.utils import timezone

from .d1_client import D1Client, d1_error_text, d1_target_describe
from .models import SyncRun
from .push import Pusher
from .time_travel import d1_restore_point_take

logger = logging.getLogger(__name__)


def push_concurrency() -> int:
    return int(getattr(settings, "SYNC_D1_CONCURRENCY", 4))


def sync_target_name(client: D1Client, *, own_client: bool) -> str:
    """What a run records as its target: the configured D1, or the engine a caller passed in."""
    return d1_target_describe() if own_client else client.transport.name


def sync_run_begin(**fields) -> SyncRun:
    """Create the running SyncRun of a run that holds the D1 writer lock.

    Holding the lock, we know a run still marked running died with its worker: it is failed first.
    """
    now = timezone.now()
    SyncRun.objects.running().update(
        status=SyncRun.Status.FAILED, error="interrupted (worker died)", finished_at=now
    )
    return SyncRun.objects.create(started_at=now, **fields)


@contextmanager
def sync_run_pushing(run: SyncRun, *, client: D1Client, dry_run: bool = False) -> Iterator[Pusher]:
    """A pusher for `run`; on the way out, whatever happened, the run gets its totals and is saved.

    The body sets the run's status. An exception fails the run (its text on
    the run) and propagates. A run the body called partial although nothing
    landed is failed: calling that partial would let cron and `sync_d1`
    report success.
    """
    started = time.monotonic()
    pusher = Pusher(client=client, concurrency=push_concurrency(), dry_run=dry_run)
    try:
        yield pusher
    except Exception as exc:
        run.status = SyncRun.Status.FAILED
        run.error = d1_error_text(exc, limit=4000)
        raise
    finally:
        pusher.close()
        result, stats = pusher.result, client.stats
        if (
            run.status == SyncRun.Status.PARTIAL
            and result.failures
            and not (result.upserted or result.deleted)
        ):
            first = result.failures[0]
            run.status = SyncRun.Status.FAILED
            run.error = d1_error_text(
                f"every write failed ({len(result.failures):,} rows rejected; first: {first['table']} "
                f"{first['id']}: {first['error']})" + (f"; {run.error}" if run.error else ""),
                limit=4000,
            )
        run.rows_upserted = result.upserted
        run.rows_deleted = result.deleted
        run.rows_failed = len(result.failures)
        run.failures = result.failures[:1000]
        run.requests = stats.requests
        run.retries = stats.retries
        run.bytes_sent = stats.bytes_sent
        run.statements = stats.statements
        run.max_statement_bytes = stats.max_statement_bytes
        run.finished_at = timezone.now()
        run.duration_seconds = round(time.monotonic() - started, 3)
        run.save()


def restore_point_take(run: SyncRun, client: D1Client, why: str) -> None:
    """Take a restore point before deleting; without one, nothing is deleted (D1Error propagates)."""
    point = d1_restore_point_take(client=client)
    run.bookmark = point.bookmark[:200]
    run.restore_hint = point.restore_hint
    run.save(update_fields=["bookmark", "restore_hint"])
    logger.warning("D1 sync #%s: restore point %s before %s; to go back: %s", run.pk, point.bookmark, why,
                   point.restore_hint)  # fmt: skip


def d1_unmanaged_count(client: D1Client) -> int:
    """D1 agents no sync of ours wrote (`sync_run = 0`): rows of the system we took over."""
    return int(client.rows("SELECT count(*) FROM agents WHERE sync_run = 0")[0][0])
