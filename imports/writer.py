"""The PostgreSQL write path of one chunk: COPY into a temp table, then set-based SQL.

Inside the chunk's transaction:
  1. the rows this chunk touches are looked up (and locked) by id, or, for a
     row without an id, by (industry, state, license_number) — a key that is
     not unique (the live D1 shares one licence among a thousand agents), so a
     key matching several agents is a row error asking for the id;
  2. the valid rows are COPYed into a temp table;
  3. the prior version of every row that will change is journalled with
     INSERT ... SELECT to_jsonb(agents) — what an exact rollback restores;
  4. one INSERT ... ON CONFLICT DO UPDATE ... WHERE IS DISTINCT FROM writes
     only rows that differ, so unchanged rows stay untouched;
  5. one query finds the written rows whose licence several agents share
     (a warning, never a reject).
"""

import json
import uuid
from dataclasses import dataclass

import psycopg
from django.db import DataError, connection, transaction
from django.utils import timezone

from agents.models import Agent
from agents.services import agent_slug_candidate

from .rows import ParsedRow, RowError, excerpt, natural_key

# Columns a chunk stages: every agents column but the ones the SQL sets itself.
STAGE_COLUMNS: tuple[str, ...] = tuple(
    f.column for f in Agent._meta.concrete_fields if f.column not in ("updated_at", "photo")
)
JSON_COLUMNS = frozenset(
    f.column for f in Agent._meta.concrete_fields if f.get_internal_type() == "JSONField"
)


def create_defaults() -> dict:
    """What a created row gets for a column the file does not carry (or leaves blank).

    Evaluated per chunk: created_at's default is the current time.
    """
    return {
        f.column: f.get_default()
        for f in Agent._meta.concrete_fields
        if f.column in STAGE_COLUMNS and f.has_default()
    }


NOT_NULL = frozenset(f.column for f in Agent._meta.concrete_fields if not f.null)
# The file may set these on create, and they are compared and updated like any column.
NEVER_UPDATED = frozenset({"id"})


class ConcurrentChange(Exception):
    """Another transaction created a row between lookup and write; the chunk is retried."""


@dataclass
class WriteResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


