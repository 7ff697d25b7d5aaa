"""Writes for the D1 sync: schema migrations, incremental/full sync, verification and repair.

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
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from agents.resources import D1_AGENT_COLUMNS

from .d1_client import (
    REQUEST_MAX_BYTES,
    REQUEST_MAX_STATEMENTS,
    D1Client,
    D1Error,
    D1StatementError,
    SqliteTransport,
    d1_client_from_settings,
    d1_error_text,
    d1_target_describe,
)
from .d1_schema import migration_conflict_message
from .models import D1MigrationRecord, SyncChange, SyncRun, SyncState, VerifyRun
from .selectors import (
    AGENT_PUSH_COLUMNS,
    INDUSTRY_D1_COLUMNS,
    agent_ids_existing,
    agents_counts_by_industry_state,
    agents_rows_all,
    agents_rows_by_ids,
    agents_rows_in_range,
    d1_agent_ids_page,
    d1_counts_by_industry_state,
    d1_industries,
    d1_migrations_plan,
    d1_range_checksums,
    d1_versions_in_range,
    industries_rows,
    industry_as_d1,
    pending_changes,
    row_body_and_version,
)
from .sqlite_sql import (
    STATEMENT_BYTE_BUDGET,
    PreparedRow,
    Statement,
    UnencodableValue,
    UpsertBuilder,
    delete_statements,
    prepare_row,
    quote_ident,
)
from .time_travel import d1_restore_point_take

logger = logging.getLogger(__name__)

# "EFD1": the advisory lock key shared by every D1 writer of this project.
SYNC_LOCK_KEY = 0x45464431
_sync_lock_state = threading.local()
ID_CHUNK = 2000
UNMANAGED_REPORT_MAX = 10_000
VERIFY_RANGE_ROWS = 5000


@dataclass(frozen=True)
class _Builders:
    agents: UpsertBuilder
    industries: UpsertBuilder
    tombstones: UpsertBuilder
    budget: int


def _builders(*, unmanaged_guard: bool = False) -> _Builders:
    # Budgets come from settings so tests can force many small requests.
    budget = min(
        int(getattr(settings, "SYNC_D1_STATEMENT_MAX_BYTES", STATEMENT_BYTE_BUDGET)), STATEMENT_BYTE_BUDGET
    )
    guard = 'excluded."sync_run" >= "agents"."sync_run"'
    if unmanaged_guard:
        # A row no sync of ours wrote (sync_run 0) is only taken over when its content is ours already.
        same = " AND ".join(
            f'"agents".{quote_ident(c)} IS excluded.{quote_ident(c)}' for c in D1_AGENT_COLUMNS
        )
        guard += f' AND ("agents"."sync_run" > 0 OR ({same}))'
    return _Builders(
        agents=UpsertBuilder(
            table="agents", columns=AGENT_PUSH_COLUMNS, key="id", guard=guard, budget=budget
        ),
        industries=UpsertBuilder(
            table="industry_config", columns=INDUSTRY_D1_COLUMNS, key="industry", budget=budget
        ),
        tombstones=UpsertBuilder(
            table="sync_tombstones",
            columns=("id", "sync_run"),
            key="id",
            guard='excluded."sync_run" > "sync_tombstones"."sync_run"',
            budget=budget,
        ),
        budget=budget,
    )


# --- enqueueing (called by the import pipeline) -------------------------------------


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


# --- locking ------------------------------------------------------------------------


@contextmanager
def sync_lock() -> Iterator[bool]:
    """Yield True when this process holds the D1 writer lock, False when another one does.

    PostgreSQL advisory locks are re-entrant within a session, so a sync started in-process
    by work that already holds the lock (a pull's import finishing, in eager mode) is told
    False like any other second writer.
    """
    if getattr(_sync_lock_state, "held", False):
        yield False
        return
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s)", [SYNC_LOCK_KEY])
        acquired = bool(cur.fetchone()[0])
    _sync_lock_state.held = acquired
    try:
        yield acquired
    finally:
        if acquired:
            _sync_lock_state.held = False
            with connection.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", [SYNC_LOCK_KEY])


# --- D1 schema migrations -------------------------------------------------------------


def d1_migrate(*, client: D1Client, target: str = "") -> list[str]:
    """Bring the target's schema up to date without ever failing on what it already has.

    Each unrecorded migration is applied whole, applied in part (only the
    statements whose objects are missing) or recorded as present; every
    one goes with its `d1_migrations` row in one request (one D1
    transaction). An unreconcilable schema stops the run before anything is
    written. Returns the names of the migrations it applied or recorded.
    """
    plans = d1_migrations_plan(client=client)
    if any(p.action == "conflict" for p in plans):
        raise D1SchemaConflict(migration_conflict_message(plans))
    target = target or client.transport.name
    done: list[str] = []
    for plan in plans:
        if plan.action == "applied":
            continue
        statements = [Statement(sql) for sql in plan.statements_to_run()]
        statements.append(Statement("INSERT INTO d1_migrations (name) VALUES (?)", (plan.name,)))
        client.execute(statements)
        action = {
            "apply": D1MigrationRecord.Action.APPLIED,
            "partial": D1MigrationRecord.Action.PARTIAL,
            "record": D1MigrationRecord.Action.RECORDED,
        }[plan.action]
        D1MigrationRecord.objects.create(
            target=target[:300],
            name=plan.name,
            action=action,
            statements_run=len(statements) - 1,
            detail=", ".join(c.obj for c in plan.missing)[:4000] if plan.action == "partial" else "",
        )
        logger.info("D1 migration %s: %s", plan.name, action.label)
        done.append(plan.name)
    return done


class D1SchemaConflict(Exception):
    """The target's schema contradicts a migration; nothing was written."""


# --- pushing --------------------------------------------------------------------------


@dataclass
class _Unit:
    """Statements that must travel together, and the rows (or keys) they write."""

    statements: list[Statement]
    rows: tuple

    @property
    def size(self) -> int:
        return sum(s.size for s in self.statements)


@dataclass
class PushResult:
    upserted: int = 0
    deleted: int = 0
    failures: list[dict] = field(default_factory=list)


def _row_key(row: object) -> object:
    return row.key if isinstance(row, PreparedRow) else row


class Pusher:
    """Sends units to D1 in bounded requests, several in flight.

    A request D1 rejects (HTTP 400) is split in halves until the offending
    row is isolated; that row is reported and skipped, the rest lands.
    """

    def __init__(self, *, client: D1Client, concurrency: int = 4, dry_run: bool = False):
        self.client = client
        self.dry_run = dry_run
        # sqlite3 connections are not shareable across threads.
        self.concurrency = 1 if isinstance(client.transport, SqliteTransport) else max(1, concurrency)
        self.result = PushResult()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency) if self.concurrency > 1 else None
        self._slots = threading.BoundedSemaphore(self.concurrency * 2)
        self._futures: list[Future] = []
        # Set by the first error that is not about a row (endpoint, credentials, budget): queued requests stop.
        self._abort: BaseException | None = None
        self.request_max_bytes = int(getattr(settings, "SYNC_D1_REQUEST_MAX_BYTES", REQUEST_MAX_BYTES))
        self.builders = _builders()

    def close(self) -> None:
        if self._pool:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def send(
        self,
        units: Iterable[_Unit],
        *,
        table: str,
        counter: str,
        rebuild: Callable[[Sequence], list[_Unit]],
    ) -> None:
        for request in self._group(units):
            if self._pool is None:
                self._run(request, table, counter, rebuild)
                continue
            self._raise_first_error()
            self._slots.acquire()
            future = self._pool.submit(self._run, request, table, counter, rebuild)
            future.add_done_callback(lambda _f: self._slots.release())
            self._futures.append(future)

    def wait(self) -> PushResult:
        """Barrier: every request sent so far has been confirmed (or raised)."""
        futures, self._futures = self._futures, []
        for future in futures:
            future.result()
        return self.result

    def _raise_first_error(self) -> None:
        done = [f for f in self._futures if f.done()]
        for future in done:
            future.result()
        self._futures = [f for f in self._futures if not f.done()]

    def _group(self, units: Iterable[_Unit]) -> Iterator[list[_Unit]]:
        batch: list[_Unit] = []
        used = count = 0
        for unit in units:
            size, n = unit.size, len(unit.statements)
            if batch and (used + size > self.request_max_bytes or count + n > REQUEST_MAX_STATEMENTS):
                yield batch
                batch, used, count = [], 0, 0
            batch.append(unit)
            used += size
            count += n
        if batch:
            yield batch

    def _run(self, request: list[_Unit], table: str, counter: str, rebuild) -> None:
        statements = [s for u in request for s in u.statements]
        rows = [r for u in request for r in u.rows]
        if self.dry_run:
            with self.client.stats.lock:
                self.client.stats.statements += len(statements)
                self.client.stats.requests += 1
                self.client.stats.bytes_sent += sum(s.size for s in statements)
                self.client.stats.max_statement_bytes = max(
                    [self.client.stats.max_statement_bytes, *(s.size for s in statements)]
                )
            self._count(counter, len(rows))
            return
        if self._abort is not None:
            return
        try:
            self.client.execute(statements)
        except D1StatementError as exc:
            if len(rows) <= 1:
                self._fail(table, rows[0] if rows else None, str(exc))
                return
            half = len(rows) // 2
            for part in (rows[:half], rows[half:]):
                for group in self._group(rebuild(part)):
                    self._run(group, table, counter, rebuild)
            return
        except D1Error as exc:
            # Not about a row: splitting or sending the next request would fail the same way.
            self._abort = exc
            raise
        self._count(counter, len(rows))

    def _count(self, counter: str, n: int) -> None:
        with self._lock:
            setattr(self.result, counter, getattr(self.result, counter) + n)

    def _fail(self, table: str, row: object, error: str) -> None:
        key = _row_key(row)
        error = d1_error_text(error)
        logger.error("D1 rejected %s %s, skipped: %s", table, key, error)
        with self._lock:
            self.result.failures.append({"table": table, "id": key, "error": error})


