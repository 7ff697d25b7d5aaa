"""The agent changelist at scale: trigram indexes, estimated counts, index-friendly ordering, no N+1."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.benchmark import GOAL_QUERIES, bench_fill, benchmark_admin_measure
from agents.changelist import EstimatedCountPaginator
from agents.models import Agent

from .factories import AgentFactory

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/agents/agent/"
TRIGRAM_FIELDS = ("name", "email", "license_number", "brokerage", "city")


def _indexes() -> dict[str, str]:
    with connection.cursor() as cur:
        cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'agents'")
        return dict(cur.fetchall())


def test_migration_made_trigram_and_name_indexes():
    indexes = _indexes()
    for field in TRIGRAM_FIELDS:
        definition = indexes[f"idx_agents_trgm_{field}"]
        assert (
            "USING gin" in definition
            and "gin_trgm_ops" in definition
            and f"upper(({field})::text)" in definition
        )
    assert "(name, id)" in indexes["idx_agents_name_id"]


def _plan(sql: str, params) -> str:
    with connection.cursor() as cur:
        # A test table is tiny: forbid the sequential scan to see whether the indexes *can* serve it.
        cur.execute("SET LOCAL enable_seqscan = off")
        cur.execute("SET LOCAL enable_indexscan = off")
        cur.execute("EXPLAIN " + sql, params)
        return "\n".join(r[0] for r in cur.fetchall())


def test_admin_search_compiles_to_the_indexed_expressions(admin_client):
    AgentFactory(name="Alice Alpha")
    qs = admin_client.get(f"{CHANGELIST}?q=lph").context["cl"].queryset
    sql, params = qs.order_by().query.sql_with_params()
    # The trigram indexes are on UPPER(col::text): the admin's icontains must compile to exactly that.
    for field in TRIGRAM_FIELDS:
        assert f'UPPER("agents"."{field}"::text) LIKE UPPER(%s)' in sql, sql
    # ... and PostgreSQL can answer it from the indexes (a BitmapOr); on a test-sized table the
    # planner may pick another index for one branch, so the name index stands for them all.
    plan = _plan(sql, params)
    assert "BitmapOr" in plan and "idx_agents_trgm_name" in plan, plan


def test_sort_by_name_orders_both_keys_the_same_way(admin_client):
    AgentFactory.create_batch(3)
    for order in ("1", "-1"):
        cl = admin_client.get(f"{CHANGELIST}?o={order}").context["cl"]
        sql = str(cl.result_list.query)
        direction = "DESC" if order == "-1" else "ASC"
        # Django alone would give `name ASC, id DESC` for ?o=1, which no b-tree can serve.
        assert f'ORDER BY "agents"."name" {direction}, "agents"."id" {direction}' in sql, sql


def test_unfiltered_count_is_the_planner_estimate(admin_client, monkeypatch):
    AgentFactory.create_batch(12)
    with connection.cursor() as cur:
        cur.execute("ANALYZE agents")
    monkeypatch.setattr(EstimatedCountPaginator, "estimate_above", 10)
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(CHANGELIST)
    sqls = [q["sql"] for q in ctx.captured_queries]
    assert not [s for s in sqls if "COUNT(" in s.upper() and '"agents"' in s], sqls
    assert any("reltuples" in s for s in sqls)
    assert response.context["cl"].result_count == 12  # ANALYZE of a tiny table is exact


def test_filtered_count_is_exact_and_capped(admin_client, monkeypatch):
    AgentFactory.create_batch(7, state="NY")
    AgentFactory.create_batch(2, state="TX")
    monkeypatch.setattr(EstimatedCountPaginator, "estimate_above", 1)
    assert admin_client.get(f"{CHANGELIST}?state__exact=TX").context["cl"].result_count == 2
    monkeypatch.setattr(EstimatedCountPaginator, "count_cap", 5)
    assert admin_client.get(f"{CHANGELIST}?state__exact=NY").context["cl"].result_count == 5


def test_deep_pages_read_ids_first_and_match_offset_paging(admin_client, monkeypatch):
    AgentFactory.create_batch(25)
    expected = list(Agent.objects.order_by("name", "id").values_list("name", flat=True)[20:25])
    monkeypatch.setattr("agents.admin.AgentAdmin.list_per_page", 5)
    monkeypatch.setattr(EstimatedCountPaginator, "deferred_join_offset", 10)
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(f"{CHANGELIST}?p=5")
    names = [a.name for a in response.context["cl"].result_list]
    assert names == expected
    sqls = [q["sql"] for q in ctx.captured_queries]
    assert any(
        s.startswith('SELECT "agents"."id" AS "pk" FROM "agents"') and "OFFSET 20" in s for s in sqls
    ), sqls


@pytest.mark.parametrize(
    "query", ["", "q=agent", "state__exact=CA", "industry__industry__exact=legal&state__exact=CA", "o=1"]
)
def test_query_count_is_small_and_does_not_grow_with_rows(admin_client, query):
    AgentFactory.create_batch(3, industry_id="legal", profession="attorney")

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(f"{CHANGELIST}?{query}").status_code == 200
        return len(ctx.captured_queries)

    few = count()
    AgentFactory.create_batch(40, industry_id="legal", profession="attorney")
    assert count() == few <= GOAL_QUERIES


def test_action_checkbox_markup_matches_django(admin_client):
    agent = AgentFactory(name="Box <Agent>")
    body = admin_client.get(CHANGELIST).content.decode()
    assert (
        f'<input type="checkbox" name="_selected_action" value="{agent.pk}" class="action-select" '
        'aria-label="Select this object for an action - Box &lt;Agent&gt; (CA)">'
    ) in body


@pytest.mark.slow
def test_benchmark_fill_and_measure_small(admin_user):
    fill = bench_fill(rows=300, seed=3)
    assert fill["rows"] == 300 and Agent.objects.count() == 300
    assert bench_fill(rows=300, seed=3)["reused"] is True
    report = benchmark_admin_measure(rows=300, repeat=2, baseline_repeat=1)
    keys = [r["scenario"] for r in report["scenarios"]]
    assert keys == ["plain", "state", "industry_state", "search_name", "search_licence", "sort_name",
                    "sort_name_desc", "deep_page"]  # fmt: skip
    for r in report["scenarios"]:
        assert r["queries"] <= GOAL_QUERIES and r["p50_ms"] > 0 and r["baseline"]["p50_ms"] > 0
    search = next(r for r in report["scenarios"] if r["scenario"] == "search_licence")
    assert search["url"].startswith(CHANGELIST + "?q=")
