import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from agents.tests.factories import AgentFactory
from estateflow.admin_dashboard import agent_stats
from imports.models import ImportChunk, ImportJob
from sync.models import SyncRun, VerifyRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def data(db):
    for _ in range(3):
        AgentFactory(industry_id="legal", profession="attorney", state="NY", subscription_tier="premium")
    AgentFactory(industry_id="real_estate", state="CA")
    running = ImportJob.objects.create(file="imports/r.csv", original_name="running.csv", format="csv",
                                       status=ImportJob.Status.RUNNING, total_rows=200,
                                       started_at=timezone.now())  # fmt: skip
    ImportChunk.objects.create(job=running, index=0, first_row=0, row_count=50, first_line=2, byte_start=0,
                               byte_end=10, status="done", created_rows=50)  # fmt: skip
    ImportChunk.objects.create(job=running, index=1, first_row=50, row_count=150, first_line=52,
                               byte_start=10, byte_end=20)  # fmt: skip
    ImportJob.objects.create(file="imports/d.csv", original_name="done.csv", format="csv",
                             status=ImportJob.Status.COMPLETED)  # fmt: skip
    SyncRun.objects.create(started_at=timezone.now() - timezone.timedelta(minutes=30),
                           status=SyncRun.Status.COMPLETED)  # fmt: skip
    VerifyRun.objects.create(started_at=timezone.now(), clean=False)
    return running


def test_agent_stats_group_by_industry_state_tier(data):
    stats = agent_stats(use_cache=False)
    assert stats.total == 4
    industry = {b.key: b for b in stats.by_industry}
    assert industry["legal"].count == 3 and industry["legal"].label == "Legal Services"
    assert industry["legal"].width == 100.0 and industry["real_estate"].width == pytest.approx(33.3)
    assert industry["mortgage"].count == 0  # every industry appears
    assert [(b.key, b.count) for b in stats.by_state] == [("NY", 3), ("CA", 1)]
    assert {b.key: b.count for b in stats.by_tier}["premium"] == 3


def test_dashboard_on_admin_index(client, admin_user, data):
    client.force_login(admin_user)
    body = client.get(reverse("admin:index")).content.decode()
    assert 'id="ef-dashboard"' in body
    assert "Agents by industry — 4 in all" in body
    assert re.search(r"Legal Services</td>\s*<td[^>]*><svg[^>]*><rect[^>]*width=\"100.0%\"", body)
    assert "NY — New York" in body
    # The running import with its progress: 50 of 200 rows.
    assert "running.csv" in body and 'aria-valuenow="25.0"' in body
    assert "done.csv" in body
    assert re.search(r'id="ef-sync-lag">\s*30 min ago', body)
    assert '<span class="ef-ok">Completed</span>' in body  # the last run, marked as a good one
    assert "drift found" in body
    # Still the stock app list below (its module for the agents app, not just the word "Agents").
    assert 'class="app-agents module' in body


def test_dashboard_queries_are_few_and_cached(client, admin_user, data):
    client.force_login(admin_user)
    client.get(reverse("admin:index"))
    with CaptureQueriesContext(connection) as ctx:
        client.get(reverse("admin:index"))
    agent_queries = [q["sql"] for q in ctx.captured_queries if 'FROM "agents"' in q["sql"]]
    assert agent_queries == []  # cached for a minute
    assert len(ctx.captured_queries) <= 15


def test_dashboard_panels_follow_permissions(client, db, data):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    user = get_user_model().objects.create_user("imp-only", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_importjob"))
    client.force_login(user)
    body = client.get(reverse("admin:index")).content.decode()
    assert 'id="ef-imports"' in body
    assert 'id="ef-agents-by-industry"' not in body and 'id="ef-sync"' not in body
