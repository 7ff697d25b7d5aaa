"""`benchmark_admin`: the agent admin at N rows on PostgreSQL, measured page by page.

It works in its own database (`estateflow_bench_admin` by default, created
and migrated here, never the developer's main database), fills it with N
generated agents (agents.generator, streamed through COPY; the same N and
seed give the same rows, and an already-filled database is reused), then
requests each changelist scenario through Django's test Client logged in
as a superuser and records the server time and the SQL queries of every
request (CaptureQueriesContext).

Baseline, in the same run: the stock Django admin (exact COUNT(*) of the
filtered and of the whole table on every page, OFFSET paging, Django's
default tie-breaker) over the same rows and the same indexes, mounted on a
second AdminSite. The ratio is what agents.changelist buys.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from types import ModuleType

from django.conf import settings
from django.contrib import admin
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import include, path
from django.utils import timezone

from .generator import AGENT_FILE_COLUMNS, DEFAULT_SEED, JSON_COLUMNS, agent_rows_generate
from .models import Agent
from .resources import BACK_OFFICE_ONLY_COLUMNS

BENCH_DATABASE = "estateflow_bench_admin"
GOAL_P95_MS = 150.0
GOAL_QUERIES = 8
BASELINE_PREFIX = "/bench-baseline/"


def _copy_tail_fields() -> tuple:
    """The columns COPY must fill beyond the generator's: those with a model default or NOT NULL.

    Django keeps defaults in Python, not in the table, so a column COPY leaves out is NULL.
    """
    return tuple(
        f
        for f in Agent._meta.concrete_fields
        if f.column not in AGENT_FILE_COLUMNS
        and f.column not in BACK_OFFICE_ONLY_COLUMNS
        and (f.has_default() or not f.null)
    )


def _copy_tail(fields: tuple, now: str) -> list:
    """One value per tail field: the model default, one load time for the timestamps."""
    tail = []
    for f in fields:
        if f.default is timezone.now:
            tail.append(now)
        elif f.get_internal_type() == "JSONField":
            tail.append(json.dumps(f.get_default()))
        else:
            tail.append(f.get_default() if f.has_default() else None)  # slug: set per row
    return tail


# --- the database ---------------------------------------------------------------------


def bench_database_prepare(*, name: str = BENCH_DATABASE) -> str:
    """Create `name` if needed, point the default connection at it, migrate it. Returns its name."""
    main = settings.DATABASES["default"]["NAME"]
    if name == main:
        raise RuntimeError(f"refusing to benchmark in the main database {main!r}")
    with connection._nodb_cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cur.fetchone() is None:
            cur.execute(f'CREATE DATABASE "{name}"')
    connections.close_all()
    # What Django's test runner does to switch to the test database.
    settings.DATABASES["default"]["NAME"] = name
    connection.settings_dict["NAME"] = name
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    return name


def bench_fill(*, rows: int, seed: int = DEFAULT_SEED, force: bool = False, progress=None) -> dict:
    """Make the bench database hold exactly the `rows` generated agents of `seed` (reused if it does)."""
    marker = f"benchmark_admin rows={rows} seed={seed}"
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM agents")
        existing = cur.fetchone()[0]
        cur.execute("SELECT obj_description('agents'::regclass, 'pg_class')")
        comment = cur.fetchone()[0]
    if not force and existing == rows and comment == marker:
        return {"rows": rows, "reused": True, "seconds": 0.0}

    started = time.perf_counter()
    tail_fields = _copy_tail_fields()
    columns = (*AGENT_FILE_COLUMNS, *(f.column for f in tail_fields))
    # The slug is the id: unique by construction.
    slug_at = [f.column for f in tail_fields].index("slug")
    copy_sql = f"COPY agents ({', '.join(columns)}) FROM STDIN"
    with connection.cursor() as cur:
        cur.execute("TRUNCATE agents, sync_change, import_journal")
        # Secondary indexes are rebuilt after the load (one sort each instead of N inserts;
        # the trigram GIN indexes especially); constraints' indexes stay.
        cur.execute(
            """SELECT i.indexname, i.indexdef FROM pg_indexes i
               WHERE i.schemaname = current_schema() AND i.tablename = 'agents'
                 AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"""
        )
        # Not inside a transaction (tests): deferred FK checks forbid index DDL there.
        indexes = [] if connection.in_atomic_block else cur.fetchall()
        for index_name, _ in indexes:
            cur.execute(f'DROP INDEX "{index_name}"')
        # The sync's change triggers would log every row: nothing to push from a scratch database.
        # (Not inside a transaction, as in tests: deferred FK checks forbid ALTER TABLE there.)
        toggle_triggers = not connection.in_atomic_block
        if toggle_triggers:
            cur.execute("ALTER TABLE agents DISABLE TRIGGER USER")
        try:
            now = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime())
            tail = _copy_tail(tail_fields, now)
            with cur.cursor.copy(copy_sql) as copy:
                for n, row in enumerate(agent_rows_generate(count=rows, seed=seed), 1):
                    values = row.values
                    out = [
                        json.dumps(values[c]) if c in JSON_COLUMNS else values[c] for c in AGENT_FILE_COLUMNS
                    ]
                    tail[slug_at] = values["id"]
                    out += tail
                    copy.write_row(out)
                    if progress and n % 100_000 == 0:
                        progress(f"  {n:,} rows copied ({time.perf_counter() - started:.0f} s)")
        finally:
            if toggle_triggers:
                cur.execute("ALTER TABLE agents ENABLE TRIGGER USER")
        copy_seconds = time.perf_counter() - started
        cur.execute("SET maintenance_work_mem = '512MB'")
        for index_name, definition in indexes:
            if progress:
                progress(f"  index {index_name}")
            cur.execute(definition)
        cur.execute(f"COMMENT ON TABLE agents IS '{marker}'")
    # Fresh statistics and visibility map: what autovacuum gives a live database.
    with connection.cursor() as cur:
        # VACUUM cannot run in a transaction (tests run inside one): ANALYZE there.
        cur.execute("ANALYZE agents" if connection.in_atomic_block else "VACUUM (ANALYZE) agents")
    return {
        "rows": rows,
        "reused": False,
        "seconds": round(time.perf_counter() - started, 1),
        "copy_seconds": round(copy_seconds, 1),
        "indexes_rebuilt": len(indexes),
        "rows_per_second": round(rows / copy_seconds) if copy_seconds else None,
    }


# --- the scenarios --------------------------------------------------------------------


@dataclass
class Scenario:
    key: str
    label: str
    query: str


def bench_scenarios(*, rows: int, per_page: int = 50) -> list[Scenario]:
    """The pages to measure; search terms are taken from the data so they match something."""
    with connection.cursor() as cur:
        cur.execute("SELECT name, license_number FROM agents ORDER BY id LIMIT 1 OFFSET %s", [rows // 3])
        name, licence = cur.fetchone()
        cur.execute(
            "SELECT industry, state FROM agents GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT 1 OFFSET 3"
        )
        industry, state = cur.fetchone()
    fragment = name.split(" ")[-1].split("-")[0][:5].lower()  # part of a last name
    deep = max(1, min(5000, rows // per_page // 2))
    return [
        Scenario("plain", "plain list", ""),
        Scenario("state", f"filter state={state}", f"state__exact={state}"),
        Scenario(
            "industry_state",
            f"filter industry={industry} + state={state}",
            f"industry__industry__exact={industry}&state__exact={state}",
        ),
        Scenario("search_name", f"search name fragment {fragment!r}", f"q={fragment}"),
        Scenario("search_licence", f"search licence {licence!r}", f"q={licence}"),
        Scenario("sort_name", "sort by name (?o=1)", "o=1"),
        Scenario("sort_name_desc", "sort by name descending (?o=-1)", "o=-1"),
        Scenario("deep_page", f"deep page ?p={deep}", f"p={deep}"),
    ]


def _baseline_urlconf():
    """The project's URLs plus the stock admin for agents under /bench-baseline/."""
    from estateflow import urls as project_urls

    from .admin import AgentAdmin

    site = admin.AdminSite(name="bench_baseline")

    class StockAgentAdmin(admin.ModelAdmin):
        list_display = AgentAdmin.list_display
        list_filter = AgentAdmin.list_filter
        search_fields = AgentAdmin.search_fields
        list_select_related = AgentAdmin.list_select_related
        list_per_page = AgentAdmin.list_per_page
        change_list_template = "admin/change_list.html"  # ours links to the project's import page

    site.register(Agent, StockAgentAdmin)
    # The industry filter links to IndustryConfig; register it so the stock page renders.
    from industries.models import IndustryConfig

    site.register(IndustryConfig)
    module = ModuleType("agents_benchmark_urls")
    module.urlpatterns = [
        path(BASELINE_PREFIX.strip("/") + "/", site.urls),
        path("", include(project_urls)),
    ]
    return module


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _measure(client: Client, url: str, repeat: int, warmup: int = 2) -> dict:
    for _ in range(warmup):
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
    times, queries = [], []
    sqls: list[str] = []
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            response = client.get(url)
            if hasattr(response, "render") and not response.is_rendered:
                response.render()
            elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
        times.append(elapsed)
        queries.append(len(ctx.captured_queries))
        sqls = [q["sql"] for q in ctx.captured_queries]
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(_percentile(times, 95), 1),
        "max_ms": round(max(times), 1),
        "queries": max(queries),
        "sql": sqls,
    }


