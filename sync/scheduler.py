"""Celery beat's scheduler (CELERY_BEAT_SCHEDULER): the fixed entries in code, plus the schedules staff control.

The entries of `app.conf.beat_schedule` (the imports-recover sweep) run as
with Celery's own PersistentScheduler, whose file (`-s`) this still keeps.
Every SCHEDULE_POLL_SECONDS it also asks PostgreSQL which sync.Schedule rows
are due (sync.schedules.schedules_due_claim) and sends their tasks, so a pause,
a resume or a new interval set in the admin reaches beat within that delay,
without a restart.
"""

from __future__ import annotations

import logging
import time

from celery.beat import PersistentScheduler
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

logger = logging.getLogger(__name__)

# The longest a change in the admin waits before beat acts on it; one small query each time.
SCHEDULE_POLL_SECONDS = 5.0


class OperatorScheduler(PersistentScheduler):
    def __init__(self, *args, **kwargs):
        # Set before super().__init__, which calls setup_schedule.
        self._next_poll = 0.0
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs) -> float:
        delay = super().tick(*args, **kwargs)
        if time.monotonic() >= self._next_poll:
            self._next_poll = time.monotonic() + SCHEDULE_POLL_SECONDS
            self.schedules_send_due()
        return max(0.0, min(delay, self._next_poll - time.monotonic()))

    def schedules_send_due(self) -> list[str]:
        """Send the task of every due schedule; returns their keys. Never raises: beat must keep going."""
        from .schedules import schedules_due_claim, schedules_ensure

        # Beat lives for weeks: a connection PostgreSQL dropped (restart, failover) is replaced here.
        close_old_connections()
        try:
            # Also creates missing rows (a database migrated before them, a flushed table): enabled, at the defaults.
            schedules_ensure()
            due = schedules_due_claim(now=timezone.now())
        except DatabaseError:
            logger.exception(
                "beat: PostgreSQL unreachable, schedules not checked; next try in %ss", SCHEDULE_POLL_SECONDS
            )
            return []
        finally:
            close_old_connections()
        sent = []
        for item in due:
            logger.info("Scheduler: Sending due task %s (%s)", item.key, item.task)
            try:
                self.send_task(
                    item.task,
                    kwargs=item.kwargs,
                    producer=self.producer,
                    # A message still queued when the next one is due is dropped, not run twice in a row.
                    expires=float(item.interval_seconds),
                    headers={"celery_beat_task": True},
                )
            except Exception:
                # Like Celery's own entries: this due time is lost (it was claimed), the next one is not.
                logger.exception("beat: could not send %s (%s)", item.key, item.task)
                continue
            sent.append(item.key)
        return sent
