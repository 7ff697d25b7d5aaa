"""One sync to D1: incremental (the change log) or full, with the guards that protect D1 rows we did not write.

Position protocol (PostgreSQL, the supported path)
-------------------------------------------------
Triggers log every changed key with the writing transaction's xid into
`sync_change`. A sync runs inside ONE REPEATABLE READ transaction:

1. take the snapshot S (pg_current_snapshot()); the change log and the rows
   are read as of S;
2. push the rows (absent in S means deleted) to D1 and wait for D1 to confirm;
3. delete the change rows whose transaction S saw (pg_visible_in_snapshot),
   store pg_snapshot_xmin(S) as the new position and commit.

A transaction still running at S (even one numbered below a committed one)
is invisible in S: its change rows survive step 3 and the next sync picks
them up. Nothing is lost and the position only moves after D1 confirmed. A
crash anywhere before the commit leaves the log untouched; the next sync
resends, which is safe because every write is an idempotent upsert/delete.

D1 rows carry `sync_run` (this run's id, monotonic): an update only applies
over an older run's row, and deletes leave a tombstone that blocks inserts
from the same or older runs, so a late duplicate request can never resurrect
a deleted agent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .bookkeeping import (
    d1_unmanaged_count,
    restore_point_take,
    sync_run_begin,
    sync_run_pushing,
    sync_target_name,
)
from .changes import d1_changes_mark
from .d1_client import D1Client, SqliteTransport, d1_client_from_settings
from .locks import sync_lock
from .models import SyncChange, SyncRun, SyncState
from .push import (
    ID_CHUNK,
    Pusher,
    RowPreparer,
    push_builders,
    row_preparer,
    send_agent_deletes,
    send_agents,
    send_industries,
    send_industry_deletes,
)
from .schema_migrate import d1_migrate
from .selectors import (
    agent_ids_existing,
    agents_rows_all,
    agents_rows_by_ids,
    d1_agent_ids_page,
    d1_industries,
    industries_rows,
    pending_changes,
)

logger = logging.getLogger(__name__)

UNMANAGED_REPORT_MAX = 10_000


@dataclass(frozen=True)
class SyncOptions:
    """What an operator allowed this run to do to D1 rows the back-office did not write.

    prune: delete D1 agents (and industries) PostgreSQL lacks, after a restore point.
    keep_unknown: let the first sync run although D1 holds agents PostgreSQL does not know
        (they stay in D1, untouched).
    overwrite_unmanaged: replace D1 agents no sync of ours wrote (`sync_run = 0`) even when
        their content differs (the live site's slugs are public URLs).
    """

    prune: bool = False
    keep_unknown: bool = False
    overwrite_unmanaged: bool = False


def sync_run_execute(
    *,
    full: bool = False,
    dry_run: bool = False,
    reason: str = "",
    client: D1Client | None = None,
    record_position: bool = True,
    options: SyncOptions | None = None,
    lock_held: bool = False,
) -> SyncRun:
    """Run one sync to D1 and return its SyncRun (status skipped if another sync holds the lock).

    `record_position=False` pushes without consuming the change log (the
    benchmark uses it against a scratch engine). A D1 agent is deleted only
    when PostgreSQL deleted it (the change log) or with `options.prune`.
    `lock_held`: the caller holds `sync_lock` already (the benchmark, which
    keeps real syncs away from its synthetic rows); taking it again would be
    refused by the lock's re-entrancy guard.
    """
    options = options or SyncOptions()
    full = full or options.prune
    kind = SyncRun.Kind.FULL if full else SyncRun.Kind.INCREMENTAL
    with nullcontext(True) if lock_held else sync_lock() as acquired:
        if not acquired:
            now = timezone.now()
            return SyncRun.objects.create(
                kind=kind,
                status=SyncRun.Status.SKIPPED,
                reason=reason,
                started_at=now,
                finished_at=now,
                error="another sync holds the lock",
            )
        own_client = client is None
        client = client or d1_client_from_settings()
        target = sync_target_name(client, own_client=own_client)
        try:
            if isinstance(client.transport, SqliteTransport) and not dry_run:
                # The local stand-in is ours to shape; a real D1 is migrated on purpose (d1_migrate).
                d1_migrate(client=client, target=target)
            run = sync_run_begin(kind=kind, reason=reason, target=target, pruned=options.prune)
            try:
                with sync_run_pushing(run, client=client, dry_run=dry_run) as pusher:
                    _sync_postgresql(
                        run=run,
                        pusher=pusher,
                        full=full,
                        dry_run=dry_run,
                        record_position=record_position,
                        options=options,
                    )
            except Exception:
                # Recorded on the run (failed, with the error); the caller reads the run.
                logger.exception("D1 sync #%s failed", run.pk)
        finally:
            if own_client:
                client.close()
        return run


def d1_unknown_agent_ids(*, client: D1Client) -> list[str]:
    """D1 agent ids PostgreSQL does not have (in the caller's snapshot), paged by id."""
    after = ""
    unknown: list[str] = []
    while True:
        page = d1_agent_ids_page(client=client, after=after)
        if not page:
            return unknown
        existing = agent_ids_existing(page)
        unknown.extend(i for i in page if i not in existing)
        after = page[-1]


def _sync_postgresql(
    *, run: SyncRun, pusher: Pusher, full: bool, dry_run: bool, record_position: bool, options: SyncOptions
) -> None:
    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute(
                "SELECT pg_current_snapshot()::text, pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
            )
            snapshot, xmin = cur.fetchone()
        state, _ = SyncState.objects.get_or_create(pk=1)
        run.snapshot = snapshot
        run.position_before = state.position_xmin
        first = state.position_xmin is None
        if first and not full:
            # Nothing ever reached D1 from here: the change log cannot describe
            # the first load, a full sync does.
            full = True
            run.kind = SyncRun.Kind.FULL
        client = pusher.client
        unknown: list[str] = []
        if full and record_position:
            unknown = d1_unknown_agent_ids(client=client)
            run.unknown_in_d1 = len(unknown)
            if first and unknown and not (options.prune or options.keep_unknown):
                transaction.set_rollback(True)
                run.status = SyncRun.Status.REFUSED
                run.error = (
                    f"D1 holds {len(unknown):,} agents PostgreSQL does not know (e.g. {', '.join(unknown[:5])}); "
                    "nothing was written. Adopt them first with `manage.py d1_pull`, or keep them as they "
                    "are with `sync_d1 --keep-unknown`, or delete them with `sync_d1 --full --prune` "
                    "(a restore point is taken first)."
                )
                return
        guarded = (
            record_position
            and not options.overwrite_unmanaged
            and not dry_run
            and (full or SyncChange.objects.filter(table_name="agents").exists())
            and d1_unmanaged_count(client) > 0
        )
        if guarded:
            # Rows of the system we took over: only overwritten when the content is the same.
            pusher.builders = push_builders(unmanaged_guard=True)
        prep = row_preparer(pusher, run.pk)
        if full:
            _push_full(
                run=run, pusher=pusher, prep=prep, dry_run=dry_run, prune=options.prune, unknown=unknown
            )
            pushed_ids = None
        else:
            pushed_ids = _push_incremental(run=run, pusher=pusher, prep=prep, position=state.position_xmin)
        pusher.wait()
        if guarded:
            run.unmanaged_kept = _unmanaged_kept(client, pushed_ids)
        failures = pusher.result.failures
        if dry_run or not record_position:
            if not record_position:
                run.kind = SyncRun.Kind.BENCHMARK
            transaction.set_rollback(True)
            run.status = SyncRun.Status.DRY_RUN if dry_run else SyncRun.Status.COMPLETED
            return
        with connection.cursor() as cur:
            cur.execute(
                "DELETE FROM sync_change"
                " WHERE xid < pg_snapshot_xmax(%s::pg_snapshot)::text::bigint"
                " AND pg_visible_in_snapshot(xid::text::xid8, %s::pg_snapshot)",
                [snapshot, snapshot],
            )
        # Skipped rows and unmanaged rows left alone stay pending so a later sync retries them.
        pending = [(f["table"], f["id"]) for f in failures if f["id"] is not None]
        d1_changes_mark(rows=pending + [("agents", i) for i in run.unmanaged_kept])
        state.position_xmin = xmin
        state.position_snapshot = snapshot
        state.last_success_run = run
        state.save()
        run.position_after = xmin
        if run.unmanaged_kept:
            run.error = (
                f"{len(run.unmanaged_kept):,} D1 agents that no back-office sync wrote differ from PostgreSQL "
                "and were left as they are (their slugs may be public URLs). Adopt them with "
                "`manage.py d1_pull` (add `--prefer d1` to take D1's content) or overwrite them with "
                "`sync_d1 --overwrite-unmanaged`."
            )
        run.status = SyncRun.Status.PARTIAL if failures or run.unmanaged_kept else SyncRun.Status.COMPLETED


def _unmanaged_kept(client: D1Client, pushed_ids: Sequence[str] | None) -> list[str]:
    """Agents we pushed that D1 still marks as never written by us: the guard left them alone."""
    rows = client.rows("SELECT id FROM agents WHERE sync_run = 0 ORDER BY id")
    ids = [r[0] for r in rows]
    if pushed_ids is not None:
        wanted = set(pushed_ids)
        ids = [i for i in ids if i in wanted]
    existing = set()
    for start in range(0, len(ids), ID_CHUNK):
        existing |= agent_ids_existing(ids[start : start + ID_CHUNK])
    return [i for i in ids if i in existing][:UNMANAGED_REPORT_MAX]


def _push_incremental(*, run: SyncRun, pusher: Pusher, prep: RowPreparer, position: int | None) -> list[str]:
    changes = pending_changes(position=position)
    industry_ids = changes.get("industry_config", [])
    agent_ids = changes.get("agents", [])
    run.changes_read = len(industry_ids) + len(agent_ids)

    industry_rows = industries_rows(industry_ids) if industry_ids else []
    gone_industries = sorted(set(industry_ids) - {r[0] for r in industry_rows})
    send_industries(pusher, prep, industry_rows)
    pusher.wait()

    deleted: list[str] = []

    def present_rows() -> Iterator[tuple]:
        for start in range(0, len(agent_ids), ID_CHUNK):
            chunk = agent_ids[start : start + ID_CHUNK]
            rows = agents_rows_by_ids(chunk)
            found = {r[0] for r in rows}
            deleted.extend(i for i in chunk if i not in found)
            yield from rows

    send_agents(pusher, prep, present_rows())
    pusher.wait()
    if deleted:
        if len(deleted) > settings.SYNC_D1_BOOKMARK_DELETES and not pusher.dry_run:
            restore_point_take(run, pusher.client, f"deleting {len(deleted):,} agents")
        send_agent_deletes(pusher, sorted(deleted), run.pk)
    if gone_industries:
        pusher.wait()
        send_industry_deletes(pusher, gone_industries)
    return agent_ids


def _push_full(
    *, run: SyncRun, pusher: Pusher, prep: RowPreparer, dry_run: bool, prune: bool, unknown: Sequence[str]
) -> None:
    send_industries(pusher, prep, industries_rows())
    pusher.wait()
    send_agents(pusher, prep, agents_rows_all())
    pusher.wait()
    if dry_run or not prune:
        # What D1 holds and PostgreSQL never had stays: only --prune deletes it.
        return
    pg_industries = {r[0] for r in industries_rows()}
    gone = sorted(set(d1_industries(client=pusher.client)) - pg_industries)
    if unknown or gone:
        restore_point_take(run, pusher.client, f"pruning {len(unknown):,} agents and {len(gone)} industries")
    if unknown:
        send_agent_deletes(pusher, unknown, run.pk)
    if gone:
        pusher.wait()
        send_industry_deletes(pusher, gone)
