"""Adopting a live D1: bring its industries and agents into PostgreSQL (`manage.py d1_pull`).

Agents travel through the import pipeline: D1 is read page by page (`/raw`,
ordered by id) into a staged file of JSON cells, and an ImportJob of source
"D1" plans and imports it with its journal, counts and row warnings, so
`import_rollback` undoes a pull exactly. Then every pulled agent whose
PostgreSQL row now equals D1's is marked in D1 as the back-office's
(`sync_run`, `sync_version`): `d1_verify` is clean and later syncs may
update it. A conflicting agent (PostgreSQL wins by default) is marked too and
left pending, so the next sync writes PostgreSQL's version.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from django.core.files import File
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from agents.resources import D1_AGENT_COLUMNS
from imports.models import ImportJob
from imports.services import import_chunk_process, import_job_create, import_job_finalize, import_job_plan
from industries.models import IndustryConfig

from .d1_client import D1Client, D1Error, SqliteTransport, d1_error_text
from .locks import sync_lock
from .models import SyncRun
from .selectors import agents_rows_by_ids, d1_industries, industry_d1_attnames, row_body_and_version
from .sqlite_sql import STATEMENT_BYTE_BUDGET, Statement, d1_timestamp, sql_literal

logger = logging.getLogger(__name__)

PAGE_ROWS = 1000
PREFER_POSTGRES = "postgres"
PREFER_D1 = "d1"


class PullError(Exception):
    """The pull cannot run (schema not migrated, D1 unreachable, a sync holds the lock)."""


@dataclass
class PullResult:
    job: ImportJob | None = None
    run: SyncRun | None = None
    d1_agents: int = 0
    industries_created: list[str] = field(default_factory=list)
    industries_updated: list[str] = field(default_factory=list)
    industry_conflicts: list[str] = field(default_factory=list)
    marked: int = 0
    conflicts: int = 0


# --- reading D1 ---------------------------------------------------------------------


def _agent_pages(
    client: D1Client, columns: Sequence[str] = D1_AGENT_COLUMNS, *, unmanaged_only: bool = False
) -> Iterator[list[list]]:
    """D1 agents in id order, PAGE_ROWS at a time, with `columns` in that order (id first).

    `unmanaged_only`: only rows no sync of ours wrote (`sync_run = 0`, indexed by D1 migration 005).
    """
    select = ", ".join(f'"{c}"' for c in columns)
    where = "sync_run = 0 AND id > ?" if unmanaged_only else "id > ?"
    after = ""
    while True:
        rows = client.rows(
            f"SELECT {select} FROM agents WHERE {where} ORDER BY id LIMIT ?",  # noqa: S608 - fixed names
            (after, PAGE_ROWS),
        )
        if not rows:
            return
        yield rows
        after = rows[-1][0]


# What a pull cannot do without: the columns of the first live schema (001) that PostgreSQL requires.
PULL_REQUIRED_COLUMNS = ("id", "slug", "name", "state", "created_at", "updated_at")


def _columns_to_read(client: D1Client, *, mark: bool) -> tuple[str, ...]:
    """The mirrored columns D1 has. Marking adopted rows needs all of them and our bookkeeping (004+);
    reading an older D1 (an export made before a column existed) takes what is there, and a created
    agent gets the model's default for the rest."""
    present = {r[0] for r in client.rows("SELECT name FROM pragma_table_info('agents')")}
    needed = (*D1_AGENT_COLUMNS, "sync_run", "sync_version") if mark else PULL_REQUIRED_COLUMNS
    missing = [c for c in needed if c not in present]
    if missing:
        raise PullError(f"D1 agents lacks column(s) {', '.join(missing)}: run `manage.py d1_migrate` first.")
    return tuple(c for c in D1_AGENT_COLUMNS if c in present)


def _stage(client: D1Client, columns: Sequence[str]) -> tuple[Path, int]:
    """Write D1's agents into a CSV of JSON cells (NULL stays null, numbers keep their type)."""
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, removed by the caller
        "w", encoding="utf-8", newline="", suffix=".csv", delete=False
    )
    count = 0
    with handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for page in _agent_pages(client, columns):
            for row in page:
                writer.writerow([json.dumps(v, ensure_ascii=False) for v in row])
            count += len(page)
    return Path(handle.name), count


