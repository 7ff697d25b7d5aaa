"""End to end with real Celery worker processes, PostgreSQL and Redis: the fault suite.

Each test starts its own worker processes (and, where it restarts Redis, its
own redis-server) and kills them the way a crash would: SIGKILL, a
terminated database backend, a broker restart.
"""

import threading
import time

import pytest
from django.db import connection

from agents.models import Agent
from agents.selectors import agents_table_checksum
from imports.models import ImportChunk, ImportJob, ImportJournalEntry, ImportRollback, ImportRollbackChunk
from imports.rollback import import_rollback_request
from imports.services import import_job_create, import_job_plan, import_jobs_recover
from imports.tasks import import_chunk_process_task

from .conftest import csv_text
from .workers import RedisServer, use_broker, wait_for

# Every test here starts real Celery worker processes: 3-10 s each.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker, pytest.mark.slow]


def job_done(job_id: int):
    job = ImportJob.objects.get(pk=job_id)
    return job if job.is_terminal else None


def _file(generated_csv, rows: int, *, invalid_rate: float = 0.0, seed: int = 3):
    from agents.generator import invalid_count

    path = generated_csv(rows, seed=seed, invalid_rate=invalid_rate)
    return path, invalid_count(count=rows, invalid_rate=invalid_rate)


def _start(path, **options) -> ImportJob:
    with open(path, "rb") as handle:
        from django.core.files import File

        return import_job_create(file=File(handle), original_name=path.name, **options)


def test_two_worker_processes_import_with_exact_counts_then_unchanged(workers, generated_csv):
    path, invalid = _file(generated_csv, 6000, invalid_rate=0.01)
    workers("w1", concurrency=2)
    job = _start(path, chunk_size=500)
    job = wait_for(lambda: job_done(job.pk), timeout=120, message="import")
    assert job.status == ImportJob.Status.COMPLETED_WITH_ERRORS
    assert (job.total_rows, job.created_rows, job.failed_rows) == (6000, 6000 - invalid, invalid)
    assert Agent.objects.count() == 6000 - invalid
    again = _start(path, chunk_size=500)
    again = wait_for(lambda: job_done(again.pk), timeout=120, message="re-import")
    assert (again.created_rows, again.updated_rows, again.unchanged_rows) == (0, 0, 6000 - invalid)
    assert Agent.objects.count() == 6000 - invalid


def test_sigkill_mid_job_then_a_new_worker_completes_with_exact_counts(workers, generated_csv):
    import csv

    from agents.tests.factories import AgentFactory

    path, _ = _file(generated_csv, 12000)
    with open(path, newline="", encoding="utf-8") as handle:
        target = list(csv.DictReader(handle))[1500]["id"]  # a row of chunk 3 (chunks of 400)
    AgentFactory(id=target, name="Held", state="CA")
    release, locked = threading.Event(), threading.Event()
    holder = _hold_row_lock(target, release, locked)
    locked.wait(10)
    first = workers("w1")
    job = _start(path, chunk_size=400)
    # Chunk 3 blocks on the held row inside its transaction: killing now is surely mid-chunk.
    wait_for(_blocked_backend_pids, timeout=60, message="a chunk blocked mid-transaction")
    first.kill()
    release.set()
    holder.join()
    assert not job_done(job.pk)
    workers("w2")  # its start-up recovery re-enqueues the chunk the dead worker held
    job = wait_for(lambda: job_done(job.pk), timeout=120, message="import after kill")
    assert job.status == ImportJob.Status.COMPLETED, job.error_message
    assert (job.created_rows, job.updated_rows) == (11999, 1)
    assert Agent.objects.count() == 12000
    assert ImportJournalEntry.objects.filter(job=job).count() == 12000
    assert ImportChunk.objects.get(job=job, index=3).attempts >= 2


