"""End to end with a real Celery worker process, Redis and PostgreSQL."""

import csv
import io
import json

import pytest
from django.test import override_settings
from openpyxl import load_workbook

from agents.models import Agent
from estateflow.storage import shared_storage
from exports import services
from exports.models import ExportJob
from exports.services import export_request
from imports.tests.workers import wait_for

from .factories import agents_generate

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, pytest.mark.slow]

ROWS = 3000


def _finished(job_id: int):
    job = ExportJob.objects.get(pk=job_id)
    return job if job.is_terminal else None


def test_a_worker_process_exports_the_filtered_list_in_every_format(workers, contacts_editor, monkeypatch):
    def not_here(*args, **kwargs):
        raise AssertionError("ran in the test process: a worker must plan, write and assemble")

    agents_generate(ROWS)
    query = "q=a&ghost_profile__exact=1"
    expected = list(
        services.export_changelist_queryset(query_string=query, user=contacts_editor)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    assert 1000 < len(expected) < ROWS
    for step in ("export_job_plan", "export_job_assemble", "export_rows"):
        monkeypatch.setattr(services, step, not_here)
    workers("w1", concurrency=2)
    jobs = {}
    with override_settings(EXPORT_DIRECT_MAX_ROWS=100):
        for file_format in ("csv", "xlsx", "json"):
            started = export_request(
                user=contacts_editor, file_format=file_format, query_string=query, chunk_size=400
            )
            assert started.content is None
            jobs[file_format] = started.job
    storage = shared_storage()
    for file_format, job in jobs.items():
        job = wait_for(lambda job=job: _finished(job.pk), timeout=180, message=f"{file_format} export")
        assert job.status == ExportJob.Status.COMPLETED, job.error_message
        assert job.exported_rows == len(expected) and job.chunks.count() == -(-len(expected) // 400)
        with storage.open(job.file, "rb") as handle:
            data = handle.read()
        if file_format == "csv":
            rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
            ids = [r["id"] for r in rows]
            assert rows[0]["email"] == Agent.objects.get(pk=ids[0]).email
        elif file_format == "json":
            ids = [r["id"] for r in json.loads(data)]
        else:
            sheet = load_workbook(io.BytesIO(data), read_only=True).active
            ids = [row[0].value for row in sheet.iter_rows(min_row=2)]
        assert ids == expected, file_format
        assert not any(storage.exists(c.part_name) for c in job.chunks.exclude(part_name=""))
