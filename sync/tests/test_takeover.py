"""Taking over the live D1 without losing a row, a slug or an hour of service (issue 11).

Every test runs against the real local D1 engine (miniflare/workerd), built
the way the live `estateflow-db` was (sync/tests/live_d1.py): schema by
`wrangler d1 execute --file` or by `wrangler d1 migrations apply`, 11,110
agents through the old loader's 50-row INSERTs. The only stand-in is D1
Time Travel (Cloudflare's own service): the engine's Worker keeps bookmarks
in memory with the same REST shape.
"""

from __future__ import annotations

import io
import sqlite3

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse

from agents.checks import d1_agent_columns, d1_migration_sources
from agents.models import Agent
from agents.tests.live_shape import LIVE_STAGES, live_agent_rows, live_slug, live_stage_files
from imports.models import ImportJob, ImportRowError
from imports.rollback import import_rollback_request
from imports.tests.conftest import run_import
from sync.models import SyncRun
from sync.pull import d1_pull
from sync.services import SyncOptions, d1_migrate, d1_verify, sync_run_execute
from sync.sqlite_sql import Statement

from .live_d1 import d1_export_text, live_d1_build

pytestmark = pytest.mark.django_db(transaction=True)

SEVEN_QUERIES = (
    "SELECT COUNT(*) FROM agents",
    "SELECT COUNT(*) FROM agents WHERE state = 'FL'",
    "SELECT COUNT(*) FROM agents WHERE industry = 'real_estate'",
    "SELECT COUNT(*) FROM agents WHERE industry = 'real_estate' AND state = 'FL'",
    "SELECT a.industry, ic.display_name, COUNT(*) FROM agents a LEFT JOIN industry_config ic "
    "ON a.industry = ic.industry GROUP BY a.industry, ic.display_name ORDER BY a.industry",
    "SELECT name, email FROM agents ORDER BY name LIMIT 10",
    "SELECT COUNT(*) FROM agents WHERE name LIKE '%John%'",
)
# The public site's search (its column list cut to what identifies an agent's page).
PUBLIC_SEARCH = (
    "SELECT id, slug, name, city, state FROM agents WHERE status = 'active' AND (name LIKE ? OR city LIKE ? "
    "OR state LIKE ? OR specializations LIKE ?) ORDER BY profile_views DESC LIMIT ? OFFSET ?"
)
SEARCHES = (("%Smith%", 50, 0), ("%Miami%", 25, 100), ("%TX%", 40, 2000), ("%Garcia 11%", 100, 0))


# The columns the live D1 has and the public site reads: what the baseline migrations (000-003)
# create. Not the model's columns: SQLite reads a double-quoted name it does not know as a string.
LIVE_COLUMNS = tuple(c.name for c in d1_agent_columns(d1_migration_sources()[:4]).values())


def d1_content(client) -> dict[str, tuple]:
    """Every D1 agent's columns of the live schema (what the public site reads), by id."""
    cols = ", ".join(f'"{c}"' for c in LIVE_COLUMNS)
    return {r[0]: tuple(r) for r in client.rows(f"SELECT {cols} FROM agents ORDER BY id")}  # noqa: S608


def d1_answers(client) -> list:
    return [client.rows(q) for q in SEVEN_QUERIES]


def pg_answers() -> list:
    out = []
    with connection.cursor() as cur:
        for q in SEVEN_QUERIES:
            cur.execute(q)
            out.append([list(r) for r in cur.fetchall()])
    return out


def public_search(client) -> list:
    return [client.rows(PUBLIC_SEARCH, (t, t, t, t, limit, offset)) for t, limit, offset in SEARCHES]


@pytest.fixture
def live(d1_empty):
    """The live D1, built by hand, with all 11,110 agents."""
    assert live_d1_build(d1_empty) == sum(LIVE_STAGES) == 11_110
    return d1_empty


