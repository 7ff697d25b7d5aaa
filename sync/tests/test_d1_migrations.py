"""D1 schema migrations on the real local engine: wrangler-compatible bookkeeping, idempotent, lossless."""

import io

import pytest
from django.core.management import call_command

from sync.selectors import d1_migration_files, d1_migrations_status
from sync.services import d1_migrate
from sync.sqlite_sql import Statement, split_sql

pytestmark = pytest.mark.django_db

BASELINE = (
    "000_schema_migrations.sql",
    "001_initial_agents.sql",
    "002_agent_profile_v2.sql",
    "003_multi_industry_platform_simple.sql",
)
OURS = [p.name for p in d1_migration_files()[4:]]


def test_migration_files_are_numbered_and_baseline_first():
    names = [p.name for p in d1_migration_files()]
    assert tuple(names[:4]) == BASELINE
    assert names[4] == "004_sync_bookkeeping.sql"
    assert [n[:3] for n in names] == [f"{i:03d}" for i in range(len(names))]


def test_fresh_database_gets_the_schema_of_design_md(d1_empty):
    applied = d1_migrate(client=d1_empty)
    assert applied == [p.name for p in d1_migration_files()]
    columns = [r["name"] for r in d1_empty.query("PRAGMA table_info(agents)")]
    from agents.checks import d1_agent_columns
    from agents.resources import D1_AGENT_COLUMNS

    # What SQLite builds is what agents.checks reads from the same files (and compares with the model).
    assert columns == [c.name for c in d1_agent_columns().values()]
    assert set(columns) == {*D1_AGENT_COLUMNS, "sync_version", "sync_run"}
    indexes = {r["name"] for r in d1_empty.query("PRAGMA index_list(agents)")}
    assert {"idx_agents_state_city", "idx_agents_industry_profession", "idx_agents_ghost_claimed"} <= indexes
    rows = d1_empty.query("SELECT id, name, applied_at FROM d1_migrations ORDER BY id")
    assert [r["name"] for r in rows] == applied
    assert all(len(r["applied_at"]) == 19 for r in rows)  # 'YYYY-MM-DD HH:MM:SS'
    assert d1_migrate(client=d1_empty) == [], "idempotent"


def test_migrations_apply_on_the_old_four_migration_schema_without_losing_a_row(d1_empty):
    """A D1 that wrangler built with 000-003 and that holds data: only ours runs, every row stays."""
    for path in d1_migration_files()[:4]:
        # wrangler's way: the migration's statements and its record in one request
        statements = [Statement(s) for s in split_sql(path.read_text())]
        statements.append(Statement("INSERT INTO d1_migrations (name) VALUES (?)", (path.name,)))
        d1_empty.execute(statements)
    values = ",".join(
        f"('old{i}', 'old-{i}', 'Legacy ''{i}''', 'TX', 'Austin', 'real_estate', '[\"x\"]')"
        for i in range(700)
    )
    d1_empty.execute(
        [
            Statement(
                "INSERT INTO agents (id, slug, name, state, city, industry, specializations) VALUES "  # noqa: S608
                + values
            )
        ]
    )
    before = d1_empty.query("SELECT * FROM agents ORDER BY id")
    industries_before = d1_empty.query("SELECT * FROM industry_config ORDER BY industry")

    assert d1_migrate(client=d1_empty) == OURS

    after = d1_empty.query("SELECT * FROM agents ORDER BY id")
    assert len(after) == 700
    for old, new in zip(before, after, strict=True):
        assert {k: new[k] for k in old} == old
        assert new["sync_run"] == 0 and new["sync_version"] is None
    assert d1_empty.query("SELECT * FROM industry_config ORDER BY industry") == industries_before
    assert all(r["applied"] for r in d1_migrations_status(client=d1_empty))


def test_a_failing_migration_leaves_no_record_and_no_half_schema(d1_empty, tmp_path, monkeypatch):
    d1_migrate(client=d1_empty)
    bad = tmp_path / "005_broken.sql"
    bad.write_text("CREATE TABLE half_done (id TEXT);\nALTER TABLE no_such_table ADD COLUMN x TEXT;\n")
    files = [*d1_migration_files(), bad]
    monkeypatch.setattr("sync.selectors.d1_migration_files", lambda: files)
    with pytest.raises(Exception, match="no_such_table"):
        d1_migrate(client=d1_empty)
    assert not d1_empty.rows("SELECT name FROM sqlite_master WHERE name = 'half_done'")
    assert not d1_empty.rows("SELECT name FROM d1_migrations WHERE name = '005_broken.sql'")


