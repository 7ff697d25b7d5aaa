"""`benchmark_sync`: full sync of N synthetic agents into a fresh local D1 engine, measured.

The baseline is the same run's pre-built request bodies pushed straight to
the same engine with a bare HTTP client at the same concurrency: the ratio
is what our pipeline (PostgreSQL snapshot read, rendering, retries,
bookkeeping) costs on top of the engine itself.

The synthetic rows live in PostgreSQL only for the duration of the run
(ids `bench-…`); the sync lock is held throughout so a real sync never
carries them to the production D1, and they and their change-log rows are
removed at the end.
"""

from __future__ import annotations

import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from django.db import connection

from .bookkeeping import push_concurrency
from .d1_client import D1Client, RestTransport, RetryPolicy, httpx_json
from .local_engine import LocalD1Engine
from .locks import sync_lock
from .services import d1_migrate, d1_verify, sync_run_execute
from .sqlite_sql import Statement

LEGACY_ROWS_PER_SECOND = 16  # DESIGN.md: the old scripts' measured rate
BENCH_PREFIX = "bench-"

_INSERT = """
INSERT INTO agents (id, slug, name, email, phone, license_number, state, city, brokerage, bio, status,
    ghost_profile, profile_views, fake_leads_count, source, created_at, updated_at, service_regions,
    service_zipcodes, service_radius_miles, primary_specialty, secondary_specialties, property_types,
    price_ranges, client_focus, language_capabilities, years_experience, transactions_ytd,
    total_volume_sold, subscription_tier, bio_tone, content_style, unique_value_props, features,
    industry, profession, specializations)
SELECT 'bench-' || lpad(g::text, 8, '0'), 'bench-' || g, 'Bench Agent ' || g || ' O''Neil',
    'bench' || g || '@example.com', '+1 555-' || lpad((g %% 10000)::text, 4, '0'), 'BN-' || g,
    (ARRAY['CA','NY','TX','FL','PR'])[1 + g %% 5], 'Ciudad ' || (g %% 500) || ' — Ñ',
    'Brokerage ' || (g %% 1000),
    repeat('Experienced professional serving the area; "client first". ', 3) || md5(g::text),
    'active', g %% 2 = 0, g %% 1000, 7, 'benchmark', now(), now(), '["north","south"]'::jsonb,
    jsonb_build_array(lpad((g %% 99999)::text, 5, '0')), 25, 'general', '[]', '["single_family","condo"]',
    '{"min":100000,"max":900000}', 'both', '["English","Spanish"]', g %% 40, g %% 30,
    (g %% 10000000)::numeric / 100, 'ghost', 'professional', 'informative', '[]', '{}',
    (ARRAY['real_estate','legal','insurance','mortgage','financial','contractor'])[1 + g %% 6], 'agent', '[]'
FROM generate_series(1, %s) AS g
"""


class RecordingClient(D1Client):
    """Writes each request body it sends to a file, for the baseline replay."""

    def __init__(self, transport, sink):
        super().__init__(transport)
        self.sink = sink
        self.raw_bodies = 0

    def execute(self, statements, *, raw: bool = False):
        statements = list(statements)
        result = super().execute(statements, raw=raw)
        if not raw and statements and statements[0].sql.startswith(("INSERT", "DELETE")):
            payload = (
                statements[0].payload()
                if len(statements) == 1
                else {"batch": [s.payload() for s in statements]}
            )
            self.sink.write(httpx_json(payload) + b"\n")
        return result