@pytest.mark.slow
def test_hand_built_live_d1_is_adopted_without_losing_a_row_or_a_slug(live):
    content = d1_content(live)
    searches = public_search(live)
    answers = d1_answers(live)
    assert len(content) == 11_110

    out = io.StringIO()
    call_command("d1_migrate", stdout=out)
    assert "recorded as present" in out.getvalue()

    # PostgreSQL knows none of them: the first sync refuses and writes nothing.
    refused = sync_run_execute(reason="first")
    assert refused.status == SyncRun.Status.REFUSED
    assert refused.unknown_in_d1 == 11_110 and "d1_pull" in refused.error
    assert (refused.rows_upserted, refused.rows_deleted) == (0, 0)
    with pytest.raises(CommandError, match="11,110 agents PostgreSQL does not know"):
        call_command("sync_d1", stdout=io.StringIO())
    assert d1_content(live) == content

    result = d1_pull(client=live)
    job = result.job
    assert job.source == ImportJob.Source.D1
    assert (job.created_rows, job.updated_rows, job.failed_rows) == (11_110, 0, 0), job.error_message
    assert job.status == ImportJob.Status.COMPLETED
    assert (result.marked, result.conflicts) == (11_110, 0)
    # D1's rules-breaking data is warned about, never refused: profession 'agent' on a lawyer...
    lawyer = next(r for r in live_agent_rows() if r["industry"] == "legal")
    warned = ImportRowError.objects.filter(job=job, severity=ImportRowError.Severity.WARNING)
    assert warned.filter(column="profession", raw_row__contains=[f'"{lawyer["id"]}"']).exists()
    assert warned.filter(column="license_number").exists() and warned.filter(column="phone").exists()
    agent = Agent.objects.get(pk="1111")
    assert agent.slug == live_slug(agent.name) and agent.subscription_tier == "ghost"

    assert d1_verify().clean
    run = sync_run_execute(reason="after pull")
    assert run.status == SyncRun.Status.COMPLETED, run.error
    assert d1_content(live) == content, "the sync changed no D1 row's content"
    assert public_search(live) == searches
    assert d1_answers(live) == answers == pg_answers()

    # The live system's own files again: every row is known and unchanged, every slug kept.
    for text in live_stage_files():
        again = run_import(text, name="live.csv")
        assert again.failed_rows == 0 and again.created_rows == again.updated_rows == 0
    assert sync_run_execute(reason="after files").rows_upserted == 0
    assert d1_content(live) == content

    # An admin edit reaches D1.
    agent.city = "Key West"
    agent.save()
    edited = sync_run_execute(reason="admin edit")
    assert edited.status == SyncRun.Status.COMPLETED and edited.rows_upserted == 1
    assert live.rows("SELECT city, slug FROM agents WHERE id = '1111'") == [["Key West", agent.slug]]
    assert d1_answers(live) == pg_answers()
    assert d1_verify().clean


def test_wrangler_built_live_d1_is_adopted_too(d1_empty):
    live_d1_build(d1_empty, stages=(10, 100, 1000), wrangler=True)
    content = d1_content(d1_empty)
    # wrangler recorded the baseline (000-003): every later migration runs, and only those.
    assert d1_migrate(client=d1_empty) == [name for name, _ in d1_migration_sources()[4:]]
    assert sync_run_execute(reason="first").status == SyncRun.Status.REFUSED
    assert d1_content(d1_empty) == content
    out = io.StringIO()
    call_command("d1_pull", stdout=out)
    assert "1,110 created" in out.getvalue()
    assert sync_run_execute(reason="adopted").status == SyncRun.Status.COMPLETED
    assert d1_content(d1_empty) == content
    assert d1_answers(d1_empty) == pg_answers()
    assert d1_verify().clean


def test_importing_the_live_files_into_an_empty_postgres_never_replaces_live_slugs(d1_empty):
    """PostgreSQL derives its own slugs for new agents; D1's public URLs must survive the sync."""
    stages = (10, 100, 1000)
    live_d1_build(d1_empty, stages=stages)
    d1_migrate(client=d1_empty)
    content = d1_content(d1_empty)
    for text in live_stage_files(stages):
        job = run_import(text, name="live.csv")
        assert job.failed_rows == 0 and job.warned_rows > 0
    assert Agent.objects.count() == 1110
    run = sync_run_execute(reason="first")
    assert run.status == SyncRun.Status.PARTIAL
    assert len(run.unmanaged_kept) == 1110 and "d1_pull" in run.error
    assert {r[1] for r in d1_content(d1_empty).values()} == {r[1] for r in content.values()}
    assert d1_content(d1_empty) == content

    # Only the operator's explicit word replaces them.
    forced = sync_run_execute(reason="forced", options=SyncOptions(overwrite_unmanaged=True))
    assert forced.status == SyncRun.Status.COMPLETED and not forced.unmanaged_kept
    assert d1_content(d1_empty)["7"][1] == Agent.objects.get(pk="7").slug != content["7"][1]


def test_prune_takes_a_bookmark_first_and_the_bookmark_restores(d1_empty, admin_client):
    live_d1_build(d1_empty, stages=(10, 100))
    d1_migrate(client=d1_empty)
    content = d1_content(d1_empty)
    run = sync_run_execute(full=True, reason="prune", options=SyncOptions(prune=True))
    assert run.status == SyncRun.Status.COMPLETED, run.error
    assert run.rows_deleted == 110 and run.pruned
    assert run.bookmark and f"bookmark={run.bookmark}" in run.restore_hint
    assert "wrangler d1 time-travel restore" in run.restore_hint
    assert d1_content(d1_empty) == {}
    page = admin_client.get(reverse("admin:sync_syncrun_changelist")).content.decode()
    assert f'<code id="sync-bookmark">{run.bookmark}</code>' in page and "time_travel/restore" in page
    import httpx

    assert httpx.post(run.restore_hint.split()[1]).status_code == 200
    assert d1_content(d1_empty) == content


