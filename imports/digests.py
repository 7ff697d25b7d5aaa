"""Row digests: a re-imported row that did not change is counted unchanged without being parsed.

Nightly re-imports resend whole exports with a few percent of rows changed;
parsing and validating the rest only for the upsert to find nothing to do
was most of their time. For every row an import applied, the table
`import_row_digests` keeps, per agent:

* a 128-bit keyed BLAKE2b digest of the row's bytes in the file (its line
  end left out; for a staged XLSX or JSON file, its source line too), keyed
  with the job's rules: the source of the modules that read, parse, validate
  and write a row, the industry rules (licence patterns, professions,
  enabled), the limits the reader and the widgets apply, and the file's
  encoding and column mapping;
* the agent's row version right after the write: its xmin (PostgreSQL gives
  every new row version the writing transaction's id, so any other write
  changes it: admin and service saves, QuerySet.update, another import, a
  rollback, a D1 pull) and its updated_at (so a transaction id that wrapped
  around cannot alone make a stale digest match);
* whether the row found its agent by id or by (industry, state, licence);
* the row's rule warnings (licence pattern, phone), reported again when the
  row is skipped.

A chunk digests its rows straight from its bytes (planning recorded where
each record starts), looks the digests up in one query, and reads and parses
only the rows that do not match. A match is a row the full path would find
unchanged: the same bytes read under the same rules give the same values; the
agent still holds what the import wrote, so the upsert would write nothing; a
row without an id still finds exactly that agent when no other agent holds
its licence key (checked in the lookup). Whether the job creates and updates or only updates
makes no difference for an agent that exists, so the mode is not part of the
key. A skipped row is counted unchanged and reports its stored warnings plus
the shared-licence warning, counted in the lookup and again after the chunk's
write for the licences that write gave or took (a dry run writes nothing: its
counts are the lookup's).

Not used (every row parsed as before): D1 pulls (their own parser, D1 wins),
"create only" jobs (an existing agent is an error there), ZIP imports with a
photo column (the photo's bytes are not in the row), and rows with neither id
nor licence (each import creates a new agent for them). Dry runs read
digests but write none.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from django.conf import settings
from django.db import connection

from industries.selectors import IndustryRule

from .formats import csv_encoding
from .models import ImportJob
from .rows import ParsedRow, RowError, natural_key
from .writer import shared_licence_warning, shared_licences_recount

# What turns a row's bytes into the values written: a change to any of these
# may read, parse, validate or write the same bytes differently.
ROW_CODE_MODULES = (
    "agents.models",
    "agents.resources",
    "agents.validation",
    "agents.validators",
    "agents.widgets",
    "industries.constants",
    "imports.csv_reader",
    "imports.formats",
    "imports.rows",
    "imports.writer",
)
# Limits that refuse a row while reading or parsing it.
ROW_SETTINGS = ("IMPORT_MAX_ROW_BYTES", "IMPORT_MAX_COLUMNS", "IMPORT_JSON_MAX_DEPTH", "IMPORT_JSON_MAX_KEYS")


@cache
def _row_code_version() -> bytes:
    digest = hashlib.blake2b(digest_size=32)
    for name in ROW_CODE_MODULES:
        digest.update(name.encode() + b"\x00" + Path(importlib.import_module(name).__file__).read_bytes())
    return digest.digest()


def rules_version(industry_rules: Mapping[str, IndustryRule]) -> bytes:
    """What a row's parse, validation and warnings depend on besides its cells (32 bytes)."""
    rules = sorted(
        [
            rule.industry,
            rule.display_name,
            rule.enabled,
            sorted(rule.professions),
            rule.license_label,
            rule.license_re.pattern if rule.license_re else None,
        ]
        for rule in industry_rules.values()
    )
    limits = [getattr(settings, name, None) for name in ROW_SETTINGS]
    text = json.dumps([rules, limits], separators=(",", ":")).encode()
    return hashlib.blake2b(_row_code_version() + text, digest_size=32).digest()


class RowDigester:
    """Digests of a job's rows: equal for equal bytes under the same rules, encoding and column mapping."""

    def __init__(
        self, *, columns: Sequence[str | None], encoding: str, industry_rules: Mapping[str, IndustryRule]
    ):
        reading = json.dumps([encoding, list(columns)], separators=(",", ":")).encode()
        self.key = hashlib.blake2b(rules_version(industry_rules) + reading, digest_size=32).digest()

    def digest(self, raw: bytes) -> bytes:
        """The digest of a record's bytes (ChunkRecords.raw)."""
        return hashlib.blake2b(raw, digest_size=16, key=self.key).digest()