# --- industries -----------------------------------------------------------------------


def _industry_values(row: tuple) -> dict:
    values = {}
    for attname, value in zip(industry_d1_attnames(), row, strict=True):
        if attname in ("professions", "specializations", "tools", "lead_types") and isinstance(value, str):
            value = json.loads(value)
        elif attname == "required_licenses":
            value = bool(value) if value is not None else True
        elif attname == "created_at" and isinstance(value, str):
            parsed = parse_datetime(value)
            value = parsed if parsed is None or parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
        values[attname] = value
    return values


def _pull_industries(client: D1Client, *, prefer: str, dry_run: bool, result: PullResult) -> None:
    """Industries are six rows: reconciled directly. A difference in created_at alone takes D1's."""
    if not client.rows("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'industry_config'"):
        return  # a D1 from before 003: its agents take the default industry
    for key, row in d1_industries(client=client).items():
        values = _industry_values(row)
        current = IndustryConfig.objects.filter(pk=key).first()
        if current is None:
            result.industries_created.append(key)
            if not dry_run:
                IndustryConfig.objects.create(**values)
            continue
        differing = [a for a, v in values.items() if getattr(current, a) != v]
        if not differing:
            continue
        if prefer == PREFER_D1 or differing == ["created_at"]:
            result.industries_updated.append(key)
            if not dry_run:
                IndustryConfig.objects.filter(pk=key).update(**values)
        else:
            result.industry_conflicts.append(f"{key} ({', '.join(differing)})")


# --- the pull -------------------------------------------------------------------------


def d1_pull(
    *, client: D1Client, prefer: str = PREFER_POSTGRES, dry_run: bool = False, mark: bool = True, user=None
) -> PullResult:
    """Bring D1's industries and agents into PostgreSQL; returns the job and what was marked.

    `mark=False` (a pull from an export file) leaves D1 untouched: the next
    sync then takes over identical rows by itself and keeps differing ones.
    """
    if prefer not in (PREFER_POSTGRES, PREFER_D1):
        raise PullError(f"--prefer is {PREFER_POSTGRES} or {PREFER_D1}, not {prefer!r}")
    columns = _columns_to_read(client, mark=mark and not dry_run)
    result = PullResult()
    with sync_lock() as acquired:
        if not acquired:
            raise PullError("a D1 sync is running; pull again once it has finished")
        with transaction.atomic():
            _pull_industries(client, prefer=prefer, dry_run=dry_run, result=result)
        staged, result.d1_agents = _stage(client, columns)
        try:
            with open(staged, "rb") as handle:
                job = import_job_create(
                    file=File(handle),
                    original_name=f"d1-pull-{timezone.now():%Y%m%dT%H%M%S}.csv",
                    file_format="csv",
                    mode=ImportJob.Mode.UPSERT if prefer == PREFER_D1 else ImportJob.Mode.CREATE_ONLY,
                    dry_run=dry_run,
                    user=user,
                    start=False,
                    source=ImportJob.Source.D1,
                )
        finally:
            staged.unlink(missing_ok=True)
        result.job = _run_inline(job.pk)
        finished = result.job.status in (ImportJob.Status.COMPLETED, ImportJob.Status.COMPLETED_WITH_ERRORS)
        if dry_run or not mark or not finished:
            return result
        result.run = SyncRun.objects.create(
            kind=SyncRun.Kind.PULL,
            reason=f"d1_pull (import job {job.pk})",
            target=client.transport.name,
            started_at=timezone.now(),
        )
        try:
            result.marked, result.conflicts = _mark_adopted(client, result.run.pk)
            result.run.status = SyncRun.Status.COMPLETED
        except Exception as exc:
            result.run.status = SyncRun.Status.FAILED
            result.run.error = d1_error_text(exc)
            raise
        finally:
            result.run.rows_upserted = result.marked
            result.run.requests = client.stats.requests
            result.run.bytes_sent = client.stats.bytes_sent
            result.run.finished_at = timezone.now()
            result.run.duration_seconds = round(
                (result.run.finished_at - result.run.started_at).total_seconds(), 3
            )
            result.run.save()
    return result