def _plan_indexes(sql: str) -> list[str]:
    """The index names an agents query's plan uses (EXPLAIN, not executed)."""
    with connection.cursor() as cur:
        cur.execute("EXPLAIN (FORMAT JSON) " + sql)
        plan = cur.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    found: list[str] = []

    def walk(node: dict) -> None:
        name = node.get("Index Name")
        if name and name not in found:
            found.append(name)
        if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") == "agents":
            found.append("SEQ SCAN agents")
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return found


def benchmark_admin_run(
    *,
    rows: int,
    repeat: int = 20,
    baseline_repeat: int = 5,
    seed: int = DEFAULT_SEED,
    database: str = BENCH_DATABASE,
    refill: bool = False,
    baseline: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict:
    say = progress or (lambda _msg: None)
    say(f"database {database}: create / migrate")
    bench_database_prepare(name=database)
    say(f"filling {rows:,} agents (generator + COPY)")
    fill = bench_fill(rows=rows, seed=seed, force=refill, progress=say)
    say(f"fill: {fill}")
    report = benchmark_admin_measure(
        rows=rows, repeat=repeat, baseline_repeat=baseline_repeat, baseline=baseline, progress=say
    )
    return {"rows": rows, "seed": seed, "database": database, "fill": fill, **report}


def benchmark_admin_measure(
    *, rows: int, repeat: int, baseline_repeat: int = 5, baseline: bool = True, progress=None
) -> dict:
    """Measure every scenario against whatever database the default connection points at."""
    say = progress or (lambda _msg: None)
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    user, _ = user_model.objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    results = []
    hosts = [*settings.ALLOWED_HOSTS, "testserver"]
    with override_settings(ROOT_URLCONF=_baseline_urlconf(), DEBUG=False, ALLOWED_HOSTS=hosts):
        for scenario in bench_scenarios(rows=rows):
            say(f"measuring {scenario.label}")
            ours = _measure(client, f"/admin/agents/agent/?{scenario.query}", repeat)
            agent_sqls = [s for s in ours.pop("sql") if '"agents"' in s and s.lstrip().startswith("SELECT")]
            entry = {
                "scenario": scenario.key,
                "label": scenario.label,
                "url": f"/admin/agents/agent/?{scenario.query}",
                **ours,
                "indexes": sorted({i for s in agent_sqls for i in _plan_indexes(s)}),
                "meets_goal": ours["p95_ms"] <= GOAL_P95_MS and ours["queries"] <= GOAL_QUERIES,
            }
            if baseline:
                stock = _measure(
                    client, f"{BASELINE_PREFIX}agents/agent/?{scenario.query}", baseline_repeat, 1
                )
                stock.pop("sql")
                entry["baseline"] = stock
                entry["speedup_p50"] = round(stock["p50_ms"] / ours["p50_ms"], 1) if ours["p50_ms"] else None
            results.append(entry)
    with connection.cursor() as cur:
        cur.execute("SELECT version()")
        pg_version = cur.fetchone()[0].split(" on ")[0]
    return {
        "postgres": pg_version,
        "repeat": repeat,
        "baseline_repeat": baseline_repeat if baseline else 0,
        "goal": {"p95_ms": GOAL_P95_MS, "queries": GOAL_QUERIES},
        "all_meet_goal": all(r["meets_goal"] for r in results),
        "scenarios": results,
    }


def benchmark_report_text(report: dict) -> str:
    lines = [
        f"Agent admin at {report['rows']:,} rows ({report['postgres']}, database {report['database']}); "
        f"{report['repeat']} requests per page after 2 warm-ups, Django test Client as a superuser.",
        f"Fill: {report['fill']}",
        "",
        f"{'page':<44} {'p50 ms':>7} {'p95 ms':>7} {'SQL':>4}  "
        f"{'stock p50':>9} {'stock p95':>9} {'SQL':>4} {'x':>6}  goal",
    ]
    for r in report["scenarios"]:
        b = r.get("baseline") or {}
        lines.append(
            f"{r['label'][:44]:<44} {r['p50_ms']:>7} {r['p95_ms']:>7} {r['queries']:>4}  "
            f"{b.get('p50_ms', ''):>9} {b.get('p95_ms', ''):>9} {b.get('queries', ''):>4} "
            f"{r.get('speedup_p50') or '':>6}  {'ok' if r['meets_goal'] else 'MISSED'}"
        )
    lines.append("")
    for r in report["scenarios"]:
        lines.append(f"  {r['scenario']:<16} indexes: {', '.join(r['indexes']) or '-'}")
    lines.append("")
    lines.append(
        f"Goal p95 <= {report['goal']['p95_ms']:.0f} ms and <= {report['goal']['queries']} queries per page: "
        + ("met on every page." if report["all_meet_goal"] else "MISSED on some pages.")
    )
    lines.append("'stock' = Django's default admin changelist on the same rows and indexes (baseline).")
    return "\n".join(lines)


def benchmark_report_json(report: dict) -> str:
    return json.dumps(report, indent=2, default=lambda o: str(o) if isinstance(o, Decimal) else repr(o))
