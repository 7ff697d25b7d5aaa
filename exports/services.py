"""Agent exports: start one (in the request when small, else as a chunked job), plan, write parts, assemble.

The job is a kind of the chunked-job engine (jobs.runner): planning cuts
the matching agents into ranges of ids, each chunk writes its rows as a part
file in the shared storage (storages["imports"], which every worker host
reaches), and once every chunk is done the assembly joins the parts into
one file there, streaming: memory does not grow with the number of rows.
"""

from __future__ import annotations

import io
import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from accounts.models import AuditEvent
from accounts.services import audit_record
from agents.generator import XLSX_MAX_DATA_ROWS
from estateflow.storage import shared_storage
from jobs.runner import RECOVER_PENDING_AFTER, ChunkedJobRunner

from .formats import FORMATS
from .models import ExportChunk, ExportJob
from .selectors import (
    export_changelist_queryset,
    export_chunk_bounds,
    export_columns_allowed,
    export_columns_contain_contacts,
    export_rows,
)

logger = logging.getLogger(__name__)

EXPORT_PERMISSION = "agents.export_agent"
# A part is built in memory up to this size, then on the worker's temporary disk.
PART_MEMORY_BYTES = 4 * 1024 * 1024
STORAGE_BLOCK_BYTES = 1024 * 1024

Status = ExportJob.Status


class ExportRequestError(Exception):
    """The export cannot start as asked; the message is for the user."""


@dataclass
class ExportStarted:
    job: ExportJob
    # The whole file when it was written in the request (direct), else None: the job makes it.
    content: bytes | None = None


def export_request(
    *,
    user,
    file_format: str,
    query_string: str,
    columns: Sequence[str] | None = None,
    chunk_size: int | None = None,
) -> ExportStarted:
    """Export the agents the changelist shows for `query_string`; audited.

    Up to EXPORT_DIRECT_MAX_ROWS rows the file is written here and returned;
    more rows start a background job (planned on a worker once this commits).
    """
    if not user.has_perm(EXPORT_PERMISSION):
        raise PermissionDenied
    if file_format not in FORMATS:
        raise ExportRequestError(
            f"Unknown export format {file_format!r}; choose one of {', '.join(FORMATS)}."
        )
    allowed = export_columns_allowed(user=user, requested=columns)
    if not allowed:
        raise ExportRequestError("Choose at least one column you may export.")
    try:
        queryset = export_changelist_queryset(query_string=query_string, user=user)
        limit = settings.EXPORT_DIRECT_MAX_ROWS
        # Counting stops past the limit: a 500,000-row list is not counted in the request.
        direct = queryset.order_by()[: limit + 1].count() <= limit
    except IncorrectLookupParameters as exc:
        raise ExportRequestError(f"The list's filters are not valid: {exc}") from exc
    job = ExportJob(
        format=file_format,
        query_string=query_string,
        columns=allowed,
        contains_contacts=export_columns_contain_contacts(allowed),
        direct=direct,
        created_by=user,
        **({"chunk_size": chunk_size} if chunk_size else {}),
    )
    content = _direct_file(job, queryset) if direct else None
    with transaction.atomic():
        job.save()
        audit_record(
            actor=user,
            action=AuditEvent.Action.CREATE,
            obj=job,
            changes={
                "format": [None, job.format],
                "filters": [None, query_string],
                "columns": [None, allowed],
                "delivery": [None, "direct" if direct else "background job"],
                **({"rows": [None, job.exported_rows]} if direct else {}),
            },
        )
        if not direct:
            from .tasks import export_job_plan_task

            job_id = job.pk
            transaction.on_commit(lambda: export_job_plan_task.delay(job_id))
    return ExportStarted(job=job, content=content)


def _direct_file(job: ExportJob, queryset) -> bytes:
    """The whole file, written here (a small selection): same writer as the job's parts and assembly."""
    file_format = FORMATS[job.format]
    part = io.BytesIO()
    count = file_format.part_write(part, job.columns, export_rows(queryset=queryset, columns=job.columns))
    out = io.BytesIO()
    file_format.file_write(out, job.columns, [[part.getvalue()]] if count else [])
    now = timezone.now()
    job.status = Status.COMPLETED
    job.total_rows = job.exported_rows = count
    job.file_size = out.tell()
    job.started_at = job.finished_at = now
    return out.getvalue()


