"""Pushing rows to D1: statement builders, the threaded pusher and the row preparer.

The pusher sends units (statements that travel together) in requests
bounded by D1's limits, several in flight; a request D1 rejects is split
until the offending row is isolated, reported and skipped. The preparer
renders PostgreSQL rows for D1 and reports a row it cannot render through
the same failure interface (`Pusher.row_failed`), so one cell never stops a
sync.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings

from agents.resources import D1_AGENT_COLUMNS

from .d1_client import (
    REQUEST_MAX_BYTES,
    REQUEST_MAX_STATEMENTS,
    D1Client,
    D1Error,
    D1StatementError,
    SqliteTransport,
    d1_error_text,
)
from .selectors import AGENT_PUSH_COLUMNS, INDUSTRY_D1_COLUMNS, row_body_and_version
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

logger = logging.getLogger(__name__)

ID_CHUNK = 2000

# (table, key, error): a row D1 refused, or one that could not be rendered for it.
FailureReporter = Callable[[str, object, str], None]


@dataclass(frozen=True)
class Builders:
    agents: UpsertBuilder
    industries: UpsertBuilder
    tombstones: UpsertBuilder
    budget: int


def push_builders(*, unmanaged_guard: bool = False) -> Builders:
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
    return Builders(
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


@dataclass
class Unit:
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
        self.builders = push_builders()

    def close(self) -> None:
        if self._pool:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def send(
        self,
        units: Iterable[Unit],
        *,
        table: str,
        counter: str,
        rebuild: Callable[[Sequence], list[Unit]],
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

    def row_failed(self, table: str, row: object, error: str) -> None:
        """Report one row as skipped: it lands on the run's failures and stays pending for the next sync.

        Thread-safe; `row` is a PreparedRow or a bare key.
        """
        key = row.key if isinstance(row, PreparedRow) else row
        error = d1_error_text(error)
        logger.error("D1 rejected %s %s, skipped: %s", table, key, error)
        with self._lock:
            self.result.failures.append({"table": table, "id": key, "error": error})

    def _raise_first_error(self) -> None:
        done = [f for f in self._futures if f.done()]
        for future in done:
            future.result()
        self._futures = [f for f in self._futures if not f.done()]

    def _group(self, units: Iterable[Unit]) -> Iterator[list[Unit]]:
        batch: list[Unit] = []
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

    def _run(self, request: list[Unit], table: str, counter: str, rebuild) -> None:
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
                self.row_failed(table, rows[0] if rows else None, str(exc))
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


# --- rows into units ----------------------------------------------------------------


def agent_prepared(values: Sequence[object], run_id: int) -> PreparedRow:
    body, version = row_body_and_version(values)
    return PreparedRow(values[0], f"({body},{version},{run_id})", (*values, version, run_id))


def agent_units(b: Builders, rows: Iterable[PreparedRow], on_error=None) -> Iterator[Unit]:
    # on_error(key, reason): a row no statement can carry (over D1's 2 MB value limit) is reported, not fatal.
    for stmt in b.agents.statements(rows, on_error):
        yield Unit([stmt], stmt.rows)


def _industry_units(b: Builders, rows: Iterable[PreparedRow], on_error=None) -> list[Unit]:
    return [Unit([stmt], stmt.rows) for stmt in b.industries.statements(rows, on_error)]


def _agent_delete_units(b: Builders, ids: Sequence[str], run_id: int) -> list[Unit]:
    units = []
    for start in range(0, len(ids), ID_CHUNK):
        chunk = list(ids[start : start + ID_CHUNK])
        tombs = list(b.tombstones.statements(prepare_row((i, run_id)) for i in chunk))
        # A delete from an older run must not remove a row a newer run re-created.
        deletes = list(
            delete_statements("agents", "id", chunk, where=f'"sync_run" <= {int(run_id)}', budget=b.budget)
        )
        units.append(Unit(tombs + deletes, tuple(chunk)))
    return units


def _industry_delete_units(b: Builders, ids: Sequence[str]) -> list[Unit]:
    return [Unit([s], s.rows) for s in delete_statements("industry_config", "industry", ids, budget=b.budget)]


class RowPreparer:
    """Prepares PostgreSQL rows for D1, diverting rows that cannot be rendered to failures.

    Whatever rendering one row raises, that row is quarantined (handed to
    `on_failure`: reported on the run, skipped, kept pending) and the sync
    goes on: one cell must never stop every sync.
    """

    def __init__(self, *, run_id: int, on_failure: FailureReporter):
        self.run_id = run_id
        self.on_failure = on_failure

    def agents(self, rows: Iterable[tuple]) -> Iterator[PreparedRow]:
        for values in rows:
            try:
                prepared = agent_prepared(values, self.run_id)
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

    def refused(self, table: str) -> Callable[[object, str], None]:
        """on_error for UpsertBuilder.statements: a row no statement can carry."""
        return lambda key, reason: self.on_failure(table, key, reason)

    def _quarantine(self, table: str, values: Sequence[object], exc: Exception) -> None:
        if isinstance(exc, UnencodableValue):
            reason = f"cannot be written to D1: {exc}"
        else:  # not foreseen: keep the traceback in the log, a short reason on the run
            logger.exception("Rendering %s %s for D1 failed", table, values[0])
            reason = f"cannot be written to D1 ({type(exc).__name__}: {exc})"
        self.on_failure(table, values[0], reason)


def row_preparer(pusher: Pusher, run_id: int) -> RowPreparer:
    """The preparer of a run: what it cannot render joins what D1 refused, on the pusher's result."""
    return RowPreparer(run_id=run_id, on_failure=pusher.row_failed)


# --- sending ------------------------------------------------------------------------


def send_agents(pusher: Pusher, prep: RowPreparer, rows: Iterable[tuple]) -> None:
    b = pusher.builders
    refused = prep.refused("agents")

    def rebuild(part: Sequence[PreparedRow]) -> list[Unit]:
        return list(agent_units(b, part, refused))

    pusher.send(
        agent_units(b, prep.agents(rows), refused), table="agents", counter="upserted", rebuild=rebuild
    )


def send_industries(pusher: Pusher, prep: RowPreparer, rows: Iterable[tuple]) -> None:
    b = pusher.builders
    refused = prep.refused("industry_config")
    pusher.send(
        _industry_units(b, prep.industries(rows), refused),
        table="industry_config",
        counter="upserted",
        rebuild=lambda part: _industry_units(b, part, refused),
    )


def send_agent_deletes(pusher: Pusher, ids: Sequence[str], run_id: int) -> None:
    b = pusher.builders
    pusher.send(
        _agent_delete_units(b, ids, run_id),
        table="agents",
        counter="deleted",
        rebuild=lambda part: _agent_delete_units(b, list(part), run_id),
    )


def send_industry_deletes(pusher: Pusher, ids: Sequence[str]) -> None:
    b = pusher.builders
    pusher.send(
        _industry_delete_units(b, ids),
        table="industry_config",
        counter="deleted",
        rebuild=lambda part: _industry_delete_units(b, list(part)),
    )
