"""Incremental and full sync against the real local D1 engine (miniflare), PostgreSQL triggers included."""

import json
import threading
from decimal import Decimal

import pytest
from django.db import connection, transaction

from agents.models import Agent
from sync.models import SyncChange, SyncRun, SyncState
from sync.push import agent_prepared, agent_units, push_builders
from sync.selectors import (
    AGENT_PUSH_COLUMNS,
    agents_rows_all,
    agents_rows_by_ids,
    d1_last_successful_sync_started_at,
    industries_rows,
    row_body_and_version,
)
from sync.services import SYNC_LOCK_KEY, SyncOptions, d1_verify, sync_run_execute
from sync.sqlite_sql import d1_value

from .factories import SyncAgentFactory, agents_bulk, industries_ensure

pytestmark = pytest.mark.django_db(transaction=True)


def d1_agents(client) -> dict[str, dict]:
    rows = client.query("SELECT * FROM agents ORDER BY id")
    return {r["id"]: r for r in rows}


def assert_d1_equals_postgres(client) -> None:
    d1 = d1_agents(client)
    pg = {}
    for values in agents_rows_all():
        pg[values[0]] = values
    assert set(d1) == set(pg)
    columns = AGENT_PUSH_COLUMNS[:-2]
    for row_id, values in pg.items():
        expected = {c: d1_value(v) for c, v in zip(columns, values, strict=True)}
        got = {c: d1[row_id][c] for c in columns}
        # NUMERIC affinity: DECIMAL(12,2) comes back as a number; compare its value.
        got["total_volume_sold"] = Decimal(str(got["total_volume_sold"]))
        expected["total_volume_sold"] = Decimal(expected["total_volume_sold"])
        assert got == expected, row_id
        assert d1[row_id]["sync_version"] == row_body_and_version(values)[1]


@pytest.fixture
def seeded(d1):
    industries_ensure()
    return d1


def test_first_sync_is_full_and_lands_every_type_exactly(seeded):
    agents_bulk(300)
    run = sync_run_execute(reason="test")
    assert run.status == SyncRun.Status.COMPLETED, run.error
    assert run.kind == SyncRun.Kind.FULL
    assert run.rows_upserted == 300 + 6
    assert_d1_equals_postgres(seeded)
    industries = {r["industry"]: r for r in seeded.query("SELECT * FROM industry_config")}
    assert set(industries) == {r[0] for r in industries_rows()}
    assert SyncChange.objects.count() == 0, "the change log is pruned once synced"
    assert d1_verify().clean


@pytest.mark.slow
def test_incremental_sends_only_changed_rows_edits_and_deletes(seeded):
    """1,000 edits and 100 deletes across admin saves and bulk paths; only those rows travel."""
    agents_bulk(3000)
    assert sync_run_execute(reason="first").status == SyncRun.Status.COMPLETED
    ids = sorted(Agent.objects.values_list("id", flat=True))
    # bulk path: one UPDATE statement, no save(), no auto_now
    Agent.objects.filter(id__in=ids[:990]).update(city="Oakland", bio=None, features={"k": "v'"})
    # admin-like path: save() per row
    for agent in Agent.objects.filter(id__in=ids[990:1000]):
        agent.name = agent.name + " (edited)"
        agent.save()
    Agent.objects.filter(id__in=ids[2000:2100]).delete()
    # a second, identical update is a no-op and is not logged
    really_changed = Agent.objects.filter(id__in=ids[2500:2600]).exclude(state="CA").count()
    Agent.objects.filter(id__in=ids[2500:2600]).update(state="CA")
    Agent.objects.filter(id__in=ids[2500:2600]).update(state="CA")

    run = sync_run_execute(reason="incremental")
    assert run.status == SyncRun.Status.COMPLETED, run.error
    assert run.kind == SyncRun.Kind.INCREMENTAL
    assert 0 < really_changed < 100
    assert run.changes_read == 1100 + really_changed
    assert run.rows_deleted == 100
    assert run.rows_upserted == 1000 + really_changed
    assert_d1_equals_postgres(seeded)
    assert SyncChange.objects.count() == 0
    assert d1_verify().clean

    nothing = sync_run_execute(reason="idle")
    assert (nothing.rows_upserted, nothing.rows_deleted, nothing.requests) == (0, 0, 0)