def export_download_record(*, user, job: ExportJob) -> None:
    """Audit one download of an export's file."""
    audit_record(actor=user, action=AuditEvent.Action.DOWNLOAD, obj=job, changes={"file": [None, job.file]})


# --- the background job ---------------------------------------------------------------------


def export_job_plan(*, job_id: int) -> bool:
    """Cut the matching agents into chunks of ids and enqueue them; False when already planned."""
    with transaction.atomic():
        job = ExportJob.objects.select_for_update().get(pk=job_id)
        if job.status != Status.PENDING:
            return False
        try:
            queryset = export_changelist_queryset(query_string=job.query_string, user=job.created_by)
            bounds = export_chunk_bounds(queryset=queryset, chunk_size=job.chunk_size)
        except IncorrectLookupParameters as exc:
            EXPORT_JOBS.job_fail(job_id=job.pk, message=f"The list's filters are no longer valid: {exc}")
            return False
        total = bounds[-1][1] if bounds else 0
        if job.format == ExportJob.Format.XLSX and total > XLSX_MAX_DATA_ROWS:
            EXPORT_JOBS.job_fail(
                job_id=job.pk,
                message=f"{total:,} rows do not fit in one Excel sheet ({XLSX_MAX_DATA_ROWS:,} at most); "
                "export CSV or JSON, or narrow the filters.",
            )
            return False
        chunks, after, before = [], None, 0
        for index, (last_id, rows_through) in enumerate(bounds):
            chunks.append(
                ExportChunk(
                    job=job,
                    index=index,
                    id_after=after,
                    id_through=last_id,
                    planned_rows=rows_through - before,
                )
            )
            after, before = last_id, rows_through
        ExportChunk.objects.bulk_create(chunks)
        job.status = Status.RUNNING
        job.total_rows = total
        job.started_at = timezone.now()
        job.save(update_fields=["status", "total_rows", "started_at"])
        EXPORT_JOBS.chunks_start(job_id=job.pk, indexes=[c.index for c in chunks])
    return True


def export_part_name(*, job_id: int, index: int, file_format: str) -> str:
    return f"exports/{job_id}/part-{index:05d}.{file_format}"


def export_file_name(*, job: ExportJob) -> str:
    return f"exports/{job.pk}/agents-{job.created_at:%Y-%m-%d}-export{job.pk}.{job.format}"


class ExportRunner(ChunkedJobRunner):
    label = "Export job"
    job_model = ExportJob
    chunk_model = ExportChunk
    parent_field = "job"
    chunk_task_path = "exports.tasks.export_chunk_write_task"
    counters = {"exported_rows": "row_count"}

    def process_chunk(self, job: ExportJob, chunk: ExportChunk) -> None:
        """Write the chunk's rows as its part file (inside the chunk's transaction, chunk locked)."""
        queryset = export_changelist_queryset(query_string=job.query_string, user=job.created_by)
        rows = export_rows(
            queryset=queryset, columns=job.columns, id_after=chunk.id_after, id_through=chunk.id_through
        )
        storage = shared_storage()
        name = export_part_name(job_id=job.pk, index=chunk.index, file_format=job.format)
        with tempfile.SpooledTemporaryFile(max_size=PART_MEMORY_BYTES) as part:
            count = FORMATS[job.format].part_write(part, job.columns, rows)
            size = part.tell()
            # An earlier attempt of this chunk may have saved the part before its transaction failed.
            storage.delete(name)
            chunk.part_name = storage.save(name, File(part)) if count else ""
        chunk.row_count, chunk.part_bytes = count, size

    def job_succeeded(self, job: ExportJob) -> None:
        job.status = Status.ASSEMBLING

    def job_closed(self, job: ExportJob) -> None:
        if job.status == Status.ASSEMBLING:
            job_id = job.pk
            transaction.on_commit(lambda: export_job_assemble_enqueue(job_id=job_id))

    def jobs_recover(self, *, worker_start: bool = False) -> dict[int, list[int]]:
        """The engine's sweep, plus assemblies no live worker holds (a killed worker, a lost message).

        Like the engine's pending chunks: at a worker's start every one, otherwise only those
        waiting longer than RECOVER_PENDING_AFTER (a queued message is not lost).
        """
        recovered = super().jobs_recover(worker_start=worker_start)
        assembling = ExportJob.objects.filter(status=Status.ASSEMBLING)
        if not worker_start:
            assembling = assembling.filter(finished_at__lt=timezone.now() - RECOVER_PENDING_AFTER)
        with transaction.atomic():
            # An assembly keeps its job row locked while it runs: a lockable one has no worker.
            orphaned = list(assembling.select_for_update(skip_locked=True).values_list("pk", flat=True))
        for job_id in orphaned:
            logger.warning("Export job %s: re-enqueued its assembly (no live worker held it)", job_id)
            export_job_assemble_enqueue(job_id=job_id)
        return recovered