def _agent_prepared(values: Sequence[object], run_id: int) -> PreparedRow:
    body, version = row_body_and_version(values)
    return PreparedRow(values[0], f"({body},{version},{run_id})", (*values, version, run_id))


def _agent_units(b: _Builders, rows: Iterable[PreparedRow], on_error=None) -> Iterator[_Unit]:
    # on_error(key, reason): a row no statement can carry (over D1's 2 MB value limit) is reported, not fatal.
    for stmt in b.agents.statements(rows, on_error):
        yield _Unit([stmt], stmt.rows)


def _industry_units(b: _Builders, rows: Iterable[PreparedRow], on_error=None) -> list[_Unit]:
    return [_Unit([stmt], stmt.rows) for stmt in b.industries.statements(rows, on_error)]


def _agent_delete_units(b: _Builders, ids: Sequence[str], run_id: int) -> list[_Unit]:
    units = []
    for start in range(0, len(ids), ID_CHUNK):
        chunk = list(ids[start : start + ID_CHUNK])
        tombs = list(b.tombstones.statements(prepare_row((i, run_id)) for i in chunk))
        # A delete from an older run must not remove a row a newer run re-created.
        deletes = list(
            delete_statements("agents", "id", chunk, where=f'"sync_run" <= {int(run_id)}', budget=b.budget)
        )
        units.append(_Unit(tombs + deletes, tuple(chunk)))
    return units