def row_digester_for(
    job: ImportJob, *, industry_rules: Mapping[str, IndustryRule], photos: object | None
) -> RowDigester | None:
    """The job's digester, or None when its rows must all be parsed (see the module docstring)."""
    if job.source == ImportJob.Source.D1 or job.mode == ImportJob.Mode.CREATE_ONLY or photos is not None:
        return None
    # A staged file (XLSX, JSON, a ZIP's data file) is UTF-8 whatever the upload's encoding.
    encoding = "staged utf-8" if job.staged_file else csv_encoding(job.encoding)
    return RowDigester(columns=job.columns, encoding=encoding, industry_rules=industry_rules)


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KnownRow:
    """A row an import applied to `agent_id`, unchanged on both sides since; its agent's licence key."""

    agent_id: str
    warnings: list | None  # the rule warnings, [[column, value excerpt, message], ...]
    industry: str
    state: str
    licence: str | None
    holders: int  # agents holding (industry, state, licence) when looked up; 0 without a licence


class UnchangedRows:
    """The rows of a chunk that a digest shows unchanged: counted, never parsed; warned at the end.

    `lookup` runs one query for the whole chunk. Their shared-licence
    warnings are counted in that query; `warned_rows`, after the chunk's
    write, counts again the licences the write touched.
    """

    def __init__(self, known: dict[int, KnownRow]):
        self.known = known  # {position in the chunk's records: known row}

    @classmethod
    def lookup(cls, digests: Sequence[bytes | None]) -> UnchangedRows:
        """The rows whose digest matches an agent that still holds what the import wrote.

        A digest given twice (two equal rows) or matching two agents is left
        out: those rows take the full path.
        """
        counts = Counter(d for d in digests if d is not None)
        wanted = [d.hex() for d, n in counts.items() if n == 1]
        if not wanted:
            return cls({})
        with connection.cursor() as cursor:
            # The digests as one JSON text: psycopg adapts a 5,000-item array item by item in
            # Python. One index probe per digest, then per agent (OFFSET 0 keeps each lateral
            # subquery apart): whatever the table sizes, the planner can neither scan a 5,000-item
            # array per digest row nor hash the whole agents table on the xmin it cannot estimate.
            cursor.execute(
                "SELECT d.digest, d.agent_id, d.warnings, a.industry, a.state, a.license_number, h.holders "
                "FROM json_array_elements_text(%s::json) AS w(digest) "
                "CROSS JOIN LATERAL (SELECT * FROM import_row_digests d "
                "  WHERE d.digest = decode(w.digest, 'hex') OFFSET 0) d "
                "CROSS JOIN LATERAL (SELECT a.industry, a.state, a.license_number FROM agents a "
                "  WHERE a.id = d.agent_id AND a.xmin::text::bigint = d.agent_xmin "
                "  AND a.updated_at = d.agent_updated_at OFFSET 0) a "
                "CROSS JOIN LATERAL (SELECT count(*) AS holders FROM agents o WHERE a.license_number <> '' "
                "  AND o.industry = a.industry AND o.state = a.state AND o.license_number = a.license_number) h "
                # Matched on its licence key: it must still name this agent alone.
                "WHERE NOT d.by_licence OR h.holders = 1",
                [json.dumps(sorted(wanted))],  # in index order
            )
            found = cursor.fetchall()
        matches = Counter(row[0] for row in found)
        # jsonb comes back as text (Django's loader: JSONField parses it itself).
        by_digest = {
            digest: KnownRow(agent_id, warnings and json.loads(warnings), industry, state, licence, holders)
            for digest, agent_id, warnings, industry, state, licence, holders in found
            if matches[digest] == 1
        }
        return cls({i: by_digest[d] for i, d in enumerate(digests) if d in by_digest})

    def __contains__(self, position: int) -> bool:
        return position in self.known

    def __len__(self) -> int:
        return len(self.known)

    def warned_rows(
        self,
        row_at: Callable[[int], tuple[int, list[str]]],
        *,
        job_id: int,
        chunk_index: int,
        written_ids: list[str],
    ) -> list[ParsedRow]:
        """The unchanged rows that carry a warning, as the chunk reports them; `row_at` reads a row.

        `written_ids`: the agents the chunk's write created or updated; the
        holders of the licences they hold or held are counted again.
        """
        if not self.known:
            return []
        touched = _licences_touched(job_id=job_id, chunk_index=chunk_index, agent_ids=written_ids)
        stale = [k.agent_id for k in self.known.values() if k.licence in touched]
        recounted = {agent_id: key for agent_id, *key in shared_licences_recount(stale)} if stale else {}
        out = []
        for i, known in self.known.items():
            if known.licence in touched:
                industry, state, licence, holders = recounted.get(known.agent_id, (None, None, None, 1))
            else:
                industry, state, licence, holders = known.industry, known.state, known.licence, known.holders
            if not known.warnings and holders < 2:
                continue
            line, cells = row_at(i)
            row = ParsedRow(line=line, values={"id": known.agent_id}, cells=cells)
            row.warnings = [RowError(line, c, v, m) for c, v, m in known.warnings or ()]
            if holders > 1:
                row.warnings.append(shared_licence_warning(line, industry, state, licence, holders))
            out.append(row)
        return out


