"""Shared output of the import commands: a terminal progress bar and the JSON summary."""

import time

from imports.models import ImportJob, ImportRowError
from imports.selectors import import_job_errors, import_job_progress

EXIT_OK, EXIT_FAILED, EXIT_WITH_REJECTED = 0, 1, 2


def job_summary(job: ImportJob) -> dict:
    progress = import_job_progress(job=job)
    return {
        "job_id": job.pk,
        "status": job.status,
        "dry_run": job.dry_run,
        "total_rows": job.total_rows,
        "created": progress.created,
        "updated": progress.updated,
        "unchanged": progress.unchanged,
        "failed": progress.failed,
        "warned": progress.warned,
        "rows_per_second": progress.rows_per_second,
        "elapsed_seconds": progress.elapsed_seconds,
        "error_message": job.error_message,
        "warnings": job.warnings,
        "errors": [
            {"line": e.line, "column": e.column, "message": e.message}
            for e in import_job_errors(job=job, limit=100)
        ],
        # Imported rows' doubts (licence format, shared licence, phone): never change the exit code.
        "row_warnings": [
            {"line": e.line, "column": e.column, "message": e.message}
            for e in import_job_errors(job=job, limit=100, severity=ImportRowError.Severity.WARNING)
        ],
    }


def job_exit_code(job: ImportJob) -> int:
    if job.status == ImportJob.Status.COMPLETED:
        return EXIT_OK
    if job.status == ImportJob.Status.COMPLETED_WITH_ERRORS:
        return EXIT_WITH_REJECTED
    return EXIT_FAILED


def job_wait(job: ImportJob, *, stream, show_bar: bool, poll: float = 0.5) -> ImportJob:
    """Poll until the job is terminal, drawing a bar when the stream is a terminal."""
    width = 30
    while True:
        job.refresh_from_db()
        if show_bar:
            p = import_job_progress(job=job)
            filled = int(width * p.percent / 100)
            rate = f"{p.rows_per_second:,.0f} rows/s" if p.rows_per_second else "-"
            eta = f"ETA {p.eta_seconds:,.0f}s" if p.eta_seconds is not None else ""
            stream.write(
                f"\r[{'#' * filled}{'.' * (width - filled)}] {p.percent:5.1f}% "
                f"{p.processed_rows:,}/{p.total_rows or 0:,} {rate} {eta} {job.status}   "
            )
            stream.flush()
        if job.is_terminal:
            if show_bar:
                stream.write("\n")
            return job
        time.sleep(poll)