EXPORT_JOBS = ExportRunner()


def export_job_assemble_enqueue(*, job_id: int) -> None:
    from .tasks import export_job_assemble_task

    export_job_assemble_task.delay(job_id)


def export_job_assemble(*, job_id: int) -> bool:
    """Join the parts into the export's file in the shared storage; False when there was nothing to do.

    The job row stays locked while the file is written: a duplicate delivery
    skips it, and the recovery sweep tells a live assembly from a dead one.
    Idempotent: the parts are deleted only once the job is completed.
    """
    with transaction.atomic():
        job = ExportJob.objects.select_for_update(skip_locked=True).filter(pk=job_id).first()
        if job is None or job.status != Status.ASSEMBLING:
            return False
        parts = list(job.chunks.filter(row_count__gt=0).order_by("index").values_list("part_name", flat=True))
        storage = shared_storage()
        name = export_file_name(job=job)
        with tempfile.TemporaryFile() as assembled:
            FORMATS[job.format].file_write(assembled, job.columns, (_stored_blocks(p) for p in parts))
            size = assembled.tell()
            storage.delete(name)
            job.file = storage.save(name, File(assembled))
        job.file_size = size
        job.status = Status.COMPLETED
        job.finished_at = timezone.now()
        job.save(update_fields=["file", "file_size", "status", "finished_at"])
        transaction.on_commit(lambda: _parts_delete(parts))
    return True


def _stored_blocks(name: str) -> Iterator[bytes]:
    with shared_storage().open(name, "rb") as handle:
        while block := handle.read(STORAGE_BLOCK_BYTES):
            yield block


def _parts_delete(names: list[str]) -> None:
    storage = shared_storage()
    for name in names:
        try:
            storage.delete(name)
        except OSError:
            logger.warning("Could not delete export part %s; it is no longer needed", name)


def export_files_expire(*, now: datetime) -> list[int]:
    """Delete the files of exports finished more than EXPORT_RETENTION_DAYS before `now`; returns their ids.

    Export files hold personal data (and sometimes contact details): they are kept long enough to
    download, not for ever. The job row stays, with when its file went.
    """
    cutoff = now - timedelta(days=settings.EXPORT_RETENTION_DAYS)
    expired = []
    storage = shared_storage()
    for job in ExportJob.objects.filter(finished_at__lt=cutoff).exclude(file=""):
        try:
            storage.delete(job.file)
        except OSError:
            logger.warning("Could not delete the file of export %s; the next sweep tries again", job.pk)
            continue
        ExportJob.objects.filter(pk=job.pk).update(file="", file_expired_at=now)
        expired.append(job.pk)
    if expired:
        logger.info(
            "Deleted the files of %d export(s) older than %d days",
            len(expired),
            settings.EXPORT_RETENTION_DAYS,
        )
    return expired


def export_job_fail(*, job_id: int, message: str) -> None:
    EXPORT_JOBS.job_fail(job_id=job_id, message=message)


def export_chunk_write(*, job_id: int, chunk_index: int) -> bool:
    """Write one chunk's part in one transaction with its done-mark."""
    return EXPORT_JOBS.chunk_process(job_id=job_id, chunk_index=chunk_index)


def export_job_finalize(*, job_id: int) -> bool:
    """Close the chunk phase once no chunk is left; the job then assembles (or fails)."""
    return EXPORT_JOBS.job_finalize(job_id=job_id)