def _industry_delete_units(b: _Builders, ids: Sequence[str]) -> list[_Unit]:
    return [
        _Unit([s], s.rows) for s in delete_statements("industry_config", "industry", ids, budget=b.budget)
    ]


class _RowPreparer:
    """Prepares PostgreSQL rows for D1, diverting rows that cannot be rendered to failures.

    Whatever rendering one row raises, that row is quarantined (reported on
    the run, skipped, kept pending) and the sync goes on: one cell must never
    stop every sync.
    """

    def __init__(self, pusher: Pusher, run_id: int):
        self.pusher = pusher
        self.run_id = run_id

    def agents(self, rows: Iterable[tuple]) -> Iterator[PreparedRow]:
        for values in rows:
            try:
                prepared = _agent_prepared(values, self.run_id)
            except Exception as exc:
                self._quarantine("agents", values, exc)
                continue
            yield prepared

    def industries(self, rows: Iterable[tuple]) -> Iterator[PreparedRow]:
        for values in rows:
            try:
                prepared = prepare_row(values)
            except Exception as exc:
                self._quarantine("industry_config", values, exc)
                continue
            yield prepared

    def refused(self, table: str):
        """on_error for UpsertBuilder.statements: a row no statement can carry."""
        return lambda key, reason: self.pusher._fail(table, key, reason)

    def _quarantine(self, table: str, values: Sequence[object], exc: Exception) -> None:
        if isinstance(exc, UnencodableValue):
            reason = f"cannot be written to D1: {exc}"
        else:  # not foreseen: keep the traceback in the log, a short reason on the run
            logger.exception("Rendering %s %s for D1 failed", table, values[0])
            reason = f"cannot be written to D1 ({type(exc).__name__}: {exc})"
        self.pusher._fail(table, values[0], reason)


