"""Exports in this process: the request, planning, chunks, assembly, filters, columns, audit."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from accounts.models import AuditEvent
from agents.models import Agent
from agents.resources import CONTACT_COLUMNS, D1_AGENT_COLUMNS
from agents.tests.factories import AgentFactory
from estateflow.storage import shared_storage
from exports import services
from exports.models import ExportChunk, ExportJob
from exports.selectors import export_changelist_queryset, export_columns_allowed
from exports.services import (
    EXPORT_JOBS,
    ExportRequestError,
    export_chunk_write,
    export_job_assemble,
    export_job_plan,
    export_request,
)

from .factories import agents_generate, export_background, export_run

pytestmark = pytest.mark.django_db


def _csv(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def _ids(data: bytes) -> list[str]:
    return [row["id"] for row in _csv(data)]


def test_background_export_writes_every_row_by_id_in_chunks_and_removes_its_parts(editor):
    agents_generate(230)
    job, data = export_background(user=editor, file_format="csv", chunk_size=50)
    ids = list(Agent.objects.order_by("pk").values_list("pk", flat=True))
    assert _ids(data) == ids
    assert (job.total_rows, job.exported_rows, job.file_size) == (230, 230, len(data))
    chunks = list(job.chunks.order_by("index"))
    assert [c.planned_rows for c in chunks] == [50, 50, 50, 50, 30]
    assert [c.row_count for c in chunks] == [50, 50, 50, 50, 30]
    # Ranges of ids: each chunk starts after the previous one's last id, the last ends at the last id.
    assert chunks[0].id_after is None and chunks[-1].id_through == ids[-1]
    assert all(a.id_through == b.id_after for a, b in zip(chunks, chunks[1:], strict=False))
    storage = shared_storage()
    assert not any(storage.exists(c.part_name) for c in chunks)
    assert storage.exists(job.file)


@pytest.mark.parametrize(
    "query",
    [
        "",
        "q=smith",
        "industry__industry__exact=legal",
        "state__exact=TX&status__exact=active",
        "q=realty&subscription_tier__exact=premium",
        "licence_format=recognised",
        "licence_format=unrecognised",
        "ghost_profile__exact=0&o=2",
    ],
)
def test_filters_and_search_export_exactly_what_the_changelist_lists(admin_client, admin_user, query):
    agents_generate(400)
    AgentFactory(industry_id="insurance", profession="agent", license_number="not-a-licence")
    listed = admin_client.get(f"{reverse('admin:agents_agent_changelist')}?{query}").context["cl"].queryset
    expected = sorted(listed.values_list("pk", flat=True))
    assert expected, "the generated agents should match each filter"
    _, data = export_background(user=admin_user, file_format="csv", query_string=query, chunk_size=60)
    assert _ids(data) == expected


def test_a_filter_the_changelist_refuses_is_refused_before_anything_starts(editor):
    with pytest.raises(ExportRequestError, match="filters are not valid"):
        export_request(user=editor, file_format="csv", query_string="no_such_field__exact=1")
    assert not ExportJob.objects.exists()


def test_contact_columns_only_with_the_permission_even_when_asked_for(editor, contacts_editor):
    AgentFactory(email="secret@corp.example", phone="+1 555-111-2222")
    plain = export_request(user=editor, file_format="csv", query_string="", columns=D1_AGENT_COLUMNS)
    header = _csv(plain.content)[0].keys()
    assert not set(CONTACT_COLUMNS) & set(header) and not plain.job.contains_contacts
    assert b"secret@corp.example" not in plain.content
    full = export_request(user=contacts_editor, file_format="csv", query_string="")
    assert set(CONTACT_COLUMNS) <= set(_csv(full.content)[0]) and full.job.contains_contacts
    assert b"secret@corp.example" in full.content


def test_only_the_chosen_columns_in_export_order(editor):
    AgentFactory(name="Col Person")
    started = export_request(
        user=editor, file_format="json", query_string="", columns=["state", "name", "id"]
    )
    assert list(json.loads(started.content)[0]) == ["id", "name", "state"]


def test_no_export_without_the_export_permission(role_user):
    with pytest.raises(PermissionDenied):
        export_request(user=role_user("Viewer"), file_format="csv", query_string="")


DANGEROUS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]


@pytest.mark.parametrize("file_format", ["csv", "json", "xlsx"])
def test_formula_escaping_in_every_format_of_the_background_export(editor, file_format):
    for i, value in enumerate(DANGEROUS):
        AgentFactory(name=f"Agent {i}", brokerage=value)
    _, data = export_background(user=editor, file_format=file_format, chunk_size=2)
    if file_format == "csv":
        brokerages = [row["brokerage"] for row in _csv(data)]
    elif file_format == "json":
        brokerages = [row["brokerage"] for row in json.loads(data)]
    else:
        sheet = load_workbook(io.BytesIO(data)).active
        rows = [[c.value for c in row] for row in sheet.iter_rows()]
        brokerages = [row[rows[0].index("brokerage")] for row in rows[1:]]
    assert sorted(brokerages) == sorted("'" + v for v in DANGEROUS)


def test_xlsx_and_json_background_files_hold_every_row_and_column(contacts_editor):
    agents_generate(120)
    ids = list(Agent.objects.order_by("pk").values_list("pk", flat=True))
    _, data = export_background(user=contacts_editor, file_format="json", chunk_size=50)
    rows = json.loads(data)
    assert [r["id"] for r in rows] == ids and list(rows[0]) == list(D1_AGENT_COLUMNS)
    _, data = export_background(user=contacts_editor, file_format="xlsx", chunk_size=50)
    sheet = load_workbook(io.BytesIO(data), read_only=True).active
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[0] == list(D1_AGENT_COLUMNS)
    assert [row[0] for row in values[1:]] == ids
    assert all(len(row) == len(D1_AGENT_COLUMNS) for row in values)


def test_direct_up_to_the_limit_background_above_it(editor, django_capture_on_commit_callbacks):
    AgentFactory.create_batch(3)
    with override_settings(EXPORT_DIRECT_MAX_ROWS=3):
        small = export_request(user=editor, file_format="csv", query_string="")
    assert small.content is not None and len(_ids(small.content)) == 3
    assert small.job.direct and small.job.status == "completed" and small.job.exported_rows == 3
    AgentFactory()
    with override_settings(EXPORT_DIRECT_MAX_ROWS=3), django_capture_on_commit_callbacks() as callbacks:
        large = export_request(user=editor, file_format="csv", query_string="")
    assert large.content is None and not large.job.direct and large.job.status == "pending"
    assert len(callbacks) == 1  # the planning task, once the job is committed


def test_starting_an_export_is_audited_with_what_it_exports(editor):
    AgentFactory.create_batch(2)
    direct = export_request(user=editor, file_format="xlsx", query_string="state__exact=CA", columns=["id"])
    with override_settings(EXPORT_DIRECT_MAX_ROWS=0):
        background = export_request(user=editor, file_format="csv", query_string="q=x")
    events = {e.object_id: e for e in AuditEvent.objects.filter(object_type="exports.exportjob")}
    first, second = events[str(direct.job.pk)], events[str(background.job.pk)]
    assert (first.action, first.actor, first.actor_name) == ("create", editor, editor.username)
    assert first.changes == {
        "format": [None, "xlsx"],
        "filters": [None, "state__exact=CA"],
        "columns": [None, ["id"]],
        "delivery": [None, "direct"],
        "rows": [None, 2],
    }
    assert second.changes["delivery"] == [None, "background job"]
    assert second.changes["filters"] == [None, "q=x"]


def _planned(user, *, rows: int, chunk_size: int, file_format: str = "csv") -> ExportJob:
    agents_generate(rows)
    with override_settings(EXPORT_DIRECT_MAX_ROWS=0):
        job = export_request(user=user, file_format=file_format, query_string="", chunk_size=chunk_size).job
    assert export_job_plan(job_id=job.pk)
    assert not export_job_plan(job_id=job.pk)  # planned once
    return job


def test_a_chunk_delivered_twice_writes_its_part_once(editor):
    job = _planned(editor, rows=30, chunk_size=20)
    assert export_chunk_write(job_id=job.pk, chunk_index=0)
    chunk = ExportChunk.objects.get(job=job, index=0)
    assert not export_chunk_write(job_id=job.pk, chunk_index=0)
    assert ExportChunk.objects.get(pk=chunk.pk).attempts == 1


def test_a_chunk_run_again_after_a_failed_attempt_replaces_the_part_it_left(editor, monkeypatch):
    job = _planned(editor, rows=30, chunk_size=20)
    storage = shared_storage()
    name = services.export_part_name(job_id=job.pk, index=0, file_format="csv")
    storage.save(name, io.BytesIO(b"left by a killed attempt\r\n"))
    assert export_chunk_write(job_id=job.pk, chunk_index=0)
    chunk = ExportChunk.objects.get(job=job, index=0)
    assert chunk.part_name == name
    with storage.open(name, "rb") as handle:
        assert b"killed" not in handle.read()
    assert chunk.row_count == 20


def test_assembly_runs_once_the_chunks_are_done_and_only_once(editor):
    job = _planned(editor, rows=45, chunk_size=20)
    for index in range(3):
        export_chunk_write(job_id=job.pk, chunk_index=index)
    assert not export_job_assemble(job_id=job.pk)  # still running: the chunks are not finalized
    assert EXPORT_JOBS.job_finalize(job_id=job.pk)
    assert ExportJob.objects.get(pk=job.pk).status == "assembling"
    assert export_job_assemble(job_id=job.pk)
    assert not export_job_assemble(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "completed" and job.exported_rows == 45 and job.finished_at


def test_a_failed_chunk_fails_the_job_and_nothing_is_assembled(editor):
    job = _planned(editor, rows=30, chunk_size=20)
    export_chunk_write(job_id=job.pk, chunk_index=0)
    EXPORT_JOBS.chunk_fail(job_id=job.pk, chunk_index=1, message="unexpected error: boom")
    assert EXPORT_JOBS.job_finalize(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and "chunk 1: unexpected error: boom" in job.error_message
    assert not export_job_assemble(job_id=job.pk) and not job.file


def test_an_orphaned_assembly_is_sent_again_by_the_recovery_sweep(editor, monkeypatch):
    job = _planned(editor, rows=10, chunk_size=20)
    export_chunk_write(job_id=job.pk, chunk_index=0)
    EXPORT_JOBS.job_finalize(job_id=job.pk)
    sent = []
    monkeypatch.setattr(services, "export_job_assemble_enqueue", lambda *, job_id: sent.append(job_id))
    EXPORT_JOBS.jobs_recover()
    assert sent == []  # its message may just be queued
    EXPORT_JOBS.jobs_recover(worker_start=True)  # a killed worker's replacement
    assert sent == [job.pk]
    ExportJob.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(minutes=6))
    EXPORT_JOBS.jobs_recover()  # the periodic sweep, once it has waited long enough
    assert sent == [job.pk, job.pk]


def test_a_crash_in_planning_fails_the_job_with_the_reason(editor, monkeypatch):
    from exports.tasks import export_job_plan_task

    AgentFactory()
    with override_settings(EXPORT_DIRECT_MAX_ROWS=0):
        job = export_request(user=editor, file_format="csv", query_string="").job

    def crash(**kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(services, "export_chunk_bounds", crash)
    export_job_plan_task.apply(args=[job.pk])
    job.refresh_from_db()
    assert job.status == "failed" and "Planning failed unexpectedly" in job.error_message
    assert "disk on fire" in job.error_message


def test_xlsx_over_the_sheet_limit_fails_at_planning(editor, monkeypatch):
    monkeypatch.setattr(services, "XLSX_MAX_DATA_ROWS", 5)
    agents_generate(6)
    with override_settings(EXPORT_DIRECT_MAX_ROWS=0):
        job = export_request(user=editor, file_format="xlsx", query_string="").job
    assert not export_job_plan(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and "do not fit in one Excel sheet" in job.error_message
    assert not job.chunks.exists()


def test_an_empty_selection_gives_a_file_with_the_header_only(editor):
    header = "\ufeff" + ",".join(export_columns_allowed(user=editor))
    agents_generate(5)
    direct = export_request(user=editor, file_format="csv", query_string="q=no-such-agent-anywhere")
    assert direct.job.direct and direct.content.decode().splitlines() == [header]
    # Matching rows when it started, none left when a worker plans it.
    with override_settings(EXPORT_DIRECT_MAX_ROWS=0):
        job = export_request(user=editor, file_format="csv", query_string="").job
    Agent.objects.all().delete()
    job = export_run(job)
    assert (job.status, job.total_rows, job.chunks.count()) == ("completed", 0, 0)
    with shared_storage().open(job.file, "rb") as handle:
        assert handle.read().decode().splitlines() == [header]


def test_the_worker_reapplies_the_query_as_the_changelist_would(editor):
    AgentFactory(name="Zed Smith", state="TX")
    AgentFactory(name="Amy Jones", state="TX")
    queryset = export_changelist_queryset(query_string="q=smith&state__exact=TX", user=editor)
    assert list(queryset.values_list("name", flat=True)) == ["Zed Smith"]


def test_files_older_than_the_retention_are_deleted_and_the_job_page_says_so(editor, client, settings):
    agents_generate(20)
    old, _ = export_background(user=editor, file_format="csv")
    recent, _ = export_background(user=editor, file_format="json")
    now = timezone.now()
    ExportJob.objects.filter(pk=old.pk).update(
        finished_at=now - timedelta(days=settings.EXPORT_RETENTION_DAYS + 1)
    )
    old_file = old.file

    assert services.export_files_expire(now=now) == [old.pk]
    assert services.export_files_expire(now=now) == []  # nothing left to do the second time
    old.refresh_from_db()
    recent.refresh_from_db()
    assert old.file == "" and old.file_expired_at == now and not shared_storage().exists(old_file)
    assert recent.file and recent.file_expired_at is None and shared_storage().exists(recent.file)

    client.force_login(editor)
    page = client.get(reverse("admin:exports_exportjob_change", args=[old.pk]))
    assert b'id="ef-expired"' in page.content and b'id="ef-download"' not in page.content
    assert client.get(reverse("admin:exports_exportjob_download", args=[old.pk])).status_code == 404
