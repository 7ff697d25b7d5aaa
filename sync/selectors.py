"""Reads for the D1 sync: sync state, pending changes, PostgreSQL rows as D1 sees them, D1 contents."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

from django.db import connection
from django.db.models import Count
from django.db.models.functions import Collate

from agents.models import Agent
from agents.resources import D1_AGENT_COLUMNS
from industries.models import IndustryConfig

from .d1_client import D1Client
from .d1_schema import MigrationPlan, d1_schema_read, migrations_plan
from .models import D1MigrationRecord, Schedule, SyncChange, SyncRun, SyncState, VerifyRun
from .sqlite_sql import Statement, d1_value, split_sql, sql_literal

MIGRATIONS_DIR = Path(__file__).resolve().parent / "d1_migrations"
INDUSTRY_D1_COLUMNS: tuple[str, ...] = (
    "industry",
    "display_name",
    "professions",
    "required_licenses",
    "specializations",
    "tools",
    "lead_types",
    "created_at",
)
# What we write to D1 agents: the mirrored columns plus our bookkeeping (004).
AGENT_PUSH_COLUMNS: tuple[str, ...] = (*D1_AGENT_COLUMNS, "sync_version", "sync_run")


def sync_run_last_successful() -> SyncRun | None:
    return SyncRun.objects.successful().newest()


def d1_last_successful_sync_started_at() -> datetime | None:
    """When the newest fully successful sync started.

    Its snapshot was taken after this instant, so every change committed
    before it has reached D1 (the R2 asset push relies on this).
    """
    run = sync_run_last_successful()
    return run.started_at if run else None


def sync_pending_changes_count() -> int:
    return SyncChange.objects.values("table_name", "row_id").distinct().count()


def sync_state_get() -> SyncState | None:
    return SyncState.objects.filter(pk=1).first()


def sync_run_last() -> SyncRun | None:
    return SyncRun.objects.real().exclude(status=SyncRun.Status.SKIPPED).newest()


def sync_run_last_restore_point() -> SyncRun | None:
    """The newest run that took a restore point before deleting D1 rows."""
    return SyncRun.objects.exclude(bookmark="").newest()


def verify_run_last() -> VerifyRun | None:
    return VerifyRun.objects.order_by("-started_at", "-id").first()


# --- PostgreSQL rows, in D1's column order ----------------------------------------


def agent_d1_attnames() -> list[str]:
    by_column = {f.column: f.attname for f in Agent._meta.concrete_fields}
    return [by_column[c] for c in D1_AGENT_COLUMNS]


def industry_d1_attnames() -> list[str]:
    by_column = {f.column: f.attname for f in IndustryConfig._meta.concrete_fields}
    return [by_column[c] for c in INDUSTRY_D1_COLUMNS]


def _id_ordered(qs, field: str):
    # D1 (SQLite BINARY) orders text by UTF-8 bytes; PostgreSQL's "C" collation
    # does too, whatever the database's default collation is.
    return qs.alias(_cid=Collate(field, "C")).order_by("_cid")


def agents_rows_by_ids(ids: Sequence[str]) -> list[tuple]:
    return list(Agent.objects.filter(pk__in=ids).values_list(*agent_d1_attnames()))


def agents_rows_all(*, chunk_size: int = 5000) -> Iterator[tuple]:
    return _id_ordered(Agent.objects.all(), "id").values_list(*agent_d1_attnames()).iterator(chunk_size)


def agents_rows_in_range(*, lo: str, hi: str | None) -> list[tuple]:
    qs = Agent.objects.alias(_cid=Collate("id", "C")).filter(_cid__gte=lo)
    if hi is not None:
        qs = qs.filter(_cid__lt=hi)
    qs = qs.order_by("_cid")
    return list(qs.values_list(*agent_d1_attnames()))


def agent_ids_existing(ids: Iterable[str]) -> set[str]:
    return set(Agent.objects.filter(pk__in=list(ids)).values_list("id", flat=True))


def industries_rows(ids: Sequence[str] | None = None) -> list[tuple]:
    qs = IndustryConfig.objects.all()
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    return list(qs.order_by("industry").values_list(*industry_d1_attnames()))


def agents_counts_by_industry_state() -> dict[tuple[str, str], int]:
    rows = Agent.objects.values_list("industry_id", "state").annotate(n=Count("id")).order_by()
    return {(industry, state): n for industry, state, n in rows}


def row_body_and_version(values: Sequence[object]) -> tuple[str, int]:
    """The D1 literal body of a row and its 31-bit version (what `sync_version` holds in D1)."""
    body = ",".join(sql_literal(v) for v in values)
    return body, version_of(body)


def version_of(body: str) -> int:
    # 31 bits keep a per-range SUM in D1 far from 64-bit overflow.
    return int.from_bytes(hashlib.md5(body.encode("utf-8"), usedforsecurity=False).digest()[:4], "big") & (
        0x7FFFFFFF
    )


def pending_changes(*, position: int | None) -> dict[str, list[str]]:
    """Distinct changed keys per table in the current snapshot, from `position` on."""
    sql = "SELECT table_name, row_id FROM sync_change"
    params: list = []
    if position is not None:
        # Every row still in the log is at or above the position (what was
        # visible to the last successful snapshot was pruned); the bound just
        # lets the index skip.
        sql += " WHERE xid >= %s"
        params.append(position)
    sql += " GROUP BY table_name, row_id"
    out: dict[str, list[str]] = {}
    with connection.cursor() as cur:
        cur.execute(sql, params)
        for table, row_id in cur.fetchall():
            out.setdefault(table, []).append(row_id)
    return out


# --- D1 -----------------------------------------------------------------------------


def d1_migration_files() -> list[Path]:
    return sorted(p for p in MIGRATIONS_DIR.glob("*.sql") if p.name[:3].isdigit())


def d1_applied_migrations(*, client: D1Client) -> list[dict]:
    exists = client.rows("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'd1_migrations'")
    if not exists:
        return []
    return client.query("SELECT id, name, applied_at FROM d1_migrations ORDER BY id")


def d1_migrations_plan(*, client: D1Client) -> list[MigrationPlan]:
    """Plan every numbered migration against the target's schema (read-only)."""
    files = [(p.name, split_sql(p.read_text(encoding="utf-8"))) for p in d1_migration_files()]
    recorded = {row["name"] for row in d1_applied_migrations(client=client)}
    return migrations_plan(files=files, recorded=recorded, state=d1_schema_read(client=client))