def _send_agents(pusher: Pusher, prep: _RowPreparer, rows: Iterable[tuple]) -> None:
    b = pusher.builders

    refused = prep.refused("agents")

    def rebuild(part: Sequence[PreparedRow]) -> list[_Unit]:
        return list(_agent_units(b, part, refused))

    pusher.send(
        _agent_units(b, prep.agents(rows), refused), table="agents", counter="upserted", rebuild=rebuild
    )


def _send_industries(pusher: Pusher, prep: _RowPreparer, rows: Iterable[tuple]) -> None:
    b = pusher.builders
    refused = prep.refused("industry_config")
    pusher.send(
        _industry_units(b, prep.industries(rows), refused),
        table="industry_config",
        counter="upserted",
        rebuild=lambda part: _industry_units(b, part, refused),
    )


def _send_agent_deletes(pusher: Pusher, ids: Sequence[str], run_id: int) -> None:
    b = pusher.builders
    pusher.send(
        _agent_delete_units(b, ids, run_id),
        table="agents",
        counter="deleted",
        rebuild=lambda part: _agent_delete_units(b, list(part), run_id),
    )


def _send_industry_deletes(pusher: Pusher, ids: Sequence[str]) -> None:
    b = pusher.builders
    pusher.send(
        _industry_delete_units(b, ids),
        table="industry_config",
        counter="deleted",
        rebuild=lambda part: _industry_delete_units(b, list(part)),
    )


# --- sync -----------------------------------------------------------------------------


def _concurrency() -> int:
    return int(getattr(settings, "SYNC_D1_CONCURRENCY", 4))


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
) -> SyncRun:
    """Run one sync to D1 and return its SyncRun (status skipped if another sync holds the lock).

    `record_position=False` pushes without consuming the change log (the
    benchmark uses it against a scratch engine). A D1 agent is deleted only
    when PostgreSQL deleted it (the change log) or with `options.prune`.
    """
    options = options or SyncOptions()
    full = full or options.prune
    with sync_lock() as acquired:
        now = timezone.now()
        if not acquired:
            return SyncRun.objects.create(
                kind=SyncRun.Kind.FULL if full else SyncRun.Kind.INCREMENTAL,
                status=SyncRun.Status.SKIPPED,
                reason=reason,
                started_at=now,
                finished_at=now,
                error="another sync holds the lock",
            )
        # We hold the lock, so a run still marked running died with its worker.
        SyncRun.objects.filter(status=SyncRun.Status.RUNNING).update(
            status=SyncRun.Status.FAILED, error="interrupted (worker died)", finished_at=now
        )
        own_client = client is None
        client = client or d1_client_from_settings()
        target = d1_target_describe() if own_client else client.transport.name
        if isinstance(client.transport, SqliteTransport) and not dry_run:
            # The local stand-in is ours to shape; a real D1 is migrated on purpose (d1_migrate).
            d1_migrate(client=client, target=target)
        run = SyncRun.objects.create(
            kind=SyncRun.Kind.FULL if full else SyncRun.Kind.INCREMENTAL,
            reason=reason,
            target=target,
            pruned=options.prune,
            started_at=timezone.now(),
        )
        started = time.monotonic()
        pusher = Pusher(client=client, concurrency=_concurrency(), dry_run=dry_run)
        try:
            _sync_postgresql(
                run=run,
                pusher=pusher,
                full=full,
                dry_run=dry_run,
                record_position=record_position,
                options=options,
            )
        except Exception as exc:
            logger.exception("D1 sync #%s failed", run.pk)
            run.status = SyncRun.Status.FAILED
            run.error = d1_error_text(exc, limit=4000)
        finally:
            pusher.close()
            result = pusher.result
            if (
                run.status == SyncRun.Status.PARTIAL
                and result.failures
                and not (result.upserted or result.deleted)
            ):
                # Nothing landed: calling that partial would let cron and `sync_d1` report success.
                run.status = SyncRun.Status.FAILED
                first = result.failures[0]
                run.error = d1_error_text(
                    f"every write failed ({len(result.failures):,} rows rejected; first: {first['table']} "
                    f"{first['id']}: {first['error']})" + (f"; {run.error}" if run.error else ""),
                    limit=4000,
                )
            stats = client.stats
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
            if own_client:
                client.close()
            run.save()
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