def test_d1_migrate_command_lists_and_applies(d1_empty):
    out = io.StringIO()
    call_command("d1_migrate", "--list", stdout=out)
    assert out.getvalue().count("pending") == len(d1_migration_files())
    call_command("d1_migrate", stdout=out)
    out = io.StringIO()
    call_command("d1_migrate", "--list", stdout=out)
    assert out.getvalue().count("applied") == len(d1_migration_files())


# --- adopting a D1 that was built without (or with) wrangler's bookkeeping ---------------


def test_hand_built_live_d1_is_baselined_then_ours_applied(d1_empty):
    """The live D1: schema from `wrangler d1 execute --file`, no d1_migrations rows, industry by hand."""
    from .live_d1 import live_d1_build

    live_d1_build(d1_empty, stages=(10, 100))
    before = d1_empty.query("SELECT * FROM agents ORDER BY id")
    states = {r["name"]: r["state"] for r in d1_migrations_status(client=d1_empty)}
    assert states["000_schema_migrations.sql"] == "pending"
    for name in BASELINE[1:]:
        assert states[name].startswith("present, not recorded"), states[name]
    assert all(states[name] == "pending" for name in OURS)

    assert d1_migrate(client=d1_empty) == [*BASELINE, *OURS]

    after = d1_empty.query("SELECT * FROM agents ORDER BY id")
    assert len(after) == len(before) == 110
    for old, new in zip(before, after, strict=True):
        assert {k: new[k] for k in old} == old
    states = {r["name"]: r["state"] for r in d1_migrations_status(client=d1_empty)}
    for name in BASELINE[1:]:
        assert states[name].startswith("recorded as present"), states[name]
    assert states["004_sync_bookkeeping.sql"].startswith("applied")
    assert d1_empty.rows("SELECT count(*) FROM schema_migrations") == [[3]], "the old table is left alone"
    assert d1_migrate(client=d1_empty) == [], "idempotent"


def test_partly_present_migration_runs_only_its_missing_statements(d1_empty):
    for index in (0, 1):
        path = d1_migration_files()[index]
        d1_empty.execute([Statement(s) for s in split_sql(path.read_text())])
    # Half of 002 by hand: two of its columns and one index.
    d1_empty.execute(
        [
            Statement("ALTER TABLE agents ADD COLUMN primary_region TEXT"),
            Statement("ALTER TABLE agents ADD COLUMN primary_county TEXT"),
            Statement("CREATE INDEX idx_agents_tier_x ON agents(name)"),
        ]
    )
    assert d1_migrate(client=d1_empty)[:3] == list(BASELINE[:3])
    columns = [r["name"] for r in d1_empty.query("PRAGMA table_info(agents)")]
    assert columns.count("primary_region") == 1 and "features" in columns and "sync_run" in columns
    status = {r["name"]: r["state"] for r in d1_migrations_status(client=d1_empty)}
    assert status["002_agent_profile_v2.sql"].startswith("applied in part")
    assert "column agents.service_regions" in status["002_agent_profile_v2.sql"]


def test_unreconcilable_schema_stops_before_writing_and_names_the_objects(d1_empty):
    d1_empty.execute(
        [
            Statement("CREATE TABLE agents (id TEXT PRIMARY KEY, name TEXT)"),  # lacks most of 001's columns
            Statement("CREATE INDEX idx_agents_slug ON agents(name)"),
        ]
    )
    with pytest.raises(Exception, match=r"table agents exists without column\(s\) .*slug"):
        d1_migrate(client=d1_empty)
    assert not d1_empty.rows("SELECT name FROM sqlite_master WHERE name = 'd1_migrations'")
    out = io.StringIO()
    call_command("d1_migrate", "--list", stdout=out)
    assert "CONFLICT" in out.getvalue()
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="nothing was written"):
        call_command("d1_migrate", stdout=io.StringIO())


def test_local_sqlite_target_is_baselined_the_same_way(tmp_path, settings):
    from sync.d1_client import d1_client_from_settings

    from .live_d1 import live_d1_build

    settings.D1_DATABASE_ID = ""
    settings.D1_LOCAL_PATH = str(tmp_path / "d1.sqlite3")
    with d1_client_from_settings() as client:
        live_d1_build(client, stages=(10,))
        assert d1_migrate(client=client) == [*BASELINE, *OURS]
        assert client.rows("SELECT count(*) FROM agents") == [[10]]
        assert client.rows("SELECT count(*) FROM d1_migrations") == [[len(d1_migration_files())]]
