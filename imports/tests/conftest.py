import io

import pytest
from django.core.files.base import ContentFile

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