def _d1_unmanaged_count(client: D1Client) -> int:
    return int(client.rows("SELECT count(*) FROM agents WHERE sync_run = 0")[0][0])


def _restore_point(run: SyncRun, client: D1Client, why: str) -> None:
    """Take a restore point before deleting; without one, nothing is deleted (D1Error propagates)."""
    point = d1_restore_point_take(client=client)
    run.bookmark = point.bookmark[:200]
    run.restore_hint = point.restore_hint
    run.save(update_fields=["bookmark", "restore_hint"])
    logger.warning("D1 sync #%s: restore point %s before %s; to go back: %s", run.pk, point.bookmark, why,
                   point.restore_hint)  # fmt: skip


def _bookmark_deletes_threshold() -> int:
    return settings.SYNC_D1_BOOKMARK_DELETES


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
            and _d1_unmanaged_count(client) > 0
        )
        if guarded:
            # Rows of the system we took over: only overwritten when the content is the same.
            pusher.builders = _builders(unmanaged_guard=True)
        prep = _RowPreparer(pusher, run.pk)
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
            run.status = SyncRun.Status.DRY_RUN if dry_run else SyncRun.Status.SUCCESS
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
        run.status = SyncRun.Status.PARTIAL if failures or run.unmanaged_kept else SyncRun.Status.SUCCESS


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


def _push_incremental(*, run: SyncRun, pusher: Pusher, prep: _RowPreparer, position: int | None) -> list[str]:
    changes = pending_changes(position=position)
    industry_ids = changes.get("industry_config", [])
    agent_ids = changes.get("agents", [])
    run.changes_read = len(industry_ids) + len(agent_ids)

    industry_rows = industries_rows(industry_ids) if industry_ids else []
    gone_industries = sorted(set(industry_ids) - {r[0] for r in industry_rows})
    _send_industries(pusher, prep, industry_rows)
    pusher.wait()

    deleted: list[str] = []

    def present_rows() -> Iterator[tuple]:
        for start in range(0, len(agent_ids), ID_CHUNK):
            chunk = agent_ids[start : start + ID_CHUNK]
            rows = agents_rows_by_ids(chunk)
            found = {r[0] for r in rows}
            deleted.extend(i for i in chunk if i not in found)
            yield from rows

    _send_agents(pusher, prep, present_rows())
    pusher.wait()
    if deleted:
        if len(deleted) > _bookmark_deletes_threshold() and not pusher.dry_run:
            _restore_point(run, pusher.client, f"deleting {len(deleted):,} agents")
        _send_agent_deletes(pusher, sorted(deleted), run.pk)
    if gone_industries:
        pusher.wait()
        _send_industry_deletes(pusher, gone_industries)
    return agent_ids