def test_conflicts_postgres_wins_by_default_and_d1_on_request(d1_empty):
    live_d1_build(d1_empty, stages=(10, 100))
    d1_migrate(client=d1_empty)
    first = d1_pull(client=d1_empty)
    assert first.job.created_rows == 110
    # Both sides change agent 7 differently.
    Agent.objects.filter(pk="7").update(city="Postgres City")
    d1_empty.execute([Statement("UPDATE agents SET city = 'D1 City', sync_run = 0 WHERE id = '7'")])

    kept = d1_pull(client=d1_empty)
    assert kept.job.unchanged_rows == 110 and kept.conflicts == 1
    conflict = ImportRowError.objects.get(job=kept.job, message__startswith="conflict:")
    assert conflict.column == "city" and "PostgreSQL's version kept" in conflict.message
    assert Agent.objects.get(pk="7").city == "Postgres City"
    run = sync_run_execute(reason="postgres wins")
    assert run.status == SyncRun.Status.COMPLETED, run.error
    assert d1_empty.rows("SELECT city FROM agents WHERE id = '7'") == [["Postgres City"]]

    d1_empty.execute([Statement("UPDATE agents SET city = 'D1 City', sync_run = 0 WHERE id = '7'")])
    taken = d1_pull(client=d1_empty, prefer="d1")
    assert taken.job.updated_rows == 1
    assert Agent.objects.get(pk="7").city == "D1 City"
    assert d1_verify().clean


def test_rolling_back_a_pull_restores_postgres_and_leaves_d1_alone(d1_empty):
    live_d1_build(d1_empty, stages=(10, 100))
    d1_migrate(client=d1_empty)
    content = d1_content(d1_empty)
    job = d1_pull(client=d1_empty).job
    sync_run_execute(reason="adopted")
    import_rollback_request(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.ROLLED_BACK
    assert Agent.objects.count() == 0
    sync_run_execute(reason="after rollback")
    assert d1_content(d1_empty) == content, "a rollback of a pull never deletes live rows"


def test_pull_from_a_wrangler_export_file(d1_empty, tmp_path, monkeypatch):
    """`wrangler d1 export` writes CREATE TABLE and INSERT statements; the pull reads them, D1 untouched."""
    live_d1_build(d1_empty, stages=(10, 100))
    export = tmp_path / "estateflow-db.sql"
    export.write_text(d1_export_text(d1_empty))  # exported before d1_migrate, like the live one would be
    d1_migrate(client=d1_empty)
    content = d1_content(d1_empty)
    out = io.StringIO()
    # Not the sync an import job asks for when it finishes: D1 as the pull left it is under test.
    monkeypatch.setattr("sync.services.d1_sync_request", lambda **kwargs: None)
    call_command("d1_pull", from_file=str(export), stdout=out)
    assert "110 created" in out.getvalue()
    assert Agent.objects.count() == 110
    assert d1_empty.rows("SELECT count(*) FROM agents WHERE sync_run > 0") == [[0]], "D1 itself untouched"
    # The identical rows are taken over by the next sync itself; their content stays.
    run = sync_run_execute(reason="after export pull")
    assert run.status == SyncRun.Status.COMPLETED, run.error
    assert d1_empty.rows("SELECT count(*) FROM agents WHERE sync_run = 0") == [[0]]
    assert d1_content(d1_empty) == content
    assert d1_verify().clean


def test_pull_from_an_export_older_than_a_column_gives_the_missing_columns_their_defaults(tmp_path):
    """An export made before 003 (no industry, profession, specializations) still pulls; defaults fill in."""
    from sync.d1_client import D1Client, SqliteTransport
    from sync.selectors import d1_migration_files
    from sync.sqlite_sql import split_sql

    old = tmp_path / "old.sqlite3"
    client = D1Client(SqliteTransport(path=str(old)))
    for path in d1_migration_files()[1:3]:
        client.execute([Statement(s) for s in split_sql(path.read_text())])
    client.execute(
        [Statement("INSERT INTO agents (id, slug, name, state) VALUES ('old-1', 'old-one', 'Old One', 'TX')")]
    )
    client.close()
    with sqlite3.connect(old) as con:
        export = tmp_path / "old.sql"
        export.write_text(
            "\n".join(line for line in con.iterdump() if line not in ("BEGIN TRANSACTION;", "COMMIT;"))
        )
    out = io.StringIO()
    call_command("d1_pull", from_file=str(export), stdout=out)
    agent = Agent.objects.get(pk="old-1")
    assert (agent.slug, agent.industry_id, agent.profession, agent.specializations) == (
        "old-one",
        "real_estate",
        "agent",
        [],
    )


def test_sync_d1_exits_2_when_it_leaves_live_rows_as_they_are(d1_empty):
    """A partial sync (D1 rows kept because their content differs) is not a success for cron."""
    live_d1_build(d1_empty, stages=(10,))
    d1_migrate(client=d1_empty)
    run_import(live_stage_files((10,))[0], name="live.csv")
    with pytest.raises(SystemExit) as exit_info:
        call_command("sync_d1", stdout=io.StringIO())
    assert exit_info.value.code == 2
    assert SyncRun.objects.latest("id").status == SyncRun.Status.PARTIAL