def _licences_touched(*, job_id: int, chunk_index: int, agent_ids: list[str]) -> set[str]:
    """Licences the chunk's write gave to or took from its agents: now held, and held before an update."""
    if not agent_ids:  # nothing written (or a dry run)
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT license_number FROM agents WHERE id IN (SELECT json_array_elements_text(%s::json)) "
            "UNION SELECT before ->> 'license_number' FROM import_journal "
            "WHERE job_id = %s AND chunk_index = %s AND action = 'update'",
            [json.dumps(agent_ids), job_id, chunk_index],
        )
        return {licence for (licence,) in cursor.fetchall() if licence}


# --- writing -------------------------------------------------------------------------------


@dataclass(slots=True)
class DigestedRow:
    """A parsed row and what its digest entry records once the row lands."""

    row: ParsedRow
    digest: bytes
    by_licence: bool
    warnings: list | None  # the rule warnings (the writer adds the shared-licence ones later)


def digested_row(row: ParsedRow, digest: bytes | None) -> DigestedRow | None:
    """The digest entry of a valid parsed row, before identities are resolved; None if it gets none.

    A row with neither id nor licence creates a new agent every time it is
    imported: a digest would wrongly tie it to the agent it created last time.
    """
    if digest is None:
        return None
    values = row.values
    by_licence = not values.get("id")
    key = natural_key(values.get("industry"), values.get("state"), values.get("license_number"))
    if by_licence and key is None:
        return None
    warnings = [[w.column, w.value, w.message] for w in row.warnings] or None
    return DigestedRow(row=row, digest=digest, by_licence=by_licence, warnings=warnings)


def row_digests_save(*, rows: Sequence[DigestedRow]) -> None:
    """Record the rows that landed (no errors) with their agents' row versions, in the chunk's transaction.

    Run after the chunk's write: xmin and updated_at are what the write left.
    An agent two rows of the chunk landed on gets no entry (neither row is its
    single last version).
    """
    landed = [r for r in rows if not r.row.errors]
    per_agent = Counter(r.row.values["id"] for r in landed)
    landed = [r for r in landed if per_agent[r.row.values["id"]] == 1]
    if not landed:
        return
    entries = [
        {
            "agent_id": r.row.values["id"],
            "digest": r.digest.hex(),
            "by_licence": r.by_licence,
            "warnings": r.warnings,
        }
        for r in landed
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO import_row_digests AS d "
            "  (agent_id, digest, agent_xmin, agent_updated_at, by_licence, warnings) "
            "SELECT a.id, decode(r.digest, 'hex'), a.xmin::text::bigint, a.updated_at, r.by_licence, "
            "  r.warnings::jsonb "
            "FROM json_to_recordset(%s::json) AS r(agent_id text, digest text, by_licence boolean, warnings json) "
            "JOIN agents a ON a.id = r.agent_id "
            "ON CONFLICT (agent_id) DO UPDATE SET digest = EXCLUDED.digest, "
            "  agent_xmin = EXCLUDED.agent_xmin, agent_updated_at = EXCLUDED.agent_updated_at, "
            "  by_licence = EXCLUDED.by_licence, warnings = EXCLUDED.warnings "
            "WHERE ROW(d.digest, d.agent_xmin, d.agent_updated_at, d.by_licence, d.warnings) "
            "  IS DISTINCT FROM ROW(EXCLUDED.digest, EXCLUDED.agent_xmin, EXCLUDED.agent_updated_at, "
            "  EXCLUDED.by_licence, EXCLUDED.warnings)",
            [json.dumps(entries, ensure_ascii=False)],
        )
