"""A local D1 built the way the live `estateflow-db` was (DESIGN.md, "The live D1 we take over").

By hand: 000 created a `schema_migrations(version, applied_at)` table, then
001 and 002 were run with `wrangler d1 execute --file` (no `d1_migrations`
rows), the `industry` column was added by hand, then 003_simple (whose
own ALTER for `industry` the operators skipped: "already added manually").
With wrangler: the same files through `wrangler d1 migrations apply`, so
`d1_migrations` holds 000-003. Either way agents arrive through the old
loader's 50-row INSERTs (agents/tests/live_shape.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from agents.tests.live_shape import LIVE_STAGES, live_agent_rows, live_insert_statements
from sync.d1_client import D1Client
from sync.selectors import d1_migration_files
from sync.sqlite_sql import Statement, split_sql, sql_literal

INDUSTRY_BY_HAND = "ALTER TABLE agents ADD COLUMN industry TEXT DEFAULT 'real_estate'"
LIVE_SCHEMA_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version TEXT PRIMARY KEY, applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)"
)


def _file_statements(index: int) -> list[str]:
    return split_sql(d1_migration_files()[index].read_text(encoding="utf-8"))


def live_d1_build(client: D1Client, *, stages: Sequence[int] = LIVE_STAGES, wrangler: bool = False) -> int:
    """Build the live schema and load its agents; returns how many agents were inserted."""
    if wrangler:
        for path in d1_migration_files()[:4]:
            statements = [Statement(s) for s in split_sql(path.read_text(encoding="utf-8"))]
            statements.append(Statement("INSERT INTO d1_migrations (name) VALUES (?)", (path.name,)))
            client.execute(statements)
    else:
        client.execute([Statement(LIVE_SCHEMA_MIGRATIONS)])
        for version, index in (("001", 1), ("002", 2)):
            for sql in _file_statements(index):  # `wrangler d1 execute --file`: one statement after another
                client.execute([Statement(sql)])
            client.execute([Statement("INSERT INTO schema_migrations (version) VALUES (?)", (version,))])
        client.execute([Statement(INDUSTRY_BY_HAND)])
        for sql in _file_statements(3):
            if "ADD COLUMN industry " in sql:
                continue  # "already added manually"
            client.execute([Statement(sql)])
        client.execute([Statement("INSERT INTO schema_migrations (version) VALUES ('003')")])
    count = 0
    batch: list[Statement] = []
    for sql in live_insert_statements(live_agent_rows(stages)):
        batch.append(Statement(sql))
        count += sql.count("datetime('now'), datetime('now'))")
        if len(batch) == 20:
            client.execute(batch)
            batch = []
    if batch:
        client.execute(batch)
    return count


def d1_export_text(client: D1Client) -> str:
    """What `wrangler d1 export` writes for this database: its schema, then INSERTs of every row."""
    objects = client.rows(
        "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL "
        "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' ORDER BY type = 'table' DESC, rowid"
    )
    lines = ["PRAGMA defer_foreign_keys=TRUE;"]
    for kind, name, sql in objects:
        if kind != "table":
            continue
        lines.append(f"{sql};")
        for row in client.rows(f'SELECT * FROM "{name}"'):  # noqa: S608 - names from sqlite_master
            lines.append(f'INSERT INTO "{name}" VALUES({",".join(sql_literal(v) for v in row)});')
    lines += [f"{sql};" for kind, _name, sql in objects if kind != "table"]
    return "\n".join(lines) + "\n"
