"""Workers on another host: uploads, staged files and ZIP photos in a private bucket (moto's S3 server).

The "web host" is this test process and the "worker host" a real Celery worker process; each has
its own, separate MEDIA_ROOT, so the only way a chunk can read what the web side stored is the
bucket named by IMPORT_STORAGE_BUCKET.
"""

import io
import uuid
from pathlib import Path

import boto3
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import ContentFile
from openpyxl import Workbook

from agents.models import Agent
from assets.tests.conftest import moto_endpoint  # noqa: F401 - fixture
from estateflow.settings.base import imports_bucket_storage
from estateflow.storage import shared_file_range, shared_storage
from imports.models import ImportJob
from imports.services import import_job_create

from .test_zip_import import agents_zip
from .workers import wait_for

ACCESS_KEY, SECRET_KEY = "imports-access-key", "imports-secret-key"


def _bucket_env(endpoint: str, bucket: str) -> dict[str, str]:
    return {
        "IMPORT_STORAGE_BUCKET": bucket,
        "IMPORT_STORAGE_ENDPOINT_URL": endpoint,
        "IMPORT_STORAGE_ACCESS_KEY_ID": ACCESS_KEY,
        "IMPORT_STORAGE_SECRET_ACCESS_KEY": SECRET_KEY,
        "IMPORT_STORAGE_REGION": "us-east-1",
    }


def _client(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )


def _keys(endpoint: str, bucket: str) -> set[str]:
    pages = _client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.fixture
def bucket(settings, tmp_path, moto_endpoint):  # noqa: F811
    """The web side's settings as settings/base.py builds them from IMPORT_STORAGE_*."""
    name = f"imports-{uuid.uuid4().hex[:12]}"
    _client(moto_endpoint).create_bucket(Bucket=name)
    settings.MEDIA_ROOT = str(tmp_path / "web-media")
    settings.STORAGES = {
        **settings.STORAGES,
        "imports": imports_bucket_storage(
            bucket=name,
            endpoint_url=moto_endpoint,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            region="us-east-1",
        ),
    }
    return {"name": name, "endpoint": moto_endpoint, "env": _bucket_env(moto_endpoint, name)}


@pytest.mark.django_db
def test_a_byte_range_is_read_with_one_ranged_get(bucket):
    data = bytes(range(256)) * 40
    name = shared_storage().save("imports/range-test.bin", ContentFile(data))
    for start, end in ((0, 10), (5, 300), (1000, len(data)), (9000, None), (7, 7)):
        with shared_file_range(name, start=start, end=end) as raw:
            raw.seek(start)  # what the CSV reader does first
            got = raw.read()
            assert raw.tell() == start + len(got)
        assert got == data[start:end], (start, end)
    with shared_file_range(name, start=10, end=20) as raw, pytest.raises(OSError, match="cannot seek"):
        raw.seek(0)


def _xlsx(rows: int) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(["id", "name", "state", "industry"])
    for i in range(rows):
        sheet.append([f"x-{i:05d}", f"Sheet Agent {i}", "TX", "real_estate"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
@pytest.mark.slow
def test_a_worker_with_its_own_empty_media_folder_imports_what_the_web_side_uploaded(
    bucket, workers, generated_csv, tmp_path
):
    web_media, worker_media = tmp_path / "web-media", tmp_path / "worker-media"
    worker_media.mkdir()
    workers("other-host", concurrency=2, env={**bucket["env"], "DJANGO_MEDIA_ROOT": str(worker_media)})

    def done(job_id):
        job = ImportJob.objects.get(pk=job_id)
        return job if job.is_terminal else None

    # A CSV (chunks read byte ranges of the upload), an XLSX (staged by the worker that planned it,
    # read by the others) and a ZIP with photos (members extracted to the bucket at planning).
    csv_path = generated_csv(3000, seed=11)
    jobs = {
        "csv": import_job_create(
            file=ContentFile(csv_path.read_bytes()), original_name="agents.csv", chunk_size=400
        ),
        "xlsx": import_job_create(file=ContentFile(_xlsx(900)), original_name="agents.xlsx", chunk_size=200),
    }
    archive, photos = agents_zip(150)
    jobs["zip"] = import_job_create(file=ContentFile(archive), original_name="agents.zip", chunk_size=100)
    for kind, job in jobs.items():
        jobs[kind] = wait_for(lambda job=job: done(job.pk), timeout=180, message=f"{kind} import")
        assert jobs[kind].status == ImportJob.Status.COMPLETED, (kind, jobs[kind].error_message)
        assert jobs[kind].chunks.count() > 1, kind

    assert (jobs["csv"].created_rows, jobs["xlsx"].created_rows, jobs["zip"].created_rows) == (3000, 900, 150)
    assert Agent.objects.count() == 3000 + 900 + 150

    keys = _keys(bucket["endpoint"], bucket["name"])
    for job in jobs.values():
        assert job.file.name in keys
    assert jobs["xlsx"].staged_file in keys
    for agent in Agent.objects.filter(id__in=list(photos)):
        assert agent.photo.name in keys
        with agent.photo.open("rb") as handle:  # the web side reads the photo the worker stored
            assert handle.read() == photos[agent.id]
    # Nothing went through either host's disk.
    assert _files(web_media) == [] and _files(worker_media) == []


def test_the_public_assets_bucket_is_refused_for_imports(tmp_path):
    import subprocess
    import sys

    env = {
        "DJANGO_SETTINGS_MODULE": "estateflow.settings.test",
        "IMPORT_STORAGE_BUCKET": "estateflow-assets",
        "R2_BUCKET": "estateflow-assets",
        "R2_ENDPOINT_URL": "https://r2.example.test",
        "IMPORT_STORAGE_ENDPOINT_URL": "https://r2.example.test",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode != 0
    assert ImproperlyConfigured.__name__ in result.stderr
    assert "public assets bucket" in result.stderr


@pytest.mark.django_db
def test_a_whole_file_read_from_the_bucket_spools_to_disk_not_memory(bucket, settings):
    """Planning opens the whole upload; django-storages would otherwise hold all of it in RAM."""
    name = shared_storage().save(
        "imports/big.bin", ContentFile(b"x" * (settings.FILE_UPLOAD_MAX_MEMORY_SIZE + 1))
    )
    with shared_storage().open(name, "rb") as handle:
        assert handle.read(1) == b"x"
        assert handle.file._rolled  # SpooledTemporaryFile: moved to a temporary file on disk
