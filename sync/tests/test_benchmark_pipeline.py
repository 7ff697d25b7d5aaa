"""`benchmark_pipeline` end to end at 2,000 rows: real worker processes, Redis, PostgreSQL, the local D1 engine.

The command recreates its own database on the server of DATABASE_URL and runs
itself in a child process pointed at it, as an operator's run does.
"""

import json
import os
from io import StringIO

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command

from estateflow.services_local import redis_url
from imports.benchmark_workers import _psycopg_params
from imports.drill_report import Check
from sync import benchmark_pipeline
from sync.benchmark_pipeline_report import LIVE_ROWS_PER_SECOND, PipelineReport, Stage, report_text
from sync.management.commands.benchmark_pipeline import Command

# A Redis database of its own: the run purges its queues (15 tests, 14 and 13 the import benchmark, 9 the drill).
BROKER_URL = os.environ.get("PIPELINE_TEST_BROKER_URL") or redis_url(
    os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379"), 7
)
DATABASE = "estateflow_bench_pipeline_test"
ROWS = 2000
STAGES = ["import", "sync", "verify"]


@pytest.fixture
def pipeline_database():
    yield DATABASE
    params = _psycopg_params({**settings.DATABASES["default"], "NAME": "postgres"})
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


@pytest.mark.slow
@pytest.mark.worker
def test_file_to_verified_d1_then_the_nightly_change(pipeline_database):
    out = StringIO()
    call_command(
        "benchmark_pipeline", "--rows", str(ROWS), "--chunk-size", "500", "--json",
        "--broker-url", BROKER_URL, "--database", pipeline_database, stdout=out, stderr=StringIO(),
    )  # fmt: skip
    data = json.loads(out.getvalue())

    assert data["ok"], json.dumps(data["checks"], indent=2)
    assert len(data["checks"]) == 8 and all(c["result"] == "PASS" for c in data["checks"])
    assert (data["rows"], data["changed"]) == (ROWS, ROWS // benchmark_pipeline.NIGHTLY_EVERY)
    stages = {(s["phase"], s["name"]): s for s in data["stages"]}
    assert list(stages) == [(p, name) for p in ("first_load", "nightly") for name in STAGES]
    # Correctness facts behind the checks: every row created, then exactly 1% updated and pushed.
    assert stages["first_load", "import"]["detail"].startswith(
        f"{ROWS:,} created, 0 updated, 0 unchanged, 0 failed"
    )
    assert stages["nightly", "import"]["detail"].startswith(f"0 created, {data['changed']} updated, "
                                                            f"{ROWS - data['changed']:,} unchanged, 0 failed")  # fmt: skip
    assert stages["first_load", "sync"]["detail"].startswith("full, completed")
    assert stages["nightly", "sync"]["detail"].startswith(
        f"incremental, completed: {data['changed']} upserted"
    )
    assert stages["nightly", "sync"]["rows"] == data["changed"]
    for phase in ("first_load", "nightly"):
        assert stages[phase, "verify"]["rows"] == ROWS and stages[phase, "verify"]["detail"].startswith(
            "clean"
        )
        sync = stages[phase, "sync"]
        assert sync["requests"] > 0 and sync["bytes_per_row"] == pytest.approx(
            sync["bytes_sent"] / sync["rows"], 0.01
        )
        total = data["totals"][phase]
        assert total["stages"] == STAGES
        assert total["seconds"] == pytest.approx(sum(stages[phase, s]["seconds"] for s in STAGES), abs=0.05)
        assert total["ratio_to_live"] == pytest.approx(
            ROWS / total["seconds"] / LIVE_ROWS_PER_SECOND, rel=0.02
        )
        replay = data["replay"][phase]
        assert replay["requests"] > 0 and replay["sync_seconds"] > 0 and replay["ratio"] > 0
    assert data["replay"]["first_load"]["bytes_sent"] > data["replay"]["nightly"]["bytes_sent"]
    meta = data["meta"]
    assert meta["cpu_count"] >= 1 and len(meta["load_average_before"]) == len(meta["load_average_after"]) == 3
    assert meta["peak_worker_mb"] > 10 and meta["database"] == pipeline_database


def _report(*, verify_clean: bool) -> PipelineReport:
    return PipelineReport(
        rows=1000,
        changed=10,
        stages=[Stage("first_load", "import", 2.0, 1000), Stage("first_load", "sync", 1.0, 1006, 3, 700_000)],
        checks=[
            Check("first load: import 1,000 created", True),
            Check("first load: d1_verify clean", verify_clean),
        ],
        meta={"cpu_count": 2, "workers": 1, "chunk_size": 500},
    )


def test_the_report_text_shows_totals_and_failed_checks():
    text = report_text(_report(verify_clean=False))
    assert "first load   total" in text and "333" in text  # 1,000 rows in 3 s
    assert "FAIL  first load: d1_verify clean" in text and "SOME CHECKS FAILED" in text
    assert "ALL CHECKS PASS" in report_text(_report(verify_clean=True))


@pytest.mark.parametrize("clean, exit_code", [(True, None), (False, 1)])
def test_the_command_exits_1_when_a_check_fails(monkeypatch, clean, exit_code):
    monkeypatch.setattr(Command, "_child_prepare", lambda self, options: None)
    monkeypatch.setattr(
        benchmark_pipeline, "benchmark_pipeline_run", lambda **kw: _report(verify_clean=clean)
    )
    command = Command(stdout=StringIO(), stderr=StringIO())
    options = {"rows": 1000, "workers": 1, "chunk_size": 500, "broker_url": BROKER_URL, "json": True}
    if exit_code is None:
        command._pipeline(options)
    else:
        with pytest.raises(SystemExit) as exc:
            command._pipeline(options)
        assert exc.value.code == exit_code
