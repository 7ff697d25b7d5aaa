import json

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent
from agents.models import Agent
from agents.tests.factories import AgentFactory
from imports.models import ImportJob, ImportJournalEntry
from industries.models import IndustryConfig
from sync.models import SyncRun

pytestmark = pytest.mark.django_db


def _form_data(client, url) -> dict:
    """The change form's current values, as the browser would post them back."""
    response = client.get(url)
    assert response.status_code == 200
    form = response.context["adminform"].form
    data = {}
    for name, value in form.initial.items():
        if value is None or name == "photo" or name not in form.fields:
            continue
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif isinstance(value, (dict, list)):
            data[name] = json.dumps(value)
        else:
            data[name] = value
    return data


def test_admin_edit_writes_a_per_field_diff(client, role_user):
    # bio set: the admin form writes "" for an empty TextField, a real (audited) NULL -> "" change.
    agent = AgentFactory(name="Before Name", city="Fresno", email="old@corp.example", bio="A bio")
    editor = role_user("Editor")
    client.force_login(editor)
    url = reverse("admin:agents_agent_change", args=[agent.pk])
    data = _form_data(client, url)
    data.update(name="After Name", city="Oakland")
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    event = AuditEvent.objects.get(object_type="agents.agent", object_id=agent.pk)
    assert event.action == "update"
    assert event.actor_id == editor.pk and event.actor_name == editor.username
    assert event.changes == {"name": ["Before Name", "After Name"], "city": ["Fresno", "Oakland"]}


def test_saving_without_changes_writes_nothing(client, role_user):
    agent = AgentFactory(bio="A bio")
    client.force_login(role_user("Editor"))
    url = reverse("admin:agents_agent_change", args=[agent.pk])
    assert client.post(url, _form_data(client, url)).status_code == 302
    assert not AuditEvent.objects.filter(object_id=agent.pk).exists()


def test_admin_delete_and_bulk_delete_are_audited(client, role_user):
    one, two, three = AgentFactory(name="One"), AgentFactory(name="Two"), AgentFactory(name="Three")
    client.force_login(role_user("Editor"))
    assert (
        client.post(reverse("admin:agents_agent_delete", args=[one.pk]), {"post": "yes"}).status_code == 302
    )
    client.post(
        reverse("admin:agents_agent_changelist"),
        {"action": "delete_selected", "_selected_action": [two.pk, three.pk], "post": "yes"},
    )
    assert not Agent.objects.filter(pk__in=[one.pk, two.pk, three.pk]).exists()
    events = AuditEvent.objects.filter(action="delete", object_type="agents.agent")
    assert {e.object_id for e in events} == {one.pk, two.pk, three.pk}
    deleted_one = events.get(object_id=one.pk)
    assert deleted_one.changes["name"] == ["One", None]


def test_admin_create_is_audited(client, admin_user):
    client.force_login(admin_user)
    url = reverse("admin:industries_industryconfig_add")
    data = {
        "industry": "veterinary",
        "display_name": "Veterinary",
        "enabled": "on",
        "professions": '["vet"]',
        "specializations": "[]",
        "tools": "[]",
        "lead_types": "[]",
        "required_licenses": "on",
        "license_label": "Licence",
        "license_pattern": "",
    }
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    event = AuditEvent.objects.get(object_type="industries.industryconfig", object_id="veterinary")
    assert event.action == "create" and event.changes["display_name"] == [None, "Veterinary"]
    IndustryConfig.objects.filter(pk="veterinary").delete()


def test_failed_save_writes_no_audit(client, role_user):
    agent = AgentFactory()
    client.force_login(role_user("Editor"))
    url = reverse("admin:agents_agent_change", args=[agent.pk])
    data = _form_data(client, url)
    data["state"] = "ZZ"
    assert client.post(url, data).status_code == 200  # form error
    assert not AuditEvent.objects.exists()


def test_history_panel_lists_admin_edits_imports_and_sync(client, role_user):
    agent = AgentFactory(name="History Agent")
    AuditEvent.objects.create(
        actor_name="eve", action="update", object_type="agents.agent", object_id=agent.pk,
        changes={"city": ["Fresno", "Oakland"]},
    )  # fmt: skip
    job = ImportJob.objects.create(file="imports/h.csv", original_name="h.csv", format="csv",
                                   status=ImportJob.Status.COMPLETED)  # fmt: skip
    ImportJournalEntry.objects.create(job=job, chunk_index=0, agent_id=agent.pk, action="update",
                                      before={}, after_updated_at=timezone.now())  # fmt: skip
    other = AgentFactory()
    ImportJournalEntry.objects.create(job=job, chunk_index=0, agent_id=other.pk, action="create",
                                      after_updated_at=timezone.now())  # fmt: skip
    client.force_login(role_user("Viewer"))
    response = client.get(reverse("admin:agents_agent_change", args=[agent.pk]))
    body = response.content.decode()
    assert 'id="ef-history"' in body
    assert "eve" in body and "Fresno" in body and "Oakland" in body
    assert f"updated by import #{job.pk} (h.csv)" in body
    assert body.count("by import #") == 1  # not the other agent's entry
    # The agent's latest write is still waiting in the change log (PostgreSQL triggers).
    assert "change pending: not yet pushed to D1" in body


def test_history_panel_names_the_sync_that_carried_the_agent(client, admin_user):
    agent = AgentFactory()
    from sync.models import SyncChange

    SyncChange.objects.all().delete()
    run = SyncRun.objects.create(started_at=timezone.now(), status=SyncRun.Status.COMPLETED)
    client.force_login(admin_user)
    body = client.get(reverse("admin:agents_agent_change", args=[agent.pk])).content.decode()
    assert f"sync #{run.pk}" in body


def test_history_panel_needs_the_audit_view_permission(client, db):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("narrow", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_agent"))
    agent = AgentFactory()
    client.force_login(user)
    body = client.get(reverse("admin:agents_agent_change", args=[agent.pk])).content.decode()
    assert 'id="ef-history"' not in body
