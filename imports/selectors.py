"""Reads about import jobs: live progress, errors and warnings, the rejected and warned rows as CSV."""

import csv
import io
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone

from .models import ImportJob, ImportJournalEntry, ImportRollback, ImportRowError

CONFLICTS_KEPT = 1000


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
    warned: int
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


# An import's counts: {name: chunk field}; the job's own field is f"{name}_rows".
CHUNK_COUNTERS = {
    "processed": "row_count",
    "created": "created_rows",
    "updated": "updated_rows",
    "unchanged": "unchanged_rows",
    "failed": "failed_rows",
    "warned": "warned_rows",
}


def import_chunk_totals(*, job: ImportJob) -> dict[str, int]:
    """A job's counts as the sums over its done chunks, plus chunk tallies: the one source of counts."""
    return job.chunks.totals(**CHUNK_COUNTERS)


def import_job_progress(*, job: ImportJob) -> ImportProgress:
    """Counts summed over the chunks (the job's own counters are set only at the end)."""
    agg = import_chunk_totals(job=job)
    processed = agg["processed"]
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
        created=agg["created"],
        updated=agg["updated"],
        unchanged=agg["unchanged"],
        failed=agg["failed"],
        warned=agg["warned"],
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


def import_job_errors(
    *, job: ImportJob, limit: int | None = 100, severity: str = ImportRowError.Severity.ERROR
) -> list[ImportRowError]:
    """A job's row errors (rejected rows), or with severity="warning" its warnings, in line order."""
    errors = ImportRowError.objects.filter(job=job, severity=severity).order_by("line", "id")
    return list(errors[:limit] if limit else errors)


def import_job_error_count(*, job: ImportJob, severity: str = ImportRowError.Severity.ERROR) -> int:
    return ImportRowError.objects.filter(job=job, severity=severity).count()


def import_rejected_rows_csv(
    *, job: ImportJob, severity: str = ImportRowError.Severity.ERROR
) -> Iterator[str]:
    """The rejected rows with their original columns plus an `error` column, ready to fix and re-import.

    With severity="warning": the imported rows that carry warnings, plus a
    `warning` column. One writer for both downloads, so both get the same care.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow([*job.header, severity])
    yield "\ufeff" + flush()  # a BOM so spreadsheet programs read UTF-8
    current_line, cells, messages = None, None, []
    rows = (
        ImportRowError.objects.filter(job=job, severity=severity)
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


# The job's entries with, per agent, its first entry (what to restore) and the
# updated_at of its last entry (what the import left behind).
JOURNAL_ENTRIES_SQL = """
    SELECT f.agent_id, f.action, f.before, l.after_updated_at AS last_written
    FROM import_journal f
    JOIN LATERAL (
        SELECT after_updated_at FROM import_journal l
        WHERE l.job_id = f.job_id AND l.agent_id = f.agent_id ORDER BY l.id DESC LIMIT 1
    ) l ON TRUE
    WHERE f.job_id = %s {chunk_filter}
      AND NOT EXISTS (
        SELECT 1 FROM import_journal e WHERE e.job_id = f.job_id AND e.agent_id = f.agent_id AND e.id < f.id
      )
"""


def import_rollback_conflicts(*, job_id: int) -> tuple[list[dict], int]:
    """Rows changed (or deleted) after the import wrote them."""
    sql = f"""
        WITH e AS ({JOURNAL_ENTRIES_SQL.format(chunk_filter="")})
        SELECT e.agent_id, a.name, a.updated_at, e.last_written, a.id IS NULL AS deleted,
               count(*) OVER () AS total
        FROM e LEFT JOIN agents a ON a.id = e.agent_id
        WHERE (a.id IS NULL AND e.action = 'update') OR (a.id IS NOT NULL AND a.updated_at <> e.last_written)
        ORDER BY e.agent_id LIMIT %s
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [job_id, CONFLICTS_KEPT])
        rows = cursor.fetchall()
    conflicts = [
        {
            "agent_id": agent_id,
            "name": name,
            "updated_at": updated_at.isoformat() if updated_at else None,
            "import_wrote_at": last_written.isoformat(),
            "deleted": deleted,
        }
        for agent_id, name, updated_at, last_written, deleted, _total in rows
    ]
    return conflicts, (rows[0][5] if rows else 0)


def import_rollback_preview(*, job: ImportJob) -> dict:
    """What a rollback of `job` would do: rows to delete and restore, and the conflicts."""
    counts = ImportJournalEntry.objects.filter(job=job).aggregate(
        creates=Count("id", filter=Q(action="create")), updates=Count("id", filter=Q(action="update"))
    )
    conflicts, conflict_count = import_rollback_conflicts(job_id=job.pk)
    return {**counts, "conflicts": conflicts[:100], "conflict_count": conflict_count}


def import_rollback_latest(*, job: ImportJob) -> dict | None:
    rollback = job.rollbacks.order_by("-created_at").first()
    if rollback is None:
        return None
    chunks = rollback.chunks.totals()
    return {
        "id": rollback.pk,
        "status": rollback.status,
        "force": rollback.force,
        "deleted": rollback.deleted_rows,
        "restored": rollback.restored_rows,
        "skipped": rollback.skipped_rows,
        "overwritten": rollback.overwritten_rows,
        "conflict_count": rollback.conflict_count,
        "chunks_total": chunks["total"],
        "chunks_done": chunks["done"],
        "percent": round(100.0 * chunks["done"] / chunks["total"], 1) if chunks["total"] else 100.0,
        "error_message": rollback.error_message,
        "finished": rollback.status not in (ImportRollback.Status.PENDING, ImportRollback.Status.RUNNING),
    }
