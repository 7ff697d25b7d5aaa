"""What other apps call to reach D1: ask for a sync, keep rows pending in the change log."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, transaction


def d1_sync_request(*, reason: str) -> None:
    """Ask for a sync soon (after each completed import or rollback).

    Enqueued on commit, so the sync's snapshot is sure to contain the caller's
    writes; a sync already running makes the task retry later.
    """
    from .tasks import d1_sync_run_task

    transaction.on_commit(lambda: d1_sync_run_task.delay(reason=reason[:200]))


def d1_changes_mark(*, rows: Sequence[tuple[str, str]]) -> None:
    """Keep (table, id) pending for the next sync although PostgreSQL did not change them.

    Runs in the caller's transaction: the rows become visible to a sync when it commits.
    """
    if not rows:
        return
    with connection.cursor() as cur:
        cur.executemany(
            "INSERT INTO sync_change (table_name, row_id, op, xid, created_at)"
            " VALUES (%s, %s, 'U', pg_current_xact_id()::text::bigint, now())",
            list(rows),
        )
