"""Data shaped like the live D1 we take over (DESIGN.md, "The live D1 we take over").

The old system loaded 11,110 agents in four stages (10, 100, 1,000, 10,000
rows) from CSV files with the header below: numeric ids stored as TEXT,
names such as "John Smith 1111", one licence shared by a thousand Florida
real-estate agents (RE123456), licences like LAW98765 / INS45678 /
MTG34567 / FIN23456 that break the official NPN / NMLS / CRD patterns,
phones like 555-0001, states FL and TX. Its loader wrote 50-row INSERTs
with slug = the name lower-cased, runs of non-alphanumerics turned into
"-", cut at 50 characters.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence

LIVE_HEADER: tuple[str, ...] = ("id", "name", "license_number", "email", "phone", "industry", "state", "city")
LIVE_STAGES: tuple[int, ...] = (10, 100, 1000, 10000)
SHARED_RE_LICENCE = "RE123456"
SHARED_RE_COUNT = 1000

_FIRST = ("John", "Jane", "Maria", "David", "Linda", "James", "Patricia", "Robert", "Jennifer", "Michael")
_LAST = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Wilson")
_CITIES = {
    "FL": ("Miami", "Orlando", "Tampa", "Jacksonville"),
    "TX": ("Houston", "Austin", "Dallas", "San Antonio"),
}
# Industry by id, and the (shared) licence each non-real-estate industry's agents carry.
_INDUSTRY_CYCLE = ("real_estate", "real_estate", "real_estate", "legal", "insurance", "mortgage", "financial")
_SHARED_LICENCES = {
    "legal": "LAW98765",
    "insurance": "INS45678",
    "mortgage": "MTG34567",
    "financial": "FIN23456",
}


def live_slug(name: str) -> str:
    """The old loader's slug: lower-case, runs of non-alphanumerics -> '-', cut at 50."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:50]


def live_agent_rows(stages: Sequence[int] = LIVE_STAGES) -> Iterator[dict]:
    """The live agents in load order: dicts keyed by LIVE_HEADER (numeric ids from 1)."""
    total = sum(stages)
    shared_re_left = min(SHARED_RE_COUNT, total)
    for i in range(1, total + 1):
        first, last = _FIRST[i % len(_FIRST)], _LAST[(i // len(_FIRST)) % len(_LAST)]
        name = f"{first} {last} {i}"
        state = "FL" if i % 2 else "TX"
        industry = _INDUSTRY_CYCLE[i % len(_INDUSTRY_CYCLE)]
        if industry == "real_estate":
            if state == "FL" and shared_re_left:
                licence = SHARED_RE_LICENCE
                shared_re_left -= 1
            else:
                licence = f"RE{100000 + i}"
        else:
            licence = _SHARED_LICENCES[industry]
        yield {
            "id": str(i),
            "name": name,
            "license_number": licence,
            "email": f"{first}.{last}{i}@example.com".lower(),
            "phone": f"555-{i % 10000:04d}",
            "industry": industry,
            "state": state,
            "city": _CITIES[state][i % len(_CITIES[state])],
        }


def live_stage_files(stages: Sequence[int] = LIVE_STAGES) -> list[str]:
    """The four CSV files the old system loaded, as text (one per stage)."""
    rows = live_agent_rows(stages)
    out = []
    for size in stages:
        out.append(live_csv(next(rows) for _ in range(size)))
    return out


def live_csv(rows: Iterable[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(LIVE_HEADER)
    for row in rows:
        writer.writerow([row[c] for c in LIVE_HEADER])
    return buffer.getvalue()


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def live_insert_statements(rows: Iterable[dict], *, batch: int = 50) -> Iterator[str]:
    """The old loader's SQL: 50-row INSERTs, tier 'ghost', datetime('now') timestamps."""
    pending: list[str] = []

    def flush() -> str:
        # Values are quoted by _quote, as the old loader did (this is its SQL, reproduced).
        return (
            "INSERT INTO agents (id, slug, name, license_number, email, phone, industry, state, city, "  # noqa: S608
            "subscription_tier, created_at, updated_at) VALUES " + ", ".join(pending)
        )

    for row in rows:
        values = [row["id"], live_slug(row["name"]), *(row[c] for c in LIVE_HEADER[1:])]
        pending.append(
            "(" + ", ".join(_quote(v) for v in values) + ", 'ghost', datetime('now'), datetime('now'))"
        )
        if len(pending) >= batch:
            yield flush()
            pending = []
    if pending:
        yield flush()
