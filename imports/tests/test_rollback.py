"""Exact rollback from the journal, in this process (the worker suite covers crashes)."""

import csv
import io
import json

import pytest
from django.core.management import call_command

from agents.models import Agent
from agents.selectors import agents_table_checksum
from agents.tests.factories import AgentFactory
from imports.models import ImportJob, ImportRollback
from imports.rollback import (
    RollbackRefused,
    import_rollback_chunk_process,
    import_rollback_finalize,
    import_rollback_request,
)

from .conftest import csv_text, run_import

pytestmark = pytest.mark.django_db


def run_rollback(job: ImportJob, *, force: bool = False) -> ImportRollback:
    rollback = import_rollback_request(job_id=job.pk, force=force)
    if rollback.status == ImportRollback.Status.RUNNING:
        for index in rollback.chunks.order_by("-index").values_list("index", flat=True):  # any order works
            import_rollback_chunk_process(rollback_id=rollback.pk, index=index)
        import_rollback_finalize(rollback_id=rollback.pk)
    rollback.refresh_from_db()
    return rollback


def _existing(n: int) -> None:
    for i in range(n):
        AgentFactory(id=f"e-{i}", name=f"Existing {i}", state="CA", city="Fresno", years_experience=i % 50,
                     service_zipcodes=["93650"], price_ranges={"min": i}, bio=None)  # fmt: skip


def test_rollback_restores_the_exact_table(generated_csv):
    _existing(40)
    before = agents_table_checksum()
    rows = [f"e-{i},Changed {i},CA,Napa,{(i + 1) % 50}" for i in range(0, 40, 2)]  # 20 updates
    rows += [f"e-{i},Existing {i},CA,Fresno,{i % 50}" for i in range(1, 40, 2)]  # 20 unchanged
    rows += [f"n-{i},New {i},TX,Austin,3" for i in range(30)]  # 30 creates
    job = run_import(csv_text("id,name,state,city,years_experience", *rows), chunk_size=100)
    assert (job.created_rows, job.updated_rows, job.unchanged_rows) == (30, 20, 20)
    assert agents_table_checksum() != before
    rollback = run_rollback(job)
    assert rollback.status == ImportRollback.Status.COMPLETED
    assert (rollback.deleted_rows, rollback.restored_rows, rollback.skipped_rows) == (30, 20, 0)
    assert agents_table_checksum() == before
    job.refresh_from_db()
    assert job.status == ImportJob.Status.ROLLED_BACK
    # Rolling back again is a no-op.
    again = import_rollback_request(job_id=job.pk)
    assert again.pk == rollback.pk and agents_table_checksum() == before


def _csv_rows(path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    return header, rows


def _csv_bytes(header, rows) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def test_generated_file_over_existing_rows_rolls_back_to_the_checksum(generated_csv):
    header, rows = _csv_rows(generated_csv(1500, seed=5))
    first = run_import(_csv_bytes(header, rows[:500]), chunk_size=200)
    assert first.created_rows == 500
    before = agents_table_checksum()
    # The whole file with every row's city changed: 500 updates of existing rows, 1,000 creates.
    city = header.index("city")
    for row in rows:
        row[city] = row[city] + " Heights"
    job = run_import(_csv_bytes(header, rows), chunk_size=300)
    assert (job.created_rows, job.updated_rows) == (1000, 500)
    assert run_rollback(job).status == ImportRollback.Status.COMPLETED
    assert agents_table_checksum() == before


def test_rollback_refuses_when_a_row_was_edited_then_force_overwrites():
    AgentFactory(id="r-1", name="Original", state="CA")
    job = run_import(csv_text("id,name,state", "r-1,Imported,CA", "r-2,Created,CA", "r-3,Also,CA"))
    edited = Agent.objects.get(pk="r-2")
    edited.city = "Edited in the admin"
    edited.save()
    rollback = run_rollback(job)
    assert rollback.status == ImportRollback.Status.REFUSED
    assert [c["agent_id"] for c in rollback.conflicts] == ["r-2"] and rollback.conflict_count == 1
    assert Agent.objects.filter(pk__in=["r-2", "r-3"]).count() == 2  # nothing undone
    job.refresh_from_db()
    assert job.status == ImportJob.Status.COMPLETED
    forced = run_rollback(job, force=True)
    assert forced.status == ImportRollback.Status.COMPLETED
    assert forced.overwritten_rows == 1 and forced.chunks.get().overwritten_ids == ["r-2"]
    assert not Agent.objects.filter(pk__in=["r-2", "r-3"]).exists()
    assert Agent.objects.get(pk="r-1").name == "Original"


def test_later_import_is_a_conflict_and_deleted_rows_come_back_with_force():
    AgentFactory(id="l-1", name="Before", state="CA")
    first = run_import(csv_text("id,name,state", "l-1,First,CA"))
    run_import(csv_text("id,name,state", "l-1,Second,CA"))
    assert run_rollback(first).status == ImportRollback.Status.REFUSED
    Agent.objects.filter(pk="l-1").delete()
    refused = run_rollback(first)
    assert refused.conflicts[0]["deleted"] is True
    forced = run_rollback(first, force=True)
    assert forced.status == ImportRollback.Status.COMPLETED
    assert Agent.objects.get(pk="l-1").name == "Before"


def test_rollback_chunk_twice_is_a_no_op():
    job = run_import(csv_text("id,name,state", "t-1,A,CA", "t-2,B,CA"))
    rollback = run_rollback(job)
    assert import_rollback_chunk_process(rollback_id=rollback.pk, index=0) is False
    rollback.refresh_from_db()
    assert rollback.deleted_rows == 2


def test_failed_and_cancelled_jobs_roll_back_part_written_rows():
    from django.core.files.base import ContentFile

    from imports.services import import_chunk_process, import_job_cancel, import_job_create, import_job_plan

    before = agents_table_checksum()
    rows = [f"c-{i},Name {i},CA" for i in range(300)]
    job = import_job_create(file=ContentFile(csv_text("id,name,state", *rows).encode()), original_name="a.csv",
                            chunk_size=100, start=False)  # fmt: skip
    import_job_plan(job_id=job.pk)
    import_chunk_process(job_id=job.pk, chunk_index=1)
    import_job_cancel(job_id=job.pk)
    assert Agent.objects.count() == 100
    assert run_rollback(job).status == ImportRollback.Status.COMPLETED
    assert agents_table_checksum() == before


def test_dry_run_and_running_jobs_cannot_be_rolled_back():
    job = run_import(csv_text("id,name,state", "d-1,A,CA"), dry_run=True)
    with pytest.raises(RollbackRefused, match="dry run"):
        import_rollback_request(job_id=job.pk)
    job = run_import(csv_text("id,name,state", "d-2,A,CA"))
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING)
    with pytest.raises(RollbackRefused, match="only ended imports"):
        import_rollback_request(job_id=job.pk)