def _run_inline(job_id: int) -> ImportJob:
    """Plan and import the pull's chunks in this process (a pull is an operator's one-off)."""
    job = ImportJob.objects.get(pk=job_id)
    if import_job_plan(job_id=job_id):
        for index in job.chunks.order_by("index").values_list("index", flat=True):
            import_chunk_process(job_id=job_id, chunk_index=index)
        import_job_finalize(job_id=job_id)
    job.refresh_from_db()
    return job


def _same(pg: object, d1: object) -> bool:
    """Does PostgreSQL's value equal what D1 stores? (D1 keeps 0 for 0.00, 1 for true, text JSON.)"""
    if pg is None or d1 is None:
        return pg is None and d1 is None
    if isinstance(pg, bool):
        return int(pg) == d1
    if isinstance(pg, int | Decimal) and isinstance(d1, int | float):
        return Decimal(str(d1)) == pg
    if isinstance(pg, list | dict):
        try:
            return isinstance(d1, str) and json.loads(d1) == pg
        except ValueError:
            return False
    if hasattr(pg, "tzinfo"):
        return d1_timestamp(pg) == d1
    return pg == d1


def _mark_adopted(client: D1Client, run_id: int) -> tuple[int, int]:
    """Mark D1 rows PostgreSQL now holds as ours; returns (rows marked in D1, conflicting rows).

    Only rows still unmarked (`sync_run = 0`) are touched, and only their
    bookkeeping columns: `sync_version` when the content is equal (so
    d1_verify is clean), NULL when PostgreSQL's version differs (pending, the
    next sync writes it).
    """
    marked = conflicts = 0
    head = "UPDATE agents SET sync_run = v.column2, sync_version = v.column3 FROM (VALUES "
    tail = ") AS v WHERE agents.id = v.column1 AND agents.sync_run = 0"
    parts: list[str] = []
    statements: list[Statement] = []
    used = len(head) + len(tail)
    for page in _agent_pages(client, unmanaged_only=True):
        pg_rows = {r[0]: r for r in agents_rows_by_ids([r[0] for r in page])}
        for d1_row in page:
            pg_row = pg_rows.get(d1_row[0])
            if pg_row is None:
                continue  # not adopted (PostgreSQL refused it): stays unmanaged
            equal = all(_same(p, d) for p, d in zip(pg_row, d1_row, strict=True))
            version = row_body_and_version(pg_row)[1] if equal else None
            conflicts += not equal
            literal = f"({sql_literal(d1_row[0])},{int(run_id)},{'NULL' if version is None else version})"
            size = len(literal.encode("utf-8")) + 1
            if parts and used + size > STATEMENT_BYTE_BUDGET:
                statements.append(Statement(head + ",".join(parts) + tail))
                parts, used = [], len(head) + len(tail)
            parts.append(literal)
            used += size
        if len(statements) >= 20:
            marked += _changes(client.execute(statements))
            statements = []
    if parts:
        statements.append(Statement(head + ",".join(parts) + tail))
    if statements:
        marked += _changes(client.execute(statements))
    return marked, conflicts


def _changes(results: list[dict]) -> int:
    """Rows the statements of one request changed, as D1 reports them (meta.changes)."""
    return sum(int((r.get("meta") or {}).get("changes") or 0) for r in results)


# --- a wrangler export instead of the API ---------------------------------------------


def d1_export_load(path: str | Path, *, into: str | Path) -> D1Client:
    """Load a `wrangler d1 export` SQL dump into a throwaway SQLite file and open it like a D1."""
    target = Path(into)
    target.unlink(missing_ok=True)
    conn = sqlite3.connect(target)
    try:
        conn.executescript(Path(path).read_text(encoding="utf-8"))
    except sqlite3.Error as exc:
        raise PullError(f"{path}: not a SQL dump SQLite can load: {exc}") from exc
    finally:
        conn.close()
    try:
        return D1Client(SqliteTransport(path=str(target)))
    except (sqlite3.Error, D1Error) as exc:
        raise PullError(f"{path}: {exc}") from exc
