"""A capped or estimated count says so, and "select all" never acts on more rows than the user confirmed."""

import pytest
from django.db import connection

from agents.changelist import SELECT_ACROSS_CONFIRM, EstimatedCountPaginator
from agents.models import Agent

from .factories import AgentFactory

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/agents/agent/"
NY = f"{CHANGELIST}?state__exact=NY"


@pytest.fixture
def capped(monkeypatch):
    """Cap exact counts at 5 and keep estimates out of the way; 8 agents in NY, 2 elsewhere."""
    monkeypatch.setattr(EstimatedCountPaginator, "count_cap", 5)
    monkeypatch.setattr(EstimatedCountPaginator, "estimate_above", 10**9)
    monkeypatch.setattr("agents.admin.AgentAdmin.list_per_page", 3)
    AgentFactory.create_batch(8, state="NY")
    AgentFactory.create_batch(2, state="TX")


def _select_all_delete(client, url: str, **extra):
    page_ids = [a.pk for a in client.get(url).context["cl"].result_list]
    data = {
        "action": "delete_selected",
        "index": 0,
        "select_across": "1",
        "_selected_action": page_ids,
        **extra,
    }
    return client.post(url, data)


def test_a_capped_count_reads_as_a_lower_bound(admin_client, capped):
    body = admin_client.get(NY).content.decode()
    assert "5+ agents" in body and "Select all 5+ agents" in body and "All 5+ selected" in body
    assert "Select all 5 agents" not in body
    # Under the cap the count is exact and printed as is.
    body = admin_client.get(f"{CHANGELIST}?state__exact=TX").content.decode()
    assert "2 agents" in body and "+ agents" not in body


def test_select_all_on_a_capped_list_asks_to_confirm_the_exact_count(admin_client, capped):
    response = _select_all_delete(admin_client, NY)
    assert response.status_code == 200
    assert response.templates[0].name == "admin/large_table_select_across.html"
    body = response.content.decode()
    assert 'id="select-across-total">8<' in body and "Delete selected agents" in body
    assert Agent.objects.count() == 10

    # A stale confirmation (the count moved) asks again.
    AgentFactory(state="NY")
    again = _select_all_delete(admin_client, NY, **{SELECT_ACROSS_CONFIRM: "8"})
    assert 'id="select-across-total">9<' in again.content.decode()

    # Confirmed: Django's own delete confirmation, for exactly the 9 NY agents, then the delete.
    confirm = _select_all_delete(admin_client, NY, **{SELECT_ACROSS_CONFIRM: "9"})
    assert confirm.templates[0].name == "admin/delete_selected_confirmation.html"
    targets = [o.pk for o in confirm.context["queryset"]]
    assert len(targets) == 9
    done = admin_client.post(
        NY, {"action": "delete_selected", "post": "yes", "_selected_action": targets}, follow=True
    )
    assert done.status_code == 200
    assert list(Agent.objects.values_list("state", flat=True)) == ["TX", "TX"]


def test_an_estimated_count_is_marked_and_select_all_confirms_too(admin_client, monkeypatch):
    AgentFactory.create_batch(12)
    with connection.cursor() as cur:
        cur.execute("ANALYZE agents")
    monkeypatch.setattr(EstimatedCountPaginator, "estimate_above", 10)
    monkeypatch.setattr("agents.admin.AgentAdmin.list_per_page", 5)
    assert "~12 agents" in admin_client.get(CHANGELIST).content.decode()
    response = _select_all_delete(admin_client, CHANGELIST)
    assert response.templates[0].name == "admin/large_table_select_across.html"
    assert Agent.objects.count() == 12


def test_exact_counts_keep_the_stock_select_all(admin_client, capped):
    """Under the cap nothing changes: select all goes straight to Django's confirmation."""
    response = _select_all_delete(admin_client, f"{CHANGELIST}?state__exact=TX")
    assert response.templates[0].name == "admin/delete_selected_confirmation.html"