def d1_migrations_status(*, client: D1Client, target: str = "") -> list[dict]:
    """Per migration: applied / recorded as present / partly present / pending / conflict."""
    applied = {row["name"]: row for row in d1_applied_migrations(client=client)}
    how = {
        r.name: r
        for r in D1MigrationRecord.objects.filter(target=target or client.transport.name).order_by(
            "recorded_at"
        )
    }
    out = []
    for plan in d1_migrations_plan(client=client):
        row = {"name": plan.name, "applied": plan.name in applied, "applied_at": None, "action": plan.action}
        if plan.name in applied:
            row["applied_at"] = at = applied[plan.name]["applied_at"]
            record = how.get(plan.name)
            if record and record.action == D1MigrationRecord.Action.RECORDED:
                row["state"] = f"recorded as present {at} (its objects were already there)"
            elif record and record.action == D1MigrationRecord.Action.PARTIAL:
                row["state"] = f"applied in part {at} (ran: {record.detail})"
            else:
                row["state"] = f"applied {at}"
        elif plan.action == "record":
            row["state"] = "present, not recorded: d1_migrate records it as present"
        elif plan.action == "partial":
            missing = ", ".join(c.obj for c in plan.missing)
            row["state"] = f"partly present: d1_migrate runs only the missing {missing}"
        elif plan.action == "conflict":
            row["state"] = "CONFLICT: " + "; ".join(c.conflict for c in plan.conflicts)
        else:
            row["state"] = "pending"
        out.append(row)
    return out


def d1_range_checksums(
    *, client: D1Client, ranges: Sequence[tuple[str, str | None]]
) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    statements = []
    for lo, hi in ranges:
        if hi is None:
            statements.append(
                Statement("SELECT count(*), coalesce(sum(sync_version), 0) FROM agents WHERE id >= ?", (lo,))
            )
        else:
            statements.append(
                Statement(
                    "SELECT count(*), coalesce(sum(sync_version), 0) FROM agents WHERE id >= ? AND id < ?",
                    (lo, hi),
                )
            )
    for start in range(0, len(statements), 50):
        for result in client.execute(statements[start : start + 50], raw=True):
            count, total = result["results"]["rows"][0]
            out.append((int(count), int(total)))
    return out


def d1_versions_in_range(*, client: D1Client, lo: str, hi: str | None) -> dict[str, int | None]:
    if hi is None:
        rows = client.rows("SELECT id, sync_version FROM agents WHERE id >= ? ORDER BY id", (lo,))
    else:
        rows = client.rows(
            "SELECT id, sync_version FROM agents WHERE id >= ? AND id < ? ORDER BY id", (lo, hi)
        )
    return {row_id: version for row_id, version in rows}


def d1_agent_ids_page(*, client: D1Client, after: str, limit: int = 10_000) -> list[str]:
    rows = client.rows("SELECT id FROM agents WHERE id > ? ORDER BY id LIMIT ?", (after, limit))
    return [r[0] for r in rows]


def d1_counts_by_industry_state(*, client: D1Client) -> dict[tuple[str, str], int]:
    rows = client.rows("SELECT industry, state, count(*) FROM agents GROUP BY industry, state")
    return {(industry, state): int(n) for industry, state, n in rows}


def d1_industries(*, client: D1Client) -> dict[str, tuple]:
    cols = ", ".join(INDUSTRY_D1_COLUMNS)
    rows = client.rows(f"SELECT {cols} FROM industry_config ORDER BY industry")  # noqa: S608 - fixed names
    return {row[0]: tuple(row) for row in rows}


def industry_as_d1(values: Sequence[object]) -> tuple:
    """A PostgreSQL industry row as D1 returns it (booleans 0/1, JSON and timestamps as text)."""
    return tuple(d1_value(v) for v in values)


def schedules_list() -> list[Schedule]:
    """Every operator schedule, in SCHEDULES order; one without a row yet shows as beat will create it."""
    from .schedules import SCHEDULES

    rows = {row.key: row for row in Schedule.objects.filter(key__in=SCHEDULES)}
    return [rows.get(key) or Schedule(key=key) for key in SCHEDULES]