def test_same_chunk_delivered_twice_in_a_row_and_concurrently(workers):
    rows = [f"dup-{i},Name {i},CA" for i in range(3000)]
    from django.core.files.base import ContentFile

    job = import_job_create(file=ContentFile(csv_text("id,name,state", *rows).encode()), original_name="d.csv",
                            chunk_size=1000, start=False)  # fmt: skip
    import_job_plan(job_id=job.pk)
    for index in (0, 0, 1, 1, 2):
        import_chunk_process_task.delay(job.pk, index)
    workers("w1", concurrency=2)
    workers("w2", concurrency=1)
    job = wait_for(lambda: job_done(job.pk), timeout=60, message="import")
    assert job.created_rows == 3000 == Agent.objects.count()
    assert job.processed_rows == 3000
    import_chunk_process_task.delay(job.pk, 2)  # a late duplicate after the end
    time.sleep(1.5)
    job.refresh_from_db()
    assert job.created_rows == 3000 and ImportJournalEntry.objects.filter(job=job).count() == 3000


def _hold_row_lock(agent_id: str, release: threading.Event, locked: threading.Event):
    """In another connection, lock an agent row so a chunk blocks on it inside its transaction."""
    from django.db import connections, transaction

    def run():
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM agents WHERE id = %s FOR UPDATE", [agent_id])
            locked.set()
            release.wait(60)
        connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _blocked_backend_pids() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE '%%FROM agents%%' "
            "AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


def _terminate(pids):
    with connection.cursor() as cursor:
        for pid in pids:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_database_connection_killed_mid_chunk_retries_without_partial_rows(workers):
    from agents.tests.factories import AgentFactory

    AgentFactory(id="lock-me", name="Locked", state="CA")
    rows = [f"p-{i},Name {i},CA" for i in range(500)] + ["lock-me,Locked Changed,CA"]
    release, locked = threading.Event(), threading.Event()
    holder = _hold_row_lock("lock-me", release, locked)
    locked.wait(10)
    workers("w1")
    from django.core.files.base import ContentFile

    job = import_job_create(
        file=ContentFile(csv_text("id,name,state", *rows).encode()), original_name="k.csv"
    )
    pids = wait_for(_blocked_backend_pids, timeout=30, message="chunk blocked on the row lock")
    _terminate(pids)
    # The chunk's transaction died: none of its 500 new rows may remain.
    wait_for(
        lambda: ImportChunk.objects.filter(job=job, attempts__gte=2).exists(), timeout=30, message="retry"
    )
    assert not Agent.objects.filter(id__startswith="p-").exists()
    release.set()
    holder.join()
    job = wait_for(lambda: job_done(job.pk), timeout=60, message="import")
    assert job.status == ImportJob.Status.COMPLETED
    assert (job.created_rows, job.updated_rows) == (500, 1)
    assert Agent.objects.filter(id__startswith="p-").count() == 500


def test_a_chunk_that_always_fails_ends_the_job_with_a_clear_message(workers):
    from agents.tests.factories import AgentFactory

    AgentFactory(id="lock-me", name="Locked", state="CA")
    release, locked = threading.Event(), threading.Event()
    holder = _hold_row_lock("lock-me", release, locked)
    locked.wait(10)
    workers("w1")
    from django.core.files.base import ContentFile

    job = import_job_create(
        file=ContentFile(csv_text("id,name,state", "lock-me,X,CA").encode()), original_name="f.csv"
    )
    try:

        def killed_until_done():
            _terminate(_blocked_backend_pids())
            return job_done(job.pk)

        job = wait_for(killed_until_done, timeout=90, interval=0.1, message="job to fail")
    finally:
        release.set()
        holder.join()
    assert job.status == ImportJob.Status.FAILED
    assert "chunk 0" in job.error_message and "failed 6 times" in job.error_message
    chunk = ImportChunk.objects.get(job=job)
    assert chunk.status == "failed" and chunk.attempts == 6


