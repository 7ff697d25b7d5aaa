"""The fault drill at a tiny size: real worker processes SIGKILLed, Redis, PostgreSQL.

DATABASE_URL=postgres://postgres@127.0.0.1:5432/estateflow_drill_t pytest imports/tests/test_drill.py
"""

import json
import os

import pytest

from estateflow.services_local import redis_url
from imports import benchmark, drill

# A Redis database of its own: the drill purges its queues (15 tests, 14 and 13 the benchmark).
# On the Redis server of this run (`make test` may have started an embedded one).
BROKER_URL = os.environ.get("DRILL_TEST_BROKER_URL") or redis_url(
    os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379"), 9
)


@pytest.mark.slow
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_drill_kills_workers_and_every_check_passes(tmp_path):
    try:
        benchmark.broker_check(BROKER_URL)
    except benchmark.BenchmarkError as exc:
        pytest.fail(str(exc))
    messages = []
    report = drill.drill_run(
        rows=3000, existing=1000, kills=2, workers=2, chunk_size=200, seed=7,
        broker_url=BROKER_URL, workdir=tmp_path, log=messages.append,
    )  # fmt: skip
    assert report.ok, drill.report_text(report) + "\n" + "\n".join(messages)
    assert report.meta["import_kills_done"] >= 1, "\n".join(messages)
    assert (report.counts["created"], report.counts["updated"], report.counts["unchanged"]) == (2000, 1000, 0)
    assert report.meta["checksum_after"] == report.meta["checksum_before"]
    assert report.meta["checksum_before"]["rows"] == 1000
    data = json.loads(drill.report_json(report))
    assert data["ok"] and all(c["result"] == "PASS" for c in data["checks"])
    assert "PASS" in drill.report_text(report)
