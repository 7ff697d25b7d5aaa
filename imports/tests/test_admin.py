import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from agents.models import Agent
from imports.models import ImportJob

from .conftest import csv_text, run_import

pytestmark = pytest.mark.django_db


def _upload(client, content: str, name: str = "agents.csv", **fields):
    data = {"file": SimpleUploadedFile(name, content.encode()), "mode": "upsert", "chunk_size": 100,
            "file_format": "", "encoding": "", **fields}  # fmt: skip
    return client.post(reverse("admin:imports_importjob_start"), data)


def test_upload_runs_the_job_and_progress_reports_completion(
    admin_client, django_capture_on_commit_callbacks
):
    rows = [f"p-{i},Person {i},CA" for i in range(250)] + ["p-bad,Bad,ZZ"]
    with django_capture_on_commit_callbacks(execute=True):
        response = _upload(admin_client, csv_text("id,name,state", *rows))
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response.url == reverse(
        "admin:imports_importjob_change", args=[job.pk]
    )
    progress = admin_client.get(reverse("admin:imports_importjob_progress", args=[job.pk])).json()
    assert progress["status"] == "completed_with_errors"
    assert progress["percent"] == 100.0
    assert (progress["created"], progress["failed"], progress["total_rows"]) == (250, 1, 251)
    assert progress["chunks_total"] == 3 == progress["chunks_done"]
    page = admin_client.get(reverse("admin:imports_importjob_change", args=[job.pk])).content.decode()
    assert "Download the rejected rows" in page and "Unknown state code" in page
    download = admin_client.get(reverse("admin:imports_importjob_rejected", args=[job.pk]))
    body = b"".join(download.streaming_content).decode("utf-8-sig")
    assert body.splitlines()[0] == "id,name,state,error"
    assert body.splitlines()[1].startswith('p-bad,Bad,ZZ,"line 252, state: Unknown state code')
    assert Agent.objects.count() == 250


def test_upload_form_rejects_empty_file_and_bad_chunk_size(admin_client):
    response = _upload(admin_client, "", chunk_size=5)
    assert response.status_code == 200
    body = response.content.decode()
    assert "The submitted file is empty" in body or "the file is empty" in body
    assert "Ensure this value is greater than or equal to 100" in body
    assert not ImportJob.objects.exists()


def test_job_page_shows_progress_and_cancel_resume(admin_client):
    job = run_import(csv_text("id,name,state", "c-1,Cy,CA"))
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING)
    page = admin_client.get(reverse("admin:imports_importjob_change", args=[job.pk])).content.decode()
    assert 'id="ef-progressbar"' in page and "Cancel import" in page
    response = admin_client.post(reverse("admin:imports_importjob_cancel", args=[job.pk]))
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == ImportJob.Status.CANCELLED
    response = admin_client.post(reverse("admin:imports_importjob_resume", args=[job.pk]))
    job.refresh_from_db()
    assert job.status in (ImportJob.Status.RUNNING, ImportJob.Status.COMPLETED)


def test_cancel_needs_post(admin_client):
    job = run_import(csv_text("id,name,state", "c-1,Cy,CA"))
    assert admin_client.get(reverse("admin:imports_importjob_cancel", args=[job.pk])).status_code == 405


def test_import_needs_the_run_import_permission(client):
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_importjob"))
    client.force_login(user)
    assert client.get(reverse("admin:imports_importjob_start")).status_code == 403
    job = run_import(csv_text("id,name,state", "c-1,Cy,CA"))
    assert client.get(reverse("admin:imports_importjob_change", args=[job.pk])).status_code == 200
    assert client.post(reverse("admin:imports_importjob_cancel", args=[job.pk])).status_code == 403
    assert "Import agents" not in client.get(reverse("admin:imports_importjob_changelist")).content.decode()
    user.user_permissions.add(Permission.objects.get(codename="run_import"))
    client.force_login(User.objects.get(pk=user.pk))
    assert client.get(reverse("admin:imports_importjob_start")).status_code == 200


def test_anonymous_is_sent_to_login(client):
    response = client.get(reverse("admin:imports_importjob_start"))
    assert response.status_code == 302 and "/login/" in response.url
