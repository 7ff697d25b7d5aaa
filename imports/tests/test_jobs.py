"""The chunked-job engine (jobs/) through its two kinds, import and rollback, in this process.

The worker suite (test_workers.py, test_drill.py) covers the same engine
under real crashes; these pin its policy: one attempt limit, counts from
done chunks, every kind swept.
"""

import pytest
from django.core.files.base import ContentFile

from imports.models import ImportChunk, ImportJob, ImportRollback, ImportRollbackChunk
from imports.rollback import ROLLBACKS, import_rollback_request
from imports.services import IMPORT_JOBS, import_chunk_process, import_job_create, import_job_plan
from jobs.policy import MAX_CHUNK_ATTEMPTS
from jobs.runner import RUNNERS, jobs_recover

from .conftest import csv_text, run_import

pytestmark = pytest.mark.django_db


def planned(*rows: str, chunk_size: int = 100) -> ImportJob:
    content = csv_text("id,name,state", *rows).encode()
    job = import_job_create(
        file=ContentFile(content), original_name="j.csv", start=False, chunk_size=chunk_size
    )
    assert import_job_plan(job_id=job.pk)
    return job


def test_transient_failures_retry_until_the_one_attempt_limit():
    job = planned("j-1,A,CA")
    for attempt in range(1, MAX_CHUNK_ATTEMPTS + 1):
        assert IMPORT_JOBS.chunk_begin(job_id=job.pk, chunk_index=0)
        again = IMPORT_JOBS.chunk_attempt_failed(
            job_id=job.pk, chunk_index=0, message="OperationalError: gone", retries=attempt - 1
        )
        assert again == (attempt < MAX_CHUNK_ATTEMPTS)
    chunk = ImportChunk.objects.get(job=job)
    assert (chunk.status, chunk.attempts) == ("failed", MAX_CHUNK_ATTEMPTS)
    assert chunk.error == f"failed {MAX_CHUNK_ATTEMPTS} times: OperationalError: gone"
    assert IMPORT_JOBS.job_finalize(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED and "failed 6 times" in job.error_message


def test_redeliveries_count_against_the_same_limit():
    """Workers killed mid-chunk leave attempts behind; the next delivery past the limit gives up."""
    job = planned("j-2,A,CA")
    ImportChunk.objects.filter(job=job).update(attempts=MAX_CHUNK_ATTEMPTS, status="running", error="killed")
    assert not import_chunk_process(job_id=job.pk, chunk_index=0)
    chunk = ImportChunk.objects.get(job=job)
    assert chunk.status == "failed" and chunk.error == f"gave up after {MAX_CHUNK_ATTEMPTS} attempts. killed"
    assert chunk.finished_at is not None


def test_a_duplicate_that_finished_the_chunk_stops_the_retries():
    job = planned("j-3,A,CA")
    assert import_chunk_process(job_id=job.pk, chunk_index=0)
    assert not IMPORT_JOBS.chunk_attempt_failed(job_id=job.pk, chunk_index=0, message="late", retries=0)
    assert ImportChunk.objects.get(job=job).status == "done"


def test_cancel_counts_the_done_chunks_only():
    job = planned(*(f"c-{i},N,CA" for i in range(250)), chunk_size=100)
    import_chunk_process(job_id=job.pk, chunk_index=1)
    assert IMPORT_JOBS.job_cancel(job_id=job.pk)
    assert not IMPORT_JOBS.job_cancel(job_id=job.pk)  # already ended
    job.refresh_from_db()
    assert (job.status, job.created_rows, job.processed_rows) == ("cancelled", 100, 100)
    assert not import_chunk_process(job_id=job.pk, chunk_index=0)  # chunks of a cancelled job do not run


def test_worker_start_sweep_resends_orphaned_and_pending_rollback_chunks(monkeypatch):
    job = run_import(csv_text("id,name,state", *(f"r-{i},N,CA" for i in range(250))), chunk_size=100)
    rollback = import_rollback_request(job_id=job.pk)
    assert rollback.status == ImportRollback.Status.RUNNING
    ImportRollbackChunk.objects.filter(rollback=rollback, index=0).update(status="running")  # its worker died
    sent = []
    monkeypatch.setattr(
        ROLLBACKS, "chunks_enqueue", lambda *, job_id, indexes: sent.append((job_id, indexes))
    )
    assert ROLLBACKS.jobs_recover() == {rollback.pk: [0]}  # periodic: the orphan only
    assert ROLLBACKS.jobs_recover(worker_start=True) == {rollback.pk: [0, 1, 2]}
    assert sent == [(rollback.pk, [0]), (rollback.pk, [0, 1, 2])]
    assert set(rollback.chunks.values_list("status", flat=True)) == {"pending"}


def test_the_sweep_covers_every_kind():
    assert {"Import job", "Rollback"} <= set(RUNNERS)
    assert jobs_recover() == {label: {} for label in RUNNERS}