class ChunkWriter:
    def __init__(
        self,
        *,
        job_id: int,
        chunk_index: int,
        columns: set[str],
        mode: str,
        dry_run: bool,
        pull: bool = False,
    ):
        self.job_id = job_id
        self.chunk_index = chunk_index
        self.mode = mode
        self.dry_run = dry_run
        # A D1 pull keeps D1's updated_at; "create only" then means PostgreSQL wins on conflicts.
        self.pull = pull
        # `photo` (a storage name) is staged only when the file carries it (zip imports).
        self.stage_columns = STAGE_COLUMNS + ("photo",) if "photo" in columns else STAGE_COLUMNS
        if pull:
            self.stage_columns += ("updated_at",)
        # Columns compared and updated on existing rows: what the file carries.
        self.update_columns = [c for c in self.stage_columns if c in columns and c not in NEVER_UPDATED]
        if pull and mode == "create_only":
            self.update_columns = []

    # --- identities -------------------------------------------------------------
    def resolve(self, rows: list[ParsedRow]) -> list[ParsedRow]:
        """Give every valid row its agent id; turn identity problems into row errors.

        A row's identity is its id when it has one: a licence held by another
        agent is then no conflict (the shared-licence warning reports it). Only
        a row without an id is matched on (industry, state, licence), and only
        when exactly one agent holds that key.
        """
        cursor = connection.cursor()
        keys = {
            key
            for r in rows
            if not r.values.get("id")
            and (
                key := natural_key(
                    r.values.get("industry"), r.values.get("state"), r.values.get("license_number")
                )
            )
        }
        # (agents holding the key, one of their ids): counted without locks, since a
        # shared key matches no row; the single holders are locked with the ids below.
        holders: dict[tuple, tuple[int, str]] = {}
        if keys:
            industries, states, licences = (list(x) for x in zip(*keys, strict=True))
            cursor.execute(
                "SELECT k.industry, k.state, k.license_number, count(*), min(a.id) "
                "FROM unnest(%s::text[], %s::text[], %s::text[]) AS k(industry, state, license_number) "
                "JOIN agents a ON a.industry = k.industry AND a.state = k.state "
                "AND a.license_number = k.license_number GROUP BY 1, 2, 3",
                [industries, states, licences],
            )
            holders = {(r[0], r[1], r[2]): (r[3], r[4]) for r in cursor.fetchall()}
        ids = {r.values["id"] for r in rows if r.values.get("id")}
        ids.update(agent_id for count, agent_id in holders.values() if count == 1)
        existing_by_id: dict[str, tuple] = {}
        if ids:
            cursor.execute(
                "SELECT id, slug FROM agents WHERE id = ANY(%s) ORDER BY id FOR UPDATE", [sorted(ids)]
            )
            existing_by_id = {row[0]: row for row in cursor.fetchall()}

        accepted: list[ParsedRow] = []
        for r in rows:
            values = r.values
            given_id = values.get("id")
            if given_id:
                found = existing_by_id.get(given_id)
            else:
                key = natural_key(values.get("industry"), values.get("state"), values.get("license_number"))
                count, holder = holders.get(key, (0, None)) if key else (0, None)
                if count > 1:
                    industry, state, licence = key
                    r.errors.append(
                        RowError(r.line, "license_number", excerpt(values.get("license_number")),
                                 f"{count:,} agents share licence {licence} in {state} {industry}; give the id")
                    )  # fmt: skip
                    continue
                # The holder may have been deleted since it was counted: then the row is new.
                found = existing_by_id.get(holder) if holder else None
                values["id"] = found[0] if found else uuid.uuid4().hex
            exists = found is not None
            if exists and self.mode == "create_only" and not self.pull:
                r.errors.append(RowError(r.line, "id", excerpt(values["id"]),
                                         "agent already exists (mode: create only)"))  # fmt: skip
                continue
            if not exists and self.mode == "update_only":
                column = "id" if given_id else "license_number"
                r.errors.append(RowError(r.line, column, excerpt(given_id or values.get("license_number")),
                                         "no such agent to update (mode: update only)"))  # fmt: skip
                continue
            r.exists = exists
            r.current_slug = found[1] if exists else None
            accepted.append(r)
        return self._slugs(accepted)

    def _slugs(self, rows: list[ParsedRow]) -> list[ParsedRow]:
        """Keep given slugs unique; derive a slug for new rows that have none."""
        cursor = connection.cursor()
        given = {r.values["slug"]: r for r in rows if r.values.get("slug")}
        if given:
            cursor.execute("SELECT slug, id FROM agents WHERE slug = ANY(%s)", [list(given)])
            taken = dict(cursor.fetchall())
            kept = []
            for r in rows:
                slug = r.values.get("slug")
                if slug and taken.get(slug, r.values["id"]) != r.values["id"]:
                    r.errors.append(RowError(r.line, "slug", excerpt(slug),
                                             f"slug already used by agent {taken[slug]}"))  # fmt: skip
                    continue
                kept.append(r)
            rows = kept
        pending = [r for r in rows if not r.values.get("slug")]
        for r in pending:
            if r.exists:
                r.values["slug"] = r.current_slug
        pending = [r for r in pending if not r.exists]
        for length in (8, 12, 16, 40):
            if not pending:
                break
            for r in pending:
                r.values["slug"] = agent_slug_candidate(
                    name=r.values.get("name") or "", agent_id=r.values["id"], digest_length=length
                )
            cursor.execute(
                "SELECT slug FROM agents WHERE slug = ANY(%s)", [[r.values["slug"] for r in pending]]
            )
            clashes = {row[0] for row in cursor.fetchall()}
            pending = [r for r in pending if r.values["slug"] in clashes]
        for r in pending:  # 40 hex digits of the id's digest still taken: give up on this row
            r.errors.append(RowError(r.line, "slug", "", "could not derive a unique slug"))
        return [r for r in rows if not r.errors]

    # --- writing ------------------------------------------------------------------
    def _stage_tuple(self, row: ParsedRow, defaults: dict) -> tuple:
        """One COPY row; `defaults` holds JSON defaults already encoded."""
        values, json_text = row.values, row.json_text
        out = []
        for column in self.stage_columns:
            value = values.get(column)
            if value is None and column in defaults and (column in NOT_NULL or column not in values):
                out.append(defaults[column])
            elif column in JSON_COLUMNS and value is not None:
                out.append(json_text.get(column) or json.dumps(value, ensure_ascii=False))
            else:
                out.append(value)
        return tuple(out)

    def write(self, rows: list[ParsedRow]) -> WriteResult:
        result = WriteResult()
        if not rows:
            return result
        cursor = connection.cursor()
        stage_cols = ", ".join(self.stage_columns)
        # ON COMMIT DROP covers crashes; the explicit DROP below covers savepoints (tests).
        cursor.execute("DROP TABLE IF EXISTS import_stage")
        cursor.execute(
            f"CREATE TEMP TABLE import_stage ON COMMIT DROP AS SELECT {stage_cols} FROM agents WITH NO DATA"  # noqa: S608
        )
        raw = cursor.cursor  # psycopg cursor: COPY is 5-10x faster than INSERTs
        defaults = {
            column: json.dumps(value, ensure_ascii=False) if column in JSON_COLUMNS else value
            for column, value in create_defaults().items()
        }
        with raw.copy(f"COPY import_stage ({stage_cols}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(self._stage_tuple(r, defaults))
        # The temp table has no statistics: without an index, the planner may check "not
        # staged" (_shared_licences) by scanning the stage once per agent (3.8 s per 5,000 rows).
        cursor.execute("CREATE INDEX ON import_stage (id)")

        if self.update_columns:
            lhs = ", ".join(f"a.{c}" for c in self.update_columns)
            rhs = ", ".join(f"s.{c}" for c in self.update_columns)
            differs = f"ROW({lhs}) IS DISTINCT FROM ROW({rhs})"
        else:
            differs = "FALSE"

        if self.dry_run:
            cursor.execute(
                f"SELECT count(*) FILTER (WHERE a.id IS NULL), "  # noqa: S608
                f"count(*) FILTER (WHERE a.id IS NOT NULL AND {differs}) "
                f"FROM import_stage s LEFT JOIN agents a ON a.id = s.id"
            )
            result.created, result.updated = cursor.fetchone()
            self._shared_licences(rows)
            cursor.execute("DROP TABLE import_stage")
            result.unchanged = len(rows) - result.created - result.updated
            return result

        # One timestamp for the rows and their journal: a rollback compares them
        # to tell whether a row changed after this import.
        written_at = timezone.now()
        # A pull writes D1's own updated_at; the journal records what the row will hold.
        stamp_sql, stamp = ("s.updated_at", []) if self.pull else ("%s", [written_at])
        # Prior versions of the rows about to change (already locked by resolve()).
        cursor.execute(
            "INSERT INTO import_journal (job_id, chunk_index, agent_id, action, before, after_updated_at) "  # noqa: S608
            f"SELECT %s, %s, a.id, 'update', to_jsonb(a), {stamp_sql} FROM agents a "
            f"JOIN import_stage s ON s.id = a.id WHERE {differs}",
            [self.job_id, self.chunk_index, *stamp],
        )
        journalled_updates = cursor.rowcount

        if self.update_columns:
            assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in self.update_columns)
            if not self.pull:
                assignments += ", updated_at = EXCLUDED.updated_at"
            excluded = ", ".join(f"EXCLUDED.{c}" for c in self.update_columns)
            current = ", ".join(f"agents.{c}" for c in self.update_columns)
            on_conflict = f"DO UPDATE SET {assignments} WHERE ROW({current}) IS DISTINCT FROM ROW({excluded})"
        else:
            on_conflict = "DO NOTHING"
        into, select = (
            (stage_cols, stage_cols) if self.pull else (f"{stage_cols}, updated_at", f"{stage_cols}, %s")
        )
        cursor.execute(
            f"WITH upserted AS ("  # noqa: S608
            f"  INSERT INTO agents ({into}) "
            f"  SELECT {select} FROM import_stage "
            f"  ON CONFLICT (id) {on_conflict} RETURNING id, (xmax = 0) AS created, updated_at"
            f"), journal AS ("
            f"  INSERT INTO import_journal (job_id, chunk_index, agent_id, action, before, after_updated_at) "
            f"  SELECT %s, %s, id, 'create', NULL, updated_at FROM upserted WHERE created RETURNING 1"
            f") SELECT count(*) FILTER (WHERE created), count(*) FILTER (WHERE NOT created) FROM upserted",
            [*stamp, self.job_id, self.chunk_index],
        )
        result.created, result.updated = cursor.fetchone()
        if result.updated != journalled_updates:
            raise ConcurrentChange(
                f"{result.updated} rows updated but {journalled_updates} journalled; retrying the chunk"
            )
        expected_new = sum(1 for r in rows if not r.exists)
        if result.created != expected_new:
            raise ConcurrentChange("rows appeared while the chunk ran; retrying the chunk")
        self._shared_licences(rows)
        cursor.execute("DROP TABLE import_stage")
        result.unchanged = len(rows) - result.created - result.updated
        return result

    def _shared_licences(self, rows: list[ParsedRow]) -> None:
        """Warn on every row whose (industry, state, licence) more than one agent holds.

        One query over the chunk, run while import_stage still exists. A row's
        key is what the table holds once this chunk is written: the staged value
        for a created row or a column the file carries, the stored one otherwise
        (which is also right after the write, and in a dry run, where nothing was
        written). Holders are this chunk's rows plus the agents it did not touch.
        """
        after = ", ".join(
            f"s.{c}"
            if c in self.update_columns
            else f"CASE WHEN a.id IS NULL THEN s.{c} ELSE a.{c} END AS {c}"
            for c in ("industry", "state", "license_number")
        )
        cursor = connection.cursor()
        cursor.execute(
            f"WITH after AS ("  # noqa: S608
            f"  SELECT s.id, {after} FROM import_stage s LEFT JOIN agents a ON a.id = s.id"
            f"), keyed AS ("
            f"  SELECT industry, state, license_number, count(*) AS n FROM after"
            f"  WHERE license_number <> '' GROUP BY 1, 2, 3"
            f"), others AS ("
            f"  SELECT o.industry, o.state, o.license_number, count(*) AS n FROM agents o"
            f"  JOIN keyed k ON o.industry = k.industry AND o.state = k.state"
            f"   AND o.license_number = k.license_number"
            f"  WHERE NOT EXISTS (SELECT 1 FROM import_stage s WHERE s.id = o.id) GROUP BY 1, 2, 3"
            f") SELECT f.id, k.industry, k.state, k.license_number, k.n + coalesce(o.n, 0) FROM after f"
            f"  JOIN keyed k ON f.industry = k.industry AND f.state = k.state"
            f"   AND f.license_number = k.license_number"
            f"  LEFT JOIN others o ON o.industry = k.industry AND o.state = k.state"
            f"   AND o.license_number = k.license_number"
            f"  WHERE k.n + coalesce(o.n, 0) > 1"
        )
        shared = {agent_id: (industry, state, licence, n) for agent_id, industry, state, licence, n in cursor}
        if not shared:
            return
        for r in rows:
            hit = shared.get(r.values["id"])
            if hit:
                r.warnings.append(shared_licence_warning(r.line, *hit))


