"""The operator-controlled beat schedules: which task each runs, their defaults, and beat's claim on them.

Two schedules: the D1 sync and the R2 asset push. Staff pause, resume and
re-time them in the admin (sync.Schedule); beat's scheduler (sync.scheduler)
asks `schedules_due_claim` every few seconds which ones to send. The
imports-recover sweep stays a fixed entry in code (imports.apps): pausing it
would leave the chunks of a dead worker stuck, and it costs no D1 or R2 request.

Runs stay single through the advisory locks, whatever the schedule says: a
send that finds the previous run still going is recorded as a skipped run, as
before. The claim itself keeps one send per due time, even with two beats.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from .models import Schedule

SYNC_D1 = "sync-d1"
ASSETS_R2 = "assets-r2-sync"


@dataclass(frozen=True)
class ScheduleSpec:
    key: str
    label: str
    task: str
    interval_setting: str
    kwargs: dict = field(default_factory=dict)

    def interval_default(self) -> int:
        return int(getattr(settings, self.interval_setting))


# The keys are the names the entries had in app.conf.beat_schedule, so logs read the same.
SCHEDULES: dict[str, ScheduleSpec] = {
    spec.key: spec
    for spec in (
        ScheduleSpec(
            key=SYNC_D1,
            label="D1 sync",
            task="sync.d1_sync_run",
            interval_setting="SYNC_D1_INTERVAL_SECONDS",
            kwargs={"reason": "scheduled"},
        ),
        # Same default cadence as the D1 sync: a new photo_url reaches D1 in the next D1 sync, and
        # replaced objects are deleted once a D1 sync has started after their orphaning.
        ScheduleSpec(
            key=ASSETS_R2,
            label="R2 asset push",
            task="assets.r2_sync_run",
            interval_setting="SYNC_D1_INTERVAL_SECONDS",
            kwargs={"reason": "beat"},
        ),
    )
}


@dataclass(frozen=True)
class ScheduleSend:
    """One task beat is to send now."""

    key: str
    task: str
    kwargs: dict
    interval_seconds: int


def schedules_ensure() -> int:
    """Create the missing rows, enabled at the settings default; returns how many were created."""
    existing = set(Schedule.objects.filter(key__in=SCHEDULES).values_list("key", flat=True))
    missing = [Schedule(key=key) for key in SCHEDULES if key not in existing]
    # ignore_conflicts: beat's start-up and a migrate may race to create the same row.
    Schedule.objects.bulk_create(missing, ignore_conflicts=True)
    return len(missing)


def schedules_due_claim(*, now: datetime) -> list[ScheduleSend]:
    """Mark every enabled schedule whose time has come as sent at `now`, and return what to send.

    A schedule is due once `last_sent_at + interval` has passed (or it was
    never sent). Only one send per due time, whatever the interval became in
    between: a shorter interval makes it due at most once, now, never once per
    missed period. Rows another transaction holds (an admin save, a second
    beat's claim) are left for the next check rather than waited for.
    """
    due: list[ScheduleSend] = []
    with transaction.atomic():
        rows = Schedule.objects.select_for_update(skip_locked=True).filter(enabled=True, key__in=SCHEDULES)
        for row in rows:
            spec = SCHEDULES[row.key]
            interval = row.interval_effective
            if row.last_sent_at is not None and now < row.last_sent_at + timedelta(seconds=interval):
                continue
            due.append(
                ScheduleSend(key=row.key, task=spec.task, kwargs=dict(spec.kwargs), interval_seconds=interval)
            )
        if due:
            Schedule.objects.filter(key__in=[d.key for d in due]).update(last_sent_at=now)
    return due


def schedules_enabled_set(*, schedules: Iterable[Schedule], enabled: bool, actor) -> int:
    """Pause (enabled=False) or resume schedules, one audit event per one that changed; returns that count.

    Pausing only stops further sends: a run already started, or already sent
    to the broker, goes on to its end.
    """
    from accounts.models import AuditEvent
    from accounts.services import audit_record

    changed = 0
    with transaction.atomic():
        keys = [s.pk for s in schedules]
        for schedule in Schedule.objects.select_for_update().filter(pk__in=keys).exclude(enabled=enabled):
            schedule.enabled = enabled
            schedule.save(update_fields=["enabled", "updated_at"])
            audit_record(
                actor=actor,
                action=AuditEvent.Action.UPDATE,
                obj=schedule,
                changes={"enabled": [not enabled, enabled]},
            )
            changed += 1
    return changed