def benchmark_sync_run(*, rows: int) -> dict:
    report: dict = {"rows_requested": rows}
    with tempfile.TemporaryDirectory(prefix="d1-bench-") as tmp, sync_lock() as locked:
        if not locked:
            raise RuntimeError("a sync is running; try again once it has finished")
        engine = LocalD1Engine(persist_dir=str(Path(tmp) / "d1")).start()
        try:
            transport = engine_transport(engine)
            bodies_path = Path(tmp) / "bodies.jsonl"
            with open(bodies_path, "wb") as sink:
                client = RecordingClient(transport, sink)
                d1_migrate(client=client)
                client.stats.__init__()

                started = time.perf_counter()
                with connection.cursor() as cur:
                    cur.execute(_INSERT, [rows])
                report["postgres_insert_seconds"] = round(time.perf_counter() - started, 2)
                report["postgres_insert_note"] = (
                    "one INSERT ... SELECT, statement-level change triggers included"
                )

                run = sync_run_execute(
                    full=True, reason="benchmark_sync", client=client, record_position=False, lock_held=True
                )
                if run.error:
                    raise RuntimeError(f"benchmark sync failed: {run.error}")
            stats = client.stats.as_dict()
            report["sync"] = {
                "rows": run.rows_upserted,
                "seconds": run.duration_seconds,
                "rows_per_second": round(run.rows_upserted / run.duration_seconds),
                "concurrency": push_concurrency(),
                **stats,
            }

            started = time.perf_counter()
            verify = d1_verify(client=D1Client(transport))
            report["verify"] = {
                "clean": verify.clean,
                "seconds": round(time.perf_counter() - started, 2),
                "ranges": verify.ranges_checked,
            }

            # Baseline: the same bodies, straight to the same (emptied) engine.
            d1_agents_clear(D1Client(transport))
            report["baseline"] = bodies_replay(bodies_path, f"{transport.url}/query", push_concurrency())
            report["ratio_sync_time_to_baseline"] = round(
                report["sync"]["seconds"] / report["baseline"]["seconds"], 2
            )
            report["speedup_vs_legacy_16_rows_per_second"] = round(
                report["sync"]["rows_per_second"] / LEGACY_ROWS_PER_SECOND
            )
            transport.close()
        finally:
            engine.stop()
            _cleanup()
    return report


def engine_transport(engine: LocalD1Engine) -> RestTransport:
    """The benchmarks' transport to a local engine: long timeout and short retries, it has no other user."""
    return RestTransport(
        base_url=engine.api_base,
        account_id="bench",
        database_id="bench",
        timeout=120,
        retry=RetryPolicy(attempts=8, base=0.2, cap=5.0),
    )


def d1_agents_clear(client: D1Client) -> None:
    """Empty the engine's agents (and tombstones, which would block re-inserts) before a replay."""
    client.execute([Statement("DELETE FROM agents"), Statement("DELETE FROM sync_tombstones")])


def bodies_replay(path: Path, url: str, concurrency: int) -> dict:
    """POST the recorded request bodies straight to `url`, `concurrency` in flight: the pure-engine baseline."""
    http = httpx.Client(headers={"content-type": "application/json"}, timeout=120)
    requests = 0
    sent = 0

    def post(body: bytes) -> None:
        response = http.post(url, content=body)
        response.raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool, open(path, "rb") as bodies:
        futures = []
        for line in bodies:
            body = line.rstrip(b"\n")
            requests += 1
            sent += len(body)
            futures.append(pool.submit(post, body))
            if len(futures) >= concurrency * 4:
                futures.pop(0).result()
        for future in futures:
            future.result()
    seconds = time.perf_counter() - started
    http.close()
    return {"seconds": round(seconds, 2), "requests": requests, "bytes_sent": sent}


def _cleanup() -> None:
    with connection.cursor() as cur:
        cur.execute("DELETE FROM agents WHERE id LIKE %s", [BENCH_PREFIX + "%"])
        cur.execute(
            "DELETE FROM sync_change WHERE table_name = 'agents' AND row_id LIKE %s", [BENCH_PREFIX + "%"]
        )


def benchmark_report_text(report: dict) -> str:
    s, b = report["sync"], report["baseline"]
    return "\n".join(
        [
            f"rows: {s['rows']} (PostgreSQL insert of the synthetic rows: {report['postgres_insert_seconds']} s)",
            f"sync: {s['seconds']} s, {s['rows_per_second']} rows/s, {s['requests']} requests, "
            f"{s['bytes_sent']} bytes, {s['statements']} statements "
            f"(max {s['max_statement_bytes']} B, median {s['median_statement_bytes']} B, "
            f"max params {s['max_params']}), {s['retries']} retries, concurrency {s['concurrency']}",
            f"baseline (same bodies straight to the same engine): {b['seconds']} s, {b['requests']} requests",
            f"ratio sync/baseline time: {report['ratio_sync_time_to_baseline']}x; "
            f"vs the legacy 16 rows/s: {report['speedup_vs_legacy_16_rows_per_second']}x faster",
            f"d1_verify: {'clean' if report['verify']['clean'] else 'DRIFT'} "
            f"({report['verify']['ranges']} ranges, {report['verify']['seconds']} s)",
        ]
    )


def benchmark_report_json(report: dict) -> str:
    return json.dumps(report, indent=2)