def test_raw_sql_import_path_is_tracked(seeded):
    """The import pipeline writes with COPY + INSERT ... ON CONFLICT and DELETEs; triggers see all of it."""
    agents_bulk(50)
    sync_run_execute(reason="first")
    listed = "id, slug, name, state, industry, profession, status, ghost_profile, profile_views, fake_leads_count, created_at, updated_at, service_regions, service_zipcodes, service_radius_miles, primary_specialty, secondary_specialties, property_types, price_ranges, client_focus, language_capabilities, years_experience, transactions_ytd, total_volume_sold, subscription_tier, bio_tone, content_style, unique_value_props, features, specializations"
    # Any other NOT NULL column takes its model default, as the import's writer gives it.
    defaulted = [f for f in Agent._meta.concrete_fields if not f.null and f.column not in listed.split(", ")]
    defaults = tuple(json.dumps(f.get_default()) if f.get_internal_type() == "JSONField" else f.get_default()
                     for f in defaulted)  # fmt: skip
    cols = ", ".join([listed, *(f.column for f in defaulted)])
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("CREATE TEMP TABLE imp (LIKE agents INCLUDING DEFAULTS) ON COMMIT DROP")
        with cur.copy(f"COPY imp ({cols}) FROM STDIN") as copy:
            for i in range(40):
                row_id = f"a{i:07d}" if i < 20 else f"new{i:04d}"
                copy.write_row(
                    (
                        row_id,
                        f"imp-{i}",
                        f"Imported {i}",
                        "NV",
                        "legal",
                        "attorney",
                        "active",
                        True,
                        0,
                        7,
                        "2024-01-01 00:00:00+00",
                        "2024-01-01 00:00:00+00",
                        "[]",
                        "[]",
                        25,
                        "general",
                        "[]",
                        "[]",
                        "{}",
                        "both",
                        '["English"]',
                        0,
                        0,
                        "0",
                        "ghost",
                        "professional",
                        "informative",
                        "[]",
                        "{}",
                        "[]",
                        *defaults,
                    )
                )
        upsert = (
            f"INSERT INTO agents ({cols}) SELECT {cols} FROM imp "  # noqa: S608 - fixed column list
            "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, state = EXCLUDED.state, slug = EXCLUDED.slug"
        )
        cur.execute(upsert)
        cur.execute("DELETE FROM agents WHERE id IN ('a0000045', 'a0000046')")
    run = sync_run_execute(reason="after import")
    assert run.status == SyncRun.Status.COMPLETED, run.error
    assert (run.rows_upserted, run.rows_deleted) == (40, 2)
    assert_d1_equals_postgres(seeded)


def _pg_connect():
    import psycopg

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return psycopg.connect(**params, autocommit=False)


def test_transaction_committing_after_a_later_numbered_one_is_not_missed(seeded):
    """Two real concurrent transactions: T1 takes its xid first but commits after T2 and after a sync."""
    agents_bulk(2)
    assert sync_run_execute(reason="first").status == SyncRun.Status.COMPLETED
    t1, t2 = _pg_connect(), _pg_connect()
    try:
        with t1.cursor() as c1, t2.cursor() as c2:
            c1.execute("SELECT pg_current_xact_id()::text::bigint")
            xid1 = c1.fetchone()[0]
            c2.execute("SELECT pg_current_xact_id()::text::bigint")
            xid2 = c2.fetchone()[0]
            assert xid1 < xid2
            c1.execute("UPDATE agents SET city = 'Written by T1' WHERE id = 'a0000000'")
            c2.execute("UPDATE agents SET city = 'Written by T2' WHERE id = 'a0000001'")
            t2.commit()  # the later-numbered transaction commits first

            # A sync in a third thread, while T1 is still open.
            result = {}
            thread = threading.Thread(target=lambda: result.setdefault("run", _sync_in_thread()))
            thread.start()
            thread.join(60)
            run = result["run"]
            assert run.status == SyncRun.Status.COMPLETED, run.error
            assert run.rows_upserted == 1
            # A "highest xid seen" cursor would now sit past xid1; the snapshot xmin does not.
            assert run.position_after <= xid1
            t1.commit()
    finally:
        t1.close()
        t2.close()
    d1_cities = {r["id"]: r["city"] for r in seeded.query("SELECT id, city FROM agents")}
    assert d1_cities["a0000001"] == "Written by T2"
    assert d1_cities["a0000000"] != "Written by T1"

    run = sync_run_execute(reason="after T1")
    assert run.rows_upserted == 1
    d1_cities = {r["id"]: r["city"] for r in seeded.query("SELECT id, city FROM agents")}
    assert d1_cities["a0000000"] == "Written by T1"
    assert SyncChange.objects.count() == 0


def _sync_in_thread():
    try:
        return sync_run_execute(reason="concurrent")
    finally:
        connection.close()


