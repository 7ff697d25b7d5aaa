"""Issue 12: a row the sync cannot render is quarantined (reported, skipped, kept pending); the sync goes on."""

import datetime as dt

import pytest
from django.db import connection

from agents.models import Agent
from sync.models import SyncChange, SyncRun
from sync.push import Pusher, row_preparer
from sync.selectors import agents_rows_by_ids
from sync.services import sync_run_execute

from .factories import agents_bulk, industries_ensure

pytestmark = pytest.mark.django_db(transaction=True)

# PostgreSQL's jsonb stores this number exactly; Python's json reads it back as inf,
# which no JSON encoder can write: before issue 12 it stopped every sync for good.
OVERFLOWING = "1" + "0" * 400 + ".5"


@pytest.fixture
def seeded(d1):
    industries_ensure()
    return d1


def d1_ids(client) -> set[str]:
    return {r["id"] for r in client.query("SELECT id FROM agents")}


def test_a_json_value_d1_cannot_take_is_quarantined_and_the_sync_goes_on(seeded):
    agents_bulk(20)
    assert sync_run_execute(reason="first").status == SyncRun.Status.COMPLETED
    with connection.cursor() as cursor:  # what an import before the fix let through
        cursor.execute(
            "UPDATE agents SET service_regions = %s::jsonb WHERE id = %s", [f"[{OVERFLOWING}]", "a0000007"]
        )
    Agent.objects.exclude(id="a0000007").update(city="Moved")

    run = sync_run_execute(reason="poisoned row")
    assert run.status == SyncRun.Status.PARTIAL, run.error
    assert [(f["table"], f["id"]) for f in run.failures] == [("agents", "a0000007")]
    assert "cannot be written to D1" in run.failures[0]["error"]
    assert run.rows_upserted == 19
    cities = {r["id"]: r["city"] for r in seeded.query("SELECT id, city FROM agents")}
    assert sum(city == "Moved" for city in cities.values()) == 19 and cities["a0000007"] != "Moved"
    assert list(SyncChange.objects.values_list("row_id", flat=True)) == ["a0000007"]  # kept pending

    # Not stuck: reported again (failed, as nothing else was left to land) until the row is fixed.
    again = sync_run_execute(reason="still poisoned")
    assert again.status in {SyncRun.Status.FAILED, SyncRun.Status.PARTIAL}
    assert [f["id"] for f in again.failures] == ["a0000007"]
    Agent.objects.filter(id="a0000007").update(service_regions=["fixed"])
    fixed = sync_run_execute(reason="fixed")
    assert fixed.status == SyncRun.Status.COMPLETED, fixed.failures
    assert d1_ids(seeded) >= {"a0000007"} and not SyncChange.objects.exists()


def test_a_value_over_d1s_limit_is_quarantined_not_fatal(seeded):
    agents_bulk(10)
    Agent.objects.filter(id="a0000003").update(bio="x" * 2_100_000)  # D1 refuses values over 2 MB
    run = sync_run_execute(reason="huge bio")
    assert run.status == SyncRun.Status.PARTIAL, run.error
    assert [f["id"] for f in run.failures] == ["a0000003"] and "2 MB" in run.failures[0]["error"]
    assert d1_ids(seeded) == {f"a{i:07d}" for i in range(10)} - {"a0000003"}


class _ExplodingDate(dt.date):
    """A value whose rendering fails in a way nobody foresaw (not UnencodableValue)."""

    def isoformat(self):
        raise RuntimeError("renderer bug")


def test_any_exception_rendering_one_row_quarantines_that_row(seeded):
    agents_bulk(2)
    good, other = agents_rows_by_ids(["a0000000", "a0000001"])
    bad = (other[0], _ExplodingDate(2024, 1, 1), *other[2:])
    pusher = Pusher(client=seeded)
    try:
        prepared = list(row_preparer(pusher, run_id=1).agents([good, bad]))
    finally:
        pusher.close()
    assert [row.key for row in prepared] == ["a0000000"]
    assert pusher.result.failures == [
        {"table": "agents", "id": "a0000001", "error": "cannot be written to D1 (RuntimeError: renderer bug)"}
    ]
