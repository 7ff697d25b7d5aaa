"""The agent list's Export button, the export job page, its progress and its download."""

import csv
import io

import pytest
from django.test import override_settings
from django.urls import reverse

from accounts.models import AuditEvent
from agents.resources import CONTACT_COLUMNS, D1_AGENT_COLUMNS
from agents.tests.factories import AgentFactory
from exports.models import ExportJob

from .factories import export_background, export_run

pytestmark = pytest.mark.django_db

EXPORT_URL = reverse("admin:agents_agent_export")


def _export_form(resource: str = "agentresource", columns=D1_AGENT_COLUMNS, file_format: str = "0") -> dict:
    # django-import-export's form: the format's index (CSV, XLSX, JSON) and one checkbox per column.
    return {"format": file_format, "resource": "0", **{f"{resource}_{c}": "on" for c in columns}}


def test_export_form_offers_csv_xlsx_and_json(client, editor):
    client.force_login(editor)
    response = client.get(f"{EXPORT_URL}?q=smith")
    assert response.status_code == 200
    choices = [label.lower() for value, label in response.context["form"].fields["format"].choices if value]
    assert choices == ["csv", "xlsx", "json"]


def test_a_large_selection_starts_a_job_with_the_lists_filters_and_opens_its_page(
    client, editor, django_capture_on_commit_callbacks
):
    AgentFactory.create_batch(3, state="TX", name="Tex Smith")
    AgentFactory(state="CA", name="Cal Smith")
    client.force_login(editor)
    data = _export_form("agentresourcewithoutcontacts", file_format="1")
    with override_settings(EXPORT_DIRECT_MAX_ROWS=2), django_capture_on_commit_callbacks() as planned:
        response = client.post(f"{EXPORT_URL}?state__exact=TX&q=smith", data)
    job = ExportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:exports_exportjob_change", args=[job.pk])
    assert (job.format, job.status, job.direct, job.created_by) == ("xlsx", "pending", False, editor)
    assert job.query_string == "state__exact=TX&q=smith"
    assert not set(CONTACT_COLUMNS) & set(job.columns)
    assert len(planned) == 1
    page = client.get(response["Location"])
    assert page.status_code == 200
    body = page.content.decode()
    assert "state__exact=TX" in body and "q=smith" in body and 'data-terminal="0"' in body


def test_a_small_selection_is_the_file_itself(client, editor):
    AgentFactory(name="Only One", brokerage="=cmd")
    client.force_login(editor)
    response = client.post(f"{EXPORT_URL}?q=only", _export_form("agentresourcewithoutcontacts"))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="agents-')
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [(r["name"], r["brokerage"]) for r in rows] == [("Only One", "'=cmd")]
    assert ExportJob.objects.get().direct


def test_refused_filters_show_the_form_again_with_the_reason(client, editor):
    client.force_login(editor)
    response = client.post(f"{EXPORT_URL}?nonsense__exact=1", _export_form("agentresourcewithoutcontacts"))
    assert response.status_code == 200
    assert "filters are not valid" in response.content.decode()
    assert not ExportJob.objects.exists()


def test_progress_json_has_what_the_progress_script_reads(client, editor):
    AgentFactory.create_batch(5)
    job, _ = export_background(user=editor, file_format="csv", chunk_size=2)
    client.force_login(editor)
    data = client.get(reverse("admin:exports_exportjob_progress", args=[job.pk])).json()
    assert data["status"] == "completed" and data["percent"] == 100.0
    assert (data["processed_rows"], data["total_rows"]) == (5, 5)
    assert (data["chunks_done"], data["chunks_total"]) == (3, 3)
    assert {"rows_per_second", "eta_seconds", "error_message"} <= set(data)


def test_a_completed_job_page_links_its_file_and_the_download_is_streamed_and_audited(client, editor):
    AgentFactory.create_batch(4)
    job, stored = export_background(user=editor, file_format="json", chunk_size=3)
    client.force_login(editor)
    page = client.get(reverse("admin:exports_exportjob_change", args=[job.pk])).content.decode()
    download_url = reverse("admin:exports_exportjob_download", args=[job.pk])
    assert download_url in page and 'data-terminal="1"' in page
    response = client.get(download_url)
    assert response.status_code == 200
    assert (
        response["Content-Disposition"]
        == f'attachment; filename="agents-{job.created_at:%Y-%m-%d}-export{job.pk}.json"'
    )
    assert b"".join(response.streaming_content) == stored
    download = AuditEvent.objects.get(action=AuditEvent.Action.DOWNLOAD)
    assert (download.actor, download.object_type, download.object_id) == (
        editor,
        "exports.exportjob",
        str(job.pk),
    )
    assert download.changes == {"file": [None, job.file]}


def test_a_file_with_contacts_is_downloaded_only_with_the_contacts_permission(
    client, editor, contacts_editor
):
    AgentFactory.create_batch(2)
    job, _ = export_background(user=contacts_editor, file_format="csv")
    assert job.contains_contacts
    url = reverse("admin:exports_exportjob_download", args=[job.pk])
    client.force_login(editor)
    assert client.get(url).status_code == 403
    page = client.get(reverse("admin:exports_exportjob_change", args=[job.pk])).content.decode()
    assert url not in page and "needs the permission to export them" in page
    client.force_login(contacts_editor)
    assert client.get(url).status_code == 200
    assert AuditEvent.objects.filter(action="download").count() == 1


@pytest.mark.parametrize("role", ["Viewer", "Importer", "Operator"])
def test_roles_that_cannot_export_see_no_export_job(client, role_user, editor, role):
    AgentFactory()
    job, _ = export_background(user=editor, file_format="csv")
    client.force_login(role_user(role))
    for name in ("change", "progress", "download"):
        assert client.get(reverse(f"admin:exports_exportjob_{name}", args=[job.pk])).status_code == 403
    assert client.get(reverse("admin:exports_exportjob_changelist")).status_code == 403


def test_no_download_before_the_file_exists(client, editor):
    AgentFactory.create_batch(2)
    with override_settings(EXPORT_DIRECT_MAX_ROWS=0):
        client.force_login(editor)
        client.post(EXPORT_URL, _export_form("agentresourcewithoutcontacts"))
    job = ExportJob.objects.get()
    assert client.get(reverse("admin:exports_exportjob_download", args=[job.pk])).status_code == 404
    assert export_run(job).status == "completed"
    assert client.get(reverse("admin:exports_exportjob_download", args=[job.pk])).status_code == 200


def test_export_jobs_are_listed_read_only(client, editor):
    AgentFactory()
    job, _ = export_background(user=editor, file_format="csv")
    client.force_login(editor)
    response = client.get(reverse("admin:exports_exportjob_changelist"))
    assert response.status_code == 200 and f"/admin/exports/exportjob/{job.pk}/" in response.content.decode()
    assert client.get(reverse("admin:exports_exportjob_add")).status_code == 403
    assert (
        client.post(reverse("admin:exports_exportjob_delete", args=[job.pk]), {"post": "yes"}).status_code
        == 403
    )
