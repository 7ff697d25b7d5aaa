import io

import pytest
from django.core.files.base import ContentFile

from estateflow.celery import app as celery_app
from imports.models import ImportJob
from imports.services import (
    import_chunk_process,
    import_job_create,
    import_job_finalize,
    import_job_plan,
)

OLD_HEADER = "id,name,license_number,email,phone,industry,state,city"


def run_import(content: bytes | str, name: str = "agents.csv", **options) -> ImportJob:
    """The whole pipeline in this process, chunk by chunk, in file order."""
    if isinstance(content, str):
        content = content.encode("utf-8")
    job = import_job_create(file=ContentFile(content), original_name=name, start=False, **options)
    if import_job_plan(job_id=job.pk):
        for index in job.chunks.order_by("index").values_list("index", flat=True):
            import_chunk_process(job_id=job.pk, chunk_index=index)
        import_job_finalize(job_id=job.pk)
    job.refresh_from_db()
    return job


def csv_text(header: str, *rows: str, newline: str = "\n") -> str:
    return newline.join([header, *rows]) + newline


@pytest.fixture
def generated_csv(tmp_path):
    """Write a generated agents file with the project's generator; returns its path."""
    from django.core.management import call_command

    def make(count: int, *, seed: int = 7, invalid_rate: float = 0.0, fmt: str = "csv"):
        path = tmp_path / f"gen-{count}-{seed}-{invalid_rate}.{fmt}"
        call_command("generate_agents", count, out=str(path), seed=seed, invalid_rate=invalid_rate,
                     format=fmt, stderr=io.StringIO())  # fmt: skip
        return path

    return make


@pytest.fixture(scope="session")
def private_redis():
    """A redis-server of this test run alone: parallel runs on one machine cannot steal its tasks."""
    from .workers import RedisServer

    server = RedisServer()
    server.start()
    yield server
    server.kill()


@pytest.fixture
def workers(tmp_path, settings, private_redis):
    """Start worker processes on demand; all are stopped at the end of the test."""
    from .workers import WorkerProcess, use_broker

    started: list = []
    eager = celery_app.conf.task_always_eager
    broker = {"url": private_redis.url}
    use_broker(broker["url"])

    def start(name: str = "w1", concurrency: int = 1, env: dict | None = None) -> WorkerProcess:
        worker = WorkerProcess(
            broker_url=broker["url"], log_dir=tmp_path, name=name, concurrency=concurrency, env=env
        )
        started.append(worker)
        worker.wait_ready()
        return worker

    start.broker = broker
    yield start
    for worker in started:
        worker.stop()
    celery_app.conf.task_always_eager = eager
    use_broker(settings.CELERY_BROKER_URL)
    celery_app.conf.task_always_eager = eager
