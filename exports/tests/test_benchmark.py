"""The export benchmark at a tiny size: a real worker process, Redis, PostgreSQL."""

import pytest
from django.core.management import CommandError, call_command

from exports import benchmark, services


@pytest.mark.slow
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_benchmark_exports_every_format_on_a_worker_and_measures_the_baseline(
    private_redis, tmp_path, monkeypatch
):
    def not_here(*args, **kwargs):
        raise AssertionError("ran in the test process: the benchmark must use its worker processes")

    monkeypatch.setattr(services, "export_rows", not_here)
    messages = []
    report = benchmark.benchmark_export_run(
        rows=300,
        workers=1,
        chunk_size=100,
        baseline_rows=120,
        broker_url=private_redis.url,
        workdir=tmp_path,
        log=messages.append,
    )
    assert [r["format"] for r in report["results"]] == ["csv", "xlsx", "json"]
    for r in report["results"]:
        assert (r["rows"], r["exported_rows"], r["chunks"]) == (300, 300, 3)
        # A live prefork worker's peak RSS is always readable from /proc here: a missing figure is a bug.
        assert r["peak_worker_mb"] is not None and r["peak_worker_mb"] > 10
        assert r["baseline_rows"] == 120 and r["baseline_seconds"] > 0
        assert r["baseline_peak_mb"] is not None and r["baseline_peak_mb"] > 10  # its own process
        # Rounded to one decimal.
        assert r["speedup"] == pytest.approx(r["rows_per_second"] / r["baseline_rows_per_second"], abs=0.051)
    table = benchmark.report_table(report)
    assert "xlsx" in table and "load average" in table and "first 120 agents" in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rows", "0"], "--rows and --baseline-rows"),
        (["--workers", "0"], "--workers"),
        (["--chunk-size", "10"], "--chunk-size"),
        (["--database", "estateflow"], "contains 'bench'"),
    ],
)
def test_benchmark_command_refuses_bad_arguments(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("benchmark_export", *args)