def test_soft_time_limit_marks_the_job(workers):
    from agents.tests.factories import AgentFactory

    AgentFactory(id="lock-me", name="Locked", state="CA")
    release, locked = threading.Event(), threading.Event()
    holder = _hold_row_lock("lock-me", release, locked)
    locked.wait(10)
    workers("w1", env={"IMPORT_CHUNK_SOFT_TIME_LIMIT": "2"})
    from django.core.files.base import ContentFile

    job = import_job_create(
        file=ContentFile(csv_text("id,name,state", "lock-me,X,CA").encode()), original_name="s.csv"
    )
    try:
        job = wait_for(lambda: job_done(job.pk), timeout=60, message="job to end")
    finally:
        release.set()
        holder.join()
    assert job.status == ImportJob.Status.FAILED
    assert "time limit of 2 s" in job.error_message


def test_redis_restarted_mid_job_completes_after_resume(workers, generated_csv):
    path, _ = _file(generated_csv, 8000)
    redis = RedisServer()
    redis.start()
    try:
        use_broker(redis.url)
        workers.broker["url"] = redis.url
        workers("w1")
        job = _start(path, chunk_size=400)
        wait_for(
            lambda: ImportChunk.objects.filter(job=job, status="done").count() >= 2,
            timeout=60,
            message="progress",
        )
        redis.kill()  # every queued chunk message is gone with it (no persistence)
        redis.start()
        time.sleep(2)  # the worker reconnects by itself
        from imports.services import import_job_resume

        import_job_resume(job_id=job.pk)
        job = wait_for(lambda: job_done(job.pk), timeout=120, message="import after Redis restart")
        assert job.status == ImportJob.Status.COMPLETED, job.error_message
        assert job.created_rows == 8000 == Agent.objects.count()
    finally:
        redis.kill()


def test_rollback_killed_mid_way_and_resumed_equals_the_pre_import_checksum(workers, generated_csv):
    from agents.tests.factories import AgentFactory

    for i in range(300):
        AgentFactory(id=f"agt-pre-{i}", name=f"Pre {i}", state="CA")
    path, _ = _file(generated_csv, 9000)
    before = agents_table_checksum()
    worker = workers("w1")
    job = _start(path, chunk_size=300)
    job = wait_for(lambda: job_done(job.pk), timeout=120, message="import")
    assert job.created_rows == 9000
    rollback = import_rollback_request(job_id=job.pk)
    wait_for(lambda: ImportRollbackChunk.objects.filter(rollback=rollback, status="done").count() >= 3,
             timeout=60, message="rollback progress")  # fmt: skip
    worker.kill()
    workers("w2")  # start-up recovery re-enqueues the orphaned rollback chunk
    from imports.rollback import import_rollback_resume

    import_rollback_resume(rollback_id=rollback.pk)  # and lost messages, if any
    rollback = wait_for(
        lambda: ImportRollback.objects.filter(pk=rollback.pk, status="completed").first(), timeout=120,
        message="rollback",
    )  # fmt: skip
    assert rollback.deleted_rows == 9000
    assert agents_table_checksum() == before


def test_recovery_leaves_chunks_of_live_workers_alone(workers):
    """A running chunk whose row lock is held (a live worker) is not re-enqueued."""
    from django.core.files.base import ContentFile
    from django.db import connections, transaction

    job = import_job_create(file=ContentFile(csv_text("id,name,state", "a-1,A,CA").encode()), original_name="r.csv",
                            start=False)  # fmt: skip
    import_job_plan(job_id=job.pk)
    ImportChunk.objects.filter(job=job).update(status="running")
    holding, release = threading.Event(), threading.Event()

    def hold():
        with transaction.atomic():
            list(ImportChunk.objects.select_for_update().filter(job=job))
            holding.set()
            release.wait(30)
        connections.close_all()

    thread = threading.Thread(target=hold)
    thread.start()
    holding.wait(10)
    try:
        assert import_jobs_recover() == {}
    finally:
        release.set()
        thread.join()
    workers("w1")
    assert import_jobs_recover() in ({job.pk: [0]}, {})  # the new worker's own sweep may win the race
    job = wait_for(lambda: job_done(job.pk), timeout=60, message="import")
    assert job.created_rows == 1