def shared_licences_recount(agent_ids: list[str]) -> list[tuple[str, str, str, str, int]]:
    """(agent id, industry, state, licence, holders) of the given agents whose licence key others hold too.

    Counted from the table as it is: for rows the chunk did not stage
    (unchanged, imports.digests), run after the chunk's write.
    """
    cursor = connection.cursor()
    cursor.execute(
        "SELECT a.id, a.industry, a.state, a.license_number, count(*) FROM agents a "
        "JOIN agents o ON o.industry = a.industry AND o.state = a.state AND o.license_number = a.license_number "
        "WHERE a.id IN (SELECT json_array_elements_text(%s::json)) AND a.license_number <> '' "
        "GROUP BY 1, 2, 3, 4 HAVING count(*) > 1",
        [json.dumps(agent_ids)],
    )
    return cursor.fetchall()


def shared_licence_warning(line: int, industry: str, state: str, licence: str, holders: int) -> RowError:
    return RowError(line, "license_number", excerpt(licence),
                    f"licence {licence} is shared by {holders:,} agents in {state} {industry}")  # fmt: skip


def write_isolating_bad_rows(
    writer: ChunkWriter, rows: list[ParsedRow]
) -> tuple[WriteResult, list[ParsedRow]]:
    """writer.write, except that rows PostgreSQL refuses as data become row errors.

    The parser is meant to catch every such value first (NUL, overlong text,
    bad JSON); this is the net under it, so one bad cell can never fail a
    whole chunk. Each attempt runs in a savepoint; a refused set is halved
    until the refused rows stand alone (about log2(n) more writes per bad row).
    Returns the summed result and the refused rows.
    """
    total, refused = WriteResult(), []
    pending = [rows]
    while pending:
        part = pending.pop()
        if not part:
            continue
        try:
            with transaction.atomic():
                result = writer.write(part)
        except (DataError, psycopg.DataError) as exc:  # SQLSTATE class 22, or psycopg refusing a value
            if len(part) > 1:
                half = len(part) // 2
                pending += [part[half:], part[:half]]
                continue
            row = part[0]
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            row.errors.append(RowError(row.line, "", "", f"PostgreSQL refused the row: {reason}"))
            refused.append(row)
            continue
        total.created += result.created
        total.updated += result.updated
        total.unchanged += result.unchanged
    return total, refused
