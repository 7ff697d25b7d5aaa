"""The benchmark end to end at a tiny size: real worker process, Redis, PostgreSQL.

Run it on a database of your own, e.g.
DATABASE_URL=postgres://postgres@127.0.0.1:5432/estateflow_bench_t pytest imports/tests/test_benchmark.py
"""

import csv
import json
import os

import pytest

from estateflow.services_local import redis_url
from imports import benchmark, services

# A Redis database of its own: the benchmark purges its queues, and other test runs use db 15.
# On the Redis server of this run (`make test` may have started an embedded one).
BROKER_URL = os.environ.get("BENCHMARK_TEST_BROKER_URL") or redis_url(
    os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379"), 13
)
ROWS = 150  # two chunks of 100


@pytest.fixture
def broker():
    try:
        benchmark.broker_check(BROKER_URL)
    except benchmark.BenchmarkError as exc:
        pytest.fail(str(exc))
    return BROKER_URL


@pytest.mark.slow
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_benchmark_runs_every_pass_through_a_real_worker(broker, tmp_path, monkeypatch):
    def not_here(**kwargs):
        raise AssertionError("ran in the test process: the benchmark must use its worker processes")

    monkeypatch.setattr(services, "import_job_plan", not_here)
    # The chunk step itself, wherever the engine calls it from.
    monkeypatch.setattr("imports.lifecycle.import_chunk_write", lambda job, chunk: not_here())
    messages = []
    report = benchmark.benchmark_run(
        sizes=[ROWS], workers=1, chunk_size=100, broker_url=broker, workdir=tmp_path, log=messages.append
    )

    assert [(r.rows, r.phase) for r in report.results] == [(ROWS, p) for p in benchmark.PASSES]
    insert, update, unchanged, nightly = report.results
    for r in report.results:
        assert r.status == "completed"
        assert r.failed == 0
        assert r.chunks == 2
        assert r.pipeline_seconds > 0 and r.baseline_seconds > 0
        assert r.ratio == pytest.approx(r.pipeline_seconds / r.baseline_seconds)
        # A live prefork worker's peak RSS is always readable from /proc here: a missing figure is a bug.
        assert r.peak_worker_mb is not None and r.peak_worker_mb > 10
        assert r.counts_ok
    assert (insert.created, insert.updated, insert.unchanged) == (ROWS, 0, 0)
    assert (update.created, update.updated, update.unchanged) == (0, ROWS, 0)
    assert (unchanged.created, unchanged.updated, unchanged.unchanged) == (0, 0, ROWS)
    # Every 100th row of 150 changed: rows 0 and 100.
    assert (nightly.created, nightly.updated, nightly.unchanged) == (0, 2, ROWS - 2)
    assert nightly.expected == {"created": 0, "updated": 2, "unchanged": ROWS - 2}
    # The baseline wrote every row on insert and update, none when nothing changed.
    assert [r.baseline_written for r in report.results] == [ROWS, ROWS, 0, 2]
    assert report.ok
    assert report.meta["workers"] == 1 and report.meta["chunk_size"] == 100

    data = json.loads(benchmark.report_json(report))
    assert [row["pass"] for row in data["results"]] == list(benchmark.PASSES)
    assert {
        "rows", "pipeline_seconds", "pipeline_rows_per_second", "baseline_seconds",
        "baseline_rows_per_second", "ratio", "peak_worker_mb", "created", "updated", "unchanged",
    } <= set(data["results"][0])  # fmt: skip
    table = benchmark.report_table(report)
    assert "ratio" in table and "unchanged" in table and "1% changed" in table
    assert any("starting 1 celery worker" in m.lower() for m in messages)


def test_update_file_changes_every_row_and_keeps_ids(tmp_path):
    insert_path, update_path = benchmark.benchmark_files_write(20, tmp_path)
    with insert_path.open(newline="") as a, update_path.open(newline="") as b:
        old, new = list(csv.DictReader(a)), list(csv.DictReader(b))
    assert [r["id"] for r in old] == [r["id"] for r in new]
    for before, after in zip(old, new, strict=True):
        for column in benchmark.UPDATED_COLUMNS:
            assert int(after[column]) == int(before[column]) + 1
        assert {k: v for k, v in before.items() if k not in benchmark.UPDATED_COLUMNS} == {
            k: v for k, v in after.items() if k not in benchmark.UPDATED_COLUMNS
        }


def test_nightly_file_changes_every_hundredth_row_in_one_column(tmp_path):
    _, update_path = benchmark.benchmark_files_write(250, tmp_path)
    nightly_path = tmp_path / "nightly.csv"
    assert benchmark.changed_file_write(update_path, nightly_path, every=benchmark.NIGHTLY_EVERY) == 3
    with update_path.open(newline="") as a, nightly_path.open(newline="") as b:
        old, new = list(csv.DictReader(a)), list(csv.DictReader(b))
    differing = [i for i, (before, after) in enumerate(zip(old, new, strict=True)) if before != after]
    assert differing == [0, 100, 200]
    for i in differing:
        assert int(new[i]["years_experience"]) == int(old[i]["years_experience"]) + 1
        assert {k: v for k, v in old[i].items() if k != "years_experience"} == {
            k: v for k, v in new[i].items() if k != "years_experience"
        }


def test_a_wrong_count_is_reported():
    result = benchmark.PassResult(
        rows=300, phase="1% changed", status="completed", pipeline_seconds=2.0, pipeline_wall_seconds=2.1,
        baseline_seconds=1.0, baseline_written=3, created=0, updated=300, unchanged=0, failed=0, chunks=1,
        peak_worker_mb=100.0, expected={"created": 0, "updated": 3, "unchanged": 297},
    )  # fmt: skip
    assert not result.counts_ok
    report = benchmark.BenchmarkReport(results=[result], meta={
        "cpu_count": 2, "platform": "test", "postgresql": "PostgreSQL 15", "load_average": [0.1, 0.2],
        "workers": 1, "worker_command": "celery", "chunk_size": 5000, "broker": "redis://", "database": "bench",
    })  # fmt: skip
    assert not report.ok
    assert "WRONG (completed: 0/300/0/0)" in benchmark.report_table(report)


def test_refuses_a_database_that_is_not_disposable(monkeypatch):
    from django.db import connection

    monkeypatch.setitem(connection.settings_dict, "NAME", "estateflow")
    with pytest.raises(benchmark.BenchmarkError, match="Refusing"):
        benchmark.database_assert_disposable()