def _push_full(
    *, run: SyncRun, pusher: Pusher, prep: _RowPreparer, dry_run: bool, prune: bool, unknown: Sequence[str]
) -> None:
    _send_industries(pusher, prep, industries_rows())
    pusher.wait()
    _send_agents(pusher, prep, agents_rows_all())
    pusher.wait()
    if dry_run or not prune:
        # What D1 holds and PostgreSQL never had stays: only --prune deletes it.
        return
    pg_industries = {r[0] for r in industries_rows()}
    gone = sorted(set(d1_industries(client=pusher.client)) - pg_industries)
    if unknown or gone:
        _restore_point(run, pusher.client, f"pruning {len(unknown):,} agents and {len(gone)} industries")
    if unknown:
        _send_agent_deletes(pusher, unknown, run.pk)
    if gone:
        pusher.wait()
        _send_industry_deletes(pusher, gone)


# --- verification -------------------------------------------------------------------


@dataclass
class _CompareReport:
    ranges: list[dict]
    drifted: list[dict]
    count_drift: list[dict]
    industry_drift: list[dict]

    @property
    def clean(self) -> bool:
        return not (self.drifted or self.count_drift or self.industry_drift)


def _pg_ranges(range_rows: int) -> list[dict]:
    """PostgreSQL's agents in id order, cut into ranges of `range_rows` with count and version sum."""
    ranges: list[dict] = []
    current: dict | None = None
    for values in agents_rows_all():
        if current is None or current["pg_count"] >= range_rows:
            current = {"lo": "" if current is None else values[0], "pg_count": 0, "pg_sum": 0}
            ranges.append(current)
        _, version = row_body_and_version(values)
        current["pg_count"] += 1
        current["pg_sum"] += version
    if not ranges:
        ranges.append({"lo": "", "pg_count": 0, "pg_sum": 0})
    for i, rng in enumerate(ranges):
        rng["hi"] = ranges[i + 1]["lo"] if i + 1 < len(ranges) else None
    return ranges


def _compare(*, client: D1Client) -> _CompareReport:
    # One transaction: PostgreSQL's side is read from a single snapshot, and
    # the id-ordered scan streams through a plain server-side cursor instead
    # of a WITH HOLD one that would materialise every row first.
    with transaction.atomic():
        ranges = _pg_ranges(int(getattr(settings, "SYNC_D1_VERIFY_RANGE_ROWS", VERIFY_RANGE_ROWS)))
        pg_counts = agents_counts_by_industry_state()
        pg_ind = {r[0]: industry_as_d1(r) for r in industries_rows()}
    d1 = d1_range_checksums(client=client, ranges=[(r["lo"], r["hi"]) for r in ranges])
    drifted = []
    for rng, (count, total) in zip(ranges, d1, strict=True):
        rng["d1_count"], rng["d1_sum"] = count, total
        if (count, total) != (rng["pg_count"], rng["pg_sum"]):
            drifted.append(rng)
    d1_counts = d1_counts_by_industry_state(client=client)
    count_drift = [
        {"industry": k[0], "state": k[1], "postgres": pg_counts.get(k, 0), "d1": d1_counts.get(k, 0)}
        for k in sorted(set(pg_counts) | set(d1_counts), key=lambda k: (str(k[0]), str(k[1])))
        if pg_counts.get(k, 0) != d1_counts.get(k, 0)
    ]
    d1_ind = d1_industries(client=client)
    industry_drift = [
        {"industry": k, "postgres": k in pg_ind, "d1": k in d1_ind}
        for k in sorted(set(pg_ind) | set(d1_ind))
        if pg_ind.get(k) != d1_ind.get(k)
    ]
    return _CompareReport(ranges, drifted, count_drift, industry_drift)