def test_import_rollback_command_refuses_then_forces(capsys, django_capture_on_commit_callbacks):
    job = run_import(csv_text("id,name,state", "k-1,A,CA"))
    agent = Agent.objects.get(pk="k-1")
    agent.name = "Edited"
    agent.save()
    with pytest.raises(SystemExit) as exit_info:
        call_command("import_rollback", str(job.pk), "--json")
    assert exit_info.value.code == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "refused" and summary["conflicts"][0]["agent_id"] == "k-1"
    with django_capture_on_commit_callbacks(execute=True):
        call_command("import_rollback", str(job.pk), "--force", "--json", "--no-wait")
    capsys.readouterr()
    call_command("import_rollback", str(job.pk), "--json")
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "completed" and summary["job_status"] == "rolled_back"
    assert summary["overwritten_ids"] == ["k-1"] and summary["deleted"] == 1
    assert not Agent.objects.filter(pk="k-1").exists()


def test_agents_checksum_command(capsys):
    AgentFactory()
    call_command("agents_checksum", "--json")
    result = json.loads(capsys.readouterr().out)
    assert result["rows"] == 1 and len(result["md5"]) == 32


def test_admin_rollback_confirm_shows_conflicts_and_force_completes(
    admin_client, django_capture_on_commit_callbacks
):
    from django.urls import reverse

    job = run_import(csv_text("id,name,state", "ad-1,A,CA", "ad-2,B,CA"))
    agent = Agent.objects.get(pk="ad-2")
    agent.city = "Edited"
    agent.save()
    url = reverse("admin:imports_importjob_rollback", args=[job.pk])
    page = admin_client.get(url).content.decode()
    assert 'id="rb-conflicts"' in page and "ad-2" in page and 'id="rb-force"' in page
    response = admin_client.post(url, {})
    assert response.status_code == 302 and response.url == url  # refused: back to the confirm page
    assert Agent.objects.count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {"force": "1"})
    job.refresh_from_db()
    assert job.status == ImportJob.Status.ROLLED_BACK
    assert not Agent.objects.exists()
    page = admin_client.get(reverse("admin:imports_importjob_change", args=[job.pk])).content.decode()
    assert 'id="ef-rollback-panel"' in page and "completed" in page
    progress = admin_client.get(reverse("admin:imports_importjob_progress", args=[job.pk])).json()
    assert progress["rollback"]["deleted"] == 2 and progress["rollback"]["overwritten"] == 1


def test_rollback_needs_its_permission(client):
    from django.contrib.auth.models import Permission, User
    from django.urls import reverse

    job = run_import(csv_text("id,name,state", "pp-1,A,CA"))
    user = User.objects.create_user("importer", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_importjob", "run_import"]))
    client.force_login(user)
    url = reverse("admin:imports_importjob_rollback", args=[job.pk])
    assert client.get(url).status_code == 403
    assert client.post(url, {"force": "1"}).status_code == 403
    assert (
        "Roll back this import"
        not in client.get(reverse("admin:imports_importjob_change", args=[job.pk])).content.decode()
    )
    assert Agent.objects.filter(pk="pp-1").exists()
