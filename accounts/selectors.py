"""Reads for the audit trail: everything that touched one agent, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from .models import AuditEvent

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class HistoryItem:
    when: datetime | None
    kind: str  # "admin", "import", "sync"
    actor: str
    summary: str
    changes: dict[str, list[object]]
    url: str = ""


def agent_history(*, agent, limit: int = 50) -> list[HistoryItem]:
    """Admin edits (AuditEvent), import journal entries (create/update by a job, rolled back or not)
    and where the agent stands with the D1 sync."""
    from django.urls import reverse

    from imports.models import ImportJournalEntry
    from sync.models import SyncChange, SyncRun

    items: list[HistoryItem] = []
    events = AuditEvent.objects.filter(object_type="agents.agent", object_id=str(agent.pk))[:limit]
    for event in events:
        fields = ", ".join(event.changes) if event.action == AuditEvent.Action.UPDATE else ""
        items.append(
            HistoryItem(
                when=event.created_at,
                kind="admin",
                actor=event.actor_name or "—",
                summary=f"{event.get_action_display()} in the admin" + (f": {fields}" if fields else ""),
                changes=event.changes if event.action == AuditEvent.Action.UPDATE else {},
            )
        )
    journal = (
        ImportJournalEntry.objects.filter(agent_id=agent.pk)
        .select_related("job", "job__created_by")
        .order_by("-id")[:limit]
    )
    for entry in journal:
        job = entry.job
        verb = "created" if entry.action == ImportJournalEntry.Action.CREATE else "updated"
        summary = f"{verb} by import #{job.pk} ({job.original_name}), job {job.get_status_display()}"
        items.append(
            HistoryItem(
                when=entry.after_updated_at,
                kind="import",
                actor=job.created_by.get_username() if job.created_by else "—",
                summary=summary,
                changes={},
                url=reverse("admin:imports_importjob_change", args=[job.pk]),
            )
        )
    # D1: is a change still waiting, or which successful sync carried the latest one?
    if SyncChange.objects.filter(table_name="agents", row_id=str(agent.pk)).exists():
        items.append(HistoryItem(when=None, kind="sync", actor="—",
                                 summary="change pending: not yet pushed to D1", changes={}))  # fmt: skip
    else:
        # The first successful sync that started after the edit is the one that carried it.
        run = (
            SyncRun.objects.successful()
            .filter(started_at__gte=agent.updated_at)
            .order_by("started_at", "id")
            .first()
        )
        if run is not None:
            items.append(
                HistoryItem(
                    when=run.finished_at or run.started_at,
                    kind="sync",
                    actor=run.reason or "—",
                    summary=f"latest version pushed to D1 by {run.get_kind_display()} sync #{run.pk}",
                    changes={},
                    url=reverse("admin:sync_syncrun_change", args=[run.pk]),
                )
            )
    # Pending (no date) first, then newest first.
    items.sort(key=lambda item: (item.when is None, item.when or _EPOCH), reverse=True)
    return items[:limit]
