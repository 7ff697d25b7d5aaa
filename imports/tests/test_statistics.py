"""The planner's statistics follow a large import (PostgreSQL's ANALYZE), run after a chunk, not inside it."""

import pytest
from django.db import connection

from agents.benchmark import bench_fill
from imports.lifecycle import agents_statistics_refresh

pytestmark = pytest.mark.django_db(transaction=True)


def _planner_rows() -> float:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")  # this backend's counts, visible at once
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'agents'::regclass")
        return cursor.fetchone()[0]


def test_agents_are_analyzed_once_the_rows_changed_outgrow_the_statistics():
    bench_fill(rows=30_000, seed=3, force=True)  # loaded, indexed: the planner knows 30,000 rows
    assert _planner_rows() == 30_000
    assert agents_statistics_refresh() is False  # nothing changed since

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM agents WHERE id IN (SELECT id FROM agents ORDER BY id LIMIT 20000)")
    _planner_rows()
    assert agents_statistics_refresh() is True
    assert _planner_rows() == pytest.approx(10_000, rel=0.1)
    assert agents_statistics_refresh() is False  # up to date again