def test_deleted_agent_never_comes_back_from_a_stale_upsert(seeded):
    """A late duplicate of an old upsert request (e.g. a retried POST) must not resurrect a deleted row."""
    agents_bulk(3)
    first = sync_run_execute(reason="first")
    # The exact statement the first run sent for a0000001, replayed later.
    stale = list(
        agent_units(push_builders(), [agent_prepared(agents_rows_by_ids(["a0000001"])[0], first.pk)])
    )[0].statements
    Agent.objects.filter(id="a0000001").delete()
    run = sync_run_execute(reason="delete")
    assert run.rows_deleted == 1
    assert "a0000001" not in d1_agents(seeded)

    seeded.execute(stale)
    assert "a0000001" not in d1_agents(seeded), "tombstone guard dropped the stale insert"
    assert d1_verify().clean

    # A stale update can't overwrite a newer row either.
    Agent.objects.filter(id="a0000002").update(city="Newer")
    sync_run_execute(reason="newer")
    old = list(
        agent_units(
            push_builders(),
            [agent_prepared(("a0000002",) + agents_rows_by_ids(["a0000002"])[0][1:], first.pk)],
        )
    )
    seeded.execute(old[0].statements)
    assert d1_agents(seeded)["a0000002"]["sync_run"] > first.pk

    # Re-created for real in PostgreSQL later: it does come back.
    SyncAgentFactory(id="a0000001", slug="back-again")
    assert sync_run_execute(reason="re-create").rows_upserted == 1
    assert d1_agents(seeded)["a0000001"]["slug"] == "back-again"


def test_rejected_row_is_isolated_reported_skipped_and_retried_later(seeded):
    """D1 answers 400 for one row (UNIQUE slug clash with a D1-only row): the rest lands."""
    agents_bulk(500)
    sync_run_execute(reason="first")
    seeded.query("INSERT INTO agents (id, slug, name, state) VALUES ('zz-stray', 'clash', 'Stray', 'CA')")
    Agent.objects.filter(id="a0000250").update(slug="clash")
    Agent.objects.exclude(id="a0000250").update(city="Bisected")
    run = sync_run_execute(reason="bisect")
    assert run.status == SyncRun.Status.PARTIAL
    assert [(f["table"], f["id"]) for f in run.failures] == [("agents", "a0000250")]
    assert "UNIQUE" in run.failures[0]["error"]
    landed = d1_agents(seeded)
    assert len(landed) == 501  # ours + the stray
    assert sum(r["city"] == "Bisected" for r in landed.values()) == 499
    assert landed["a0000250"]["slug"] != "clash"
    assert list(SyncChange.objects.values_list("row_id", flat=True)) == ["a0000250"]

    seeded.query("DELETE FROM agents WHERE id = 'zz-stray'")
    again = sync_run_execute(reason="retry")
    assert again.status == SyncRun.Status.COMPLETED
    assert again.rows_upserted == 1
    assert d1_agents(seeded)["a0000250"]["slug"] == "clash"
    assert d1_verify().clean


def test_value_too_large_for_a_literal_is_bound_and_limits_hold(seeded, settings):
    """A 150 KB bio cannot sit in a 100,000-byte statement: it travels as a bound parameter."""
    settings.SYNC_D1_STATEMENT_MAX_BYTES = 30_000
    agents_bulk(200)
    big = SyncAgentFactory(id="big", slug="big", bio="É'\n" * 50_000)
    run = sync_run_execute(reason="big")
    assert run.status == SyncRun.Status.COMPLETED, run.error
    assert run.max_statement_bytes <= 30_000
    assert d1_agents(seeded)["big"]["bio"] == big.bio
    assert d1_verify().clean


def test_dry_run_sends_nothing_and_keeps_the_position(seeded):
    agents_bulk(20)
    sync_run_execute(reason="first")
    Agent.objects.update(city="Dry")
    position = SyncState.objects.get().position_xmin
    run = sync_run_execute(dry_run=True, reason="dry")
    assert run.status == SyncRun.Status.DRY_RUN
    assert run.rows_upserted == 20 and run.statements >= 1
    assert SyncState.objects.get().position_xmin == position
    assert SyncChange.objects.count() == 20
    assert all(r["city"] != "Dry" for r in d1_agents(seeded).values())


