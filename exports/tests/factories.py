"""Agents in bulk, and an export run start to end in this process (planning, chunks, assembly)."""

from django.test import TestCase, override_settings

from agents.benchmark import bench_fill
from estateflow.storage import shared_storage
from exports.models import ExportJob
from exports.services import export_chunk_write, export_job_finalize, export_job_plan, export_request


def agents_generate(count: int, *, seed: int = 5) -> None:
    """`count` generated agents (agents.generator through COPY), replacing every agent."""
    bench_fill(rows=count, seed=seed, force=True)


def export_run(job: ExportJob) -> ExportJob:
    """What the workers do with a started job, in this process, chunk by chunk in order."""
    if export_job_plan(job_id=job.pk):
        for index in job.chunks.order_by("index").values_list("index", flat=True):
            export_chunk_write(job_id=job.pk, chunk_index=index)
        # Closing the chunk phase enqueues the assembly (run here: tests are eager), whose
        # commit deletes the parts.
        with TestCase.captureOnCommitCallbacks(execute=True):
            export_job_finalize(job_id=job.pk)
    job.refresh_from_db()
    return job


def export_background(*, user, file_format: str, query_string: str = "", columns=None, chunk_size=None):
    """Start a background export (whatever its size) and run it here; returns (job, file bytes)."""
    with override_settings(EXPORT_DIRECT_MAX_ROWS=0):
        started = export_request(
            user=user,
            file_format=file_format,
            query_string=query_string,
            columns=columns,
            chunk_size=chunk_size,
        )
    job = export_run(started.job)
    assert job.status == ExportJob.Status.COMPLETED, job.error_message
    with shared_storage().open(job.file, "rb") as handle:
        return job, handle.read()