def _repair(*, report: _CompareReport, pusher: Pusher, prep: _RowPreparer, run: SyncRun, prune: bool) -> int:
    """Re-push what differs inside drifted ranges; with `prune`, delete what PostgreSQL lacks.

    Rows no sync of ours wrote are only overwritten when their content is the same.
    """
    if _d1_unmanaged_count(pusher.client):
        pusher.builders = _builders(unmanaged_guard=True)
    repaired = 0
    restore_point_taken = False

    def before_delete() -> None:
        nonlocal restore_point_taken
        if not restore_point_taken:
            _restore_point(run, pusher.client, "d1_verify --repair --prune")
            restore_point_taken = True

    if report.industry_drift:
        rows = industries_rows()
        _send_industries(pusher, prep, rows)
        pusher.wait()
        gone = [d["industry"] for d in report.industry_drift if not d["postgres"]]
        if gone and prune:
            before_delete()
            _send_industry_deletes(pusher, gone)
        repaired += len(report.industry_drift)
    for rng in report.drifted:
        d1_versions = d1_versions_in_range(client=pusher.client, lo=rng["lo"], hi=rng["hi"])
        pg_rows = agents_rows_in_range(lo=rng["lo"], hi=rng["hi"])
        stale = []
        for values in pg_rows:
            _, version = row_body_and_version(values)
            if d1_versions.get(values[0], -1) != version:
                stale.append(values)
        pg_ids = {r[0] for r in pg_rows}
        extras = [i for i in d1_versions if i not in pg_ids] if prune else []
        _send_agents(pusher, prep, stale)
        pusher.wait()
        if extras:
            before_delete()
            _send_agent_deletes(pusher, extras, run.pk)
        repaired += len(stale) + len(extras)
    pusher.wait()
    return repaired


def d1_verify(*, repair: bool = False, prune: bool = False, client: D1Client | None = None) -> VerifyRun:
    """Compare PostgreSQL with D1; with `repair`, re-push the drifted ranges and compare again.

    `prune` lets the repair delete D1 agents PostgreSQL lacks (after a restore point).
    """
    own_client = client is None
    client = client or d1_client_from_settings()
    verify = VerifyRun.objects.create(started_at=timezone.now())
    try:
        report = _compare(client=client)
        verify.ranges_checked = len(report.ranges)
        verify.drifted_ranges = [_range_summary(r) for r in report.drifted][:500]
        verify.count_drift = report.count_drift[:500]
        verify.industry_drift = report.industry_drift
        verify.clean = report.clean
        if repair and not report.clean:
            verify.rows_repaired = _verify_repair(report=report, client=client, prune=prune)
            verify.repaired = True
            verify.clean = _compare(client=client).clean
    except Exception as exc:
        logger.exception("D1 verification failed")
        verify.error = d1_error_text(exc, limit=4000)
        verify.clean = False
    finally:
        verify.finished_at = timezone.now()
        verify.save()
        if own_client:
            client.close()
    return verify


def _verify_repair(*, report: _CompareReport, client: D1Client, prune: bool) -> int:
    with sync_lock() as acquired:
        if not acquired:
            raise RuntimeError("a sync is running; repair again once it has finished")
        run = SyncRun.objects.create(
            kind=SyncRun.Kind.REPAIR,
            reason="d1_verify --repair" + (" --prune" if prune else ""),
            pruned=prune,
            started_at=timezone.now(),
        )
        pusher = Pusher(client=client, concurrency=_concurrency())
        started = time.monotonic()
        try:
            repaired = _repair(
                report=report, pusher=pusher, prep=_RowPreparer(pusher, run.pk), run=run, prune=prune
            )
            run.status = SyncRun.Status.PARTIAL if pusher.result.failures else SyncRun.Status.SUCCESS
        except Exception as exc:
            run.status = SyncRun.Status.FAILED
            run.error = d1_error_text(exc, limit=4000)
            raise
        finally:
            pusher.close()
            run.rows_upserted = pusher.result.upserted
            run.rows_deleted = pusher.result.deleted
            run.rows_failed = len(pusher.result.failures)
            run.failures = pusher.result.failures[:1000]
            run.requests = client.stats.requests
            run.bytes_sent = client.stats.bytes_sent
            run.finished_at = timezone.now()
            run.duration_seconds = round(time.monotonic() - started, 3)
            run.save()
        return repaired


def _range_summary(rng: dict) -> dict:
    return {k: rng[k] for k in ("lo", "hi", "pg_count", "d1_count", "pg_sum", "d1_sum")}