def test_two_syncs_never_run_at_once(seeded):
    other = _pg_connect()
    try:
        other.autocommit = True
        other.execute("SELECT pg_advisory_lock(%s)", [SYNC_LOCK_KEY])
        run = sync_run_execute(reason="blocked")
        assert run.status == SyncRun.Status.SKIPPED
        assert d1_last_successful_sync_started_at() is None
    finally:
        # Unlock explicitly: a closed connection's backend may still hold the lock for a moment.
        other.execute("SELECT pg_advisory_unlock(%s)", [SYNC_LOCK_KEY])
        other.close()
    ok = sync_run_execute(reason="free")
    assert ok.status == SyncRun.Status.COMPLETED
    assert d1_last_successful_sync_started_at() == ok.started_at


def test_full_sync_rebuilds_d1_and_removes_rows_postgres_lacks_only_with_prune(seeded):
    agents_bulk(120)
    sync_run_execute(reason="first")
    seeded.query("DELETE FROM agents WHERE id < 'a0000010'")
    seeded.query("UPDATE agents SET name = 'tampered', sync_version = 1 WHERE id = 'a0000050'")
    seeded.query("INSERT INTO agents (id, slug, name, state) VALUES ('ghost-1', 'ghost-1', 'G', 'CA')")
    verify = d1_verify()
    assert not verify.clean
    assert verify.count_drift
    run = sync_run_execute(full=True, reason="full")
    assert run.status == SyncRun.Status.COMPLETED, run.error
    assert (run.rows_deleted, run.unknown_in_d1, run.bookmark) == (0, 1, "")
    assert "ghost-1" in d1_agents(seeded), "a full sync never deletes what PostgreSQL never had"
    assert not d1_verify().clean

    pruned = sync_run_execute(full=True, reason="prune", options=SyncOptions(prune=True))
    assert pruned.status == SyncRun.Status.COMPLETED, pruned.error
    assert pruned.rows_deleted == 1 and pruned.pruned
    assert pruned.bookmark and pruned.bookmark in pruned.restore_hint
    assert "time_travel/restore?bookmark=" in pruned.restore_hint
    assert_d1_equals_postgres(seeded)
    assert d1_verify().clean

    # The restore point holds what the prune deleted (the engine's stand-in for Time Travel).
    import httpx

    url = pruned.restore_hint.split()[1]
    assert httpx.post(url).status_code == 200
    assert "ghost-1" in d1_agents(seeded)


def test_verify_repair_repushes_only_drifted_ranges(seeded, settings):
    settings.SYNC_D1_VERIFY_RANGE_ROWS = 100
    agents_bulk(1000)
    sync_run_execute(reason="first")
    seeded.query("UPDATE agents SET bio = 'edited in D1 by hand', sync_version = 7 WHERE id = 'a0000123'")
    seeded.query("DELETE FROM agents WHERE id = 'a0000777'")
    seeded.query("UPDATE industry_config SET display_name = 'Oops' WHERE industry = 'legal'")
    verify = d1_verify()
    assert not verify.clean
    assert len(verify.drifted_ranges) == 2
    assert verify.industry_drift == [{"industry": "legal", "postgres": True, "d1": True}]
    repaired = d1_verify(repair=True)
    assert repaired.repaired and repaired.clean
    assert repaired.rows_repaired == 3
    repair = SyncRun.objects.get(kind=SyncRun.Kind.REPAIR)
    # the two drifted agents plus the six industries (re-pushed whole)
    assert repair.rows_upserted == 2 + 6
    # Totalled like a sync (sync.bookkeeping): statements, largest statement and target too.
    assert repair.status == SyncRun.Status.COMPLETED and repair.target and repair.finished_at
    assert repair.statements >= 2 and 0 < repair.max_statement_bytes <= 100_000
    assert_d1_equals_postgres(seeded)


def test_no_statement_sent_exceeds_d1_limits(seeded, d1_engine):
    """Every statement of a sync with ordinary and oversized rows: <= 100,000 bytes, <= 100 params."""
    from .conftest import rest_client

    sent = []

    class Spy(type(seeded)):
        def execute(self, statements, *, raw=False):
            statements = list(statements)
            sent.extend(statements)
            return super().execute(statements, raw=raw)

    agents_bulk(1500)
    SyncAgentFactory(id="huge-1", slug="huge-1", bio="ü" * 120_000, features={"notes": "x" * 90_000})
    spy = Spy(rest_client(d1_engine.api_base).transport)
    run = sync_run_execute(reason="limits", client=spy)
    assert run.status == SyncRun.Status.COMPLETED, run.error
    assert sent and max(len(s.sql.encode("utf-8")) for s in sent) <= 100_000
    assert max(len(s.params) for s in sent) <= 100
    assert any(s.params for s in sent), "the huge row travelled with bound parameters"
    assert d1_verify().clean
