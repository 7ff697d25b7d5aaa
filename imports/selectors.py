"""Reads about import jobs: live progress, errors, the rejected rows as CSV."""

import csv
import io
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from django.db.models import Count, Q, Sum
from django.utils import timezone

from .models import ImportChunk, ImportJob, ImportRowError


@dataclass
class ImportProgress:
    job_id: int
    status: str
    dry_run: bool
    total_rows: int | None
    processed_rows: int
    created: int
    updated: int
    unchanged: int
    failed: int
    chunks_total: int
    chunks_done: int
    chunks_failed: int
    percent: float
    rows_per_second: float | None
    eta_seconds: float | None
    elapsed_seconds: float | None
    error_message: str
    warnings: list[str]

    def as_dict(self) -> dict:
        return asdict(self)


def import_job_progress(*, job: ImportJob) -> ImportProgress:
    """Counts summed over the chunks (the job's own counters are set only at the end)."""
    agg = job.chunks.aggregate(
        total=Count("id"),
        done=Count("id", filter=Q(status=ImportChunk.Status.DONE)),
        failed_chunks=Count("id", filter=Q(status=ImportChunk.Status.FAILED)),
        processed=Sum("row_count", filter=Q(status=ImportChunk.Status.DONE)),
        created=Sum("created_rows", filter=Q(status=ImportChunk.Status.DONE)),
        updated=Sum("updated_rows", filter=Q(status=ImportChunk.Status.DONE)),
        unchanged=Sum("unchanged_rows", filter=Q(status=ImportChunk.Status.DONE)),
        failed=Sum("failed_rows", filter=Q(status=ImportChunk.Status.DONE)),
    )
    processed = agg["processed"] or 0
    total = job.total_rows
    end = job.finished_at or timezone.now()
    elapsed = (end - job.started_at).total_seconds() if job.started_at else None
    rate = processed / elapsed if elapsed and processed else None
    eta = None
    if rate and total is not None and not job.is_terminal:
        eta = max(total - processed, 0) / rate
    if job.status in (ImportJob.Status.COMPLETED, ImportJob.Status.COMPLETED_WITH_ERRORS):
        percent = 100.0
    else:
        percent = round(100.0 * processed / total, 1) if total else 0.0
    return ImportProgress(
        job_id=job.pk,
        status=job.status,
        dry_run=job.dry_run,
        total_rows=total,
        processed_rows=processed,
        created=agg["created"] or 0,
        updated=agg["updated"] or 0,
        unchanged=agg["unchanged"] or 0,
        failed=agg["failed"] or 0,
        chunks_total=agg["total"],
        chunks_done=agg["done"],
        chunks_failed=agg["failed_chunks"],
        percent=percent,
        rows_per_second=round(rate, 1) if rate else None,
        eta_seconds=round(eta, 1) if eta is not None else None,
        elapsed_seconds=round(elapsed, 2) if elapsed is not None else None,
        error_message=job.error_message,
        warnings=list(job.warnings or []),
    )


def import_job_errors(*, job: ImportJob, limit: int | None = 100) -> list[ImportRowError]:
    errors = ImportRowError.objects.filter(job=job).order_by("line", "id")
    return list(errors[:limit] if limit else errors)


def import_rejected_rows_csv(*, job: ImportJob) -> Iterator[str]:
    """The rejected rows with their original columns plus an `error` column, ready to fix and re-import."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow([*job.header, "error"])
    yield "\ufeff" + flush()  # a BOM so spreadsheet programs read UTF-8
    current_line, cells, messages = None, None, []
    rows = (
        ImportRowError.objects.filter(job=job)
        .order_by("line", "id")
        .values_list("line", "column", "message", "raw_row")
    )
    for line, column, message, raw_row in rows.iterator(chunk_size=2000):
        if line != current_line:
            if current_line is not None:
                writer.writerow([*cells, "; ".join(messages)])
                yield flush()
            current_line, cells, messages = line, list(raw_row or []), []
            cells += [""] * (len(job.header) - len(cells))
        messages.append(f"line {line}, {column}: {message}" if column else f"line {line}: {message}")
    if current_line is not None:
        writer.writerow([*cells, "; ".join(messages)])
        yield flush()
