"""Exact undo of an import job from its journal, chunked, idempotent and resumable.

For every agent the job touched, the *first* journal entry of the job holds
what the row was before the job (or that the job created it), and the
*last* entry holds the updated_at the job wrote. A row whose updated_at no
longer equals that value was changed after the import (an admin edit, a
later import): a rollback refuses to overwrite it unless forced.
"""

import logging
import time

from django.db import connection, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from agents.models import Agent

from .models import ImportChunk, ImportJob, ImportJournalEntry, ImportRollback, ImportRollbackChunk
from .selectors import JOURNAL_ENTRIES_SQL, import_rollback_conflicts
from .services import chunk_statement_time_limit

logger = logging.getLogger(__name__)

ROLLBACKABLE = frozenset({
    ImportJob.Status.COMPLETED,
    ImportJob.Status.COMPLETED_WITH_ERRORS,
    ImportJob.Status.FAILED,
    ImportJob.Status.CANCELLED,
})  # fmt: skip
MAX_ROLLBACK_ATTEMPTS = 8
IDS_KEPT_PER_CHUNK = 200
AGENT_COLUMNS = [f.column for f in Agent._meta.concrete_fields]


class RollbackRefused(Exception):
    pass


def import_rollback_request(*, job_id: int, force: bool = False, user=None) -> ImportRollback:
    """Check the job can be rolled back, find conflicts, and start the chunked undo.

    Returns the rollback: `refused` (with its conflicts) when rows changed
    since the import and force is False; a completed rollback as-is when
    the job was already rolled back (a no-op).
    """
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job_id)
        if job.status == ImportJob.Status.ROLLED_BACK:
            return job.rollbacks.filter(status=ImportRollback.Status.COMPLETED).first()
        if job.status == ImportJob.Status.ROLLING_BACK:
            return job.rollbacks.exclude(status=ImportRollback.Status.REFUSED).first()
        if job.status not in ROLLBACKABLE:
            raise RollbackRefused(f"Import #{job.pk} is {job.status}; only ended imports can be rolled back.")
        if job.dry_run:
            raise RollbackRefused(f"Import #{job.pk} was a dry run; it wrote nothing to roll back.")
        # Wait for any chunk still inside its transaction (a cancelled job's last chunks).
        list(ImportChunk.objects.select_for_update().filter(job=job).values_list("pk", flat=True))
        rollback = ImportRollback.objects.create(
            job=job, force=force, requested_by=user, previous_status=job.status, started_at=timezone.now()
        )
        conflicts, count = import_rollback_conflicts(job_id=job.pk)
        rollback.conflicts, rollback.conflict_count = conflicts, count
        if count and not force:
            rollback.status = ImportRollback.Status.REFUSED
            rollback.finished_at = timezone.now()
            rollback.error_message = (
                f"{count:,} row(s) changed after the import; roll back with force to overwrite them."
            )
            rollback.save()
            return rollback
        indexes = _chunk_entry_counts(job_id=job.pk)
        ImportRollbackChunk.objects.bulk_create(
            [ImportRollbackChunk(rollback=rollback, index=i, entries=n) for i, n in indexes.items()]
        )
        rollback.status = ImportRollback.Status.RUNNING
        rollback.save()
        job.status = ImportJob.Status.ROLLING_BACK
        job.save(update_fields=["status"])
        transaction.on_commit(
            lambda: import_rollback_chunks_enqueue(rollback_id=rollback.pk, indexes=list(indexes))
        )
        if not indexes:
            transaction.on_commit(lambda: import_rollback_finalize(rollback_id=rollback.pk))
    return rollback


def _chunk_entry_counts(*, job_id: int) -> dict[int, int]:
    rows = (
        ImportJournalEntry.objects.filter(job_id=job_id)
        .values("chunk_index")
        .annotate(n=Count("id"))
        .order_by("chunk_index")
    )
    return {r["chunk_index"]: r["n"] for r in rows}


def import_rollback_chunks_enqueue(*, rollback_id: int, indexes: list[int]) -> None:
    from .tasks import import_rollback_chunk_task

    for index in indexes:
        import_rollback_chunk_task.delay(rollback_id, index)


def _rollback_chunk_begin(*, rollback_id: int, index: int) -> bool:
    with transaction.atomic():
        chunk = (
            ImportRollbackChunk.objects.select_for_update(of=("self",))
            .select_related("rollback")
            .get(rollback_id=rollback_id, index=index)
        )
        if chunk.status in (ImportRollbackChunk.Status.DONE, ImportRollbackChunk.Status.FAILED):
            return False
        if chunk.rollback.status != ImportRollback.Status.RUNNING:
            return False
        if chunk.attempts >= MAX_ROLLBACK_ATTEMPTS:
            chunk.status = ImportRollbackChunk.Status.FAILED
            chunk.error = f"gave up after {chunk.attempts} attempts. {chunk.error}".strip()
            chunk.save(update_fields=["status", "error"])
            return False
        chunk.attempts += 1
        chunk.status = ImportRollbackChunk.Status.RUNNING
        chunk.save(update_fields=["attempts", "status"])
    return True


def import_rollback_chunk_process(*, rollback_id: int, index: int) -> bool:
    """Undo one import chunk's entries in one transaction with the chunk's done-mark."""
    if not _rollback_chunk_begin(rollback_id=rollback_id, index=index):
        return False
    started = time.monotonic()
    with transaction.atomic():
        chunk = (
            ImportRollbackChunk.objects.select_for_update(of=("self",))
            .select_related("rollback")
            .get(rollback_id=rollback_id, index=index)
        )
        if chunk.status != ImportRollbackChunk.Status.RUNNING:
            return False
        chunk_statement_time_limit()
        rollback = chunk.rollback
        force = rollback.force
        unchanged = "TRUE" if force else "a.updated_at = rb.last_written"
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS import_rollback_rows")
            cursor.execute(
                "CREATE TEMP TABLE import_rollback_rows ON COMMIT DROP AS "
                + JOURNAL_ENTRIES_SQL.format(chunk_filter="AND f.chunk_index = %s"),
                [rollback.job_id, index],
            )
            cursor.execute(
                "SELECT 1 FROM agents a JOIN import_rollback_rows rb ON a.id = rb.agent_id ORDER BY a.id FOR UPDATE OF a"
            )
            cursor.execute(
                "SELECT rb.agent_id FROM import_rollback_rows rb LEFT JOIN agents a ON a.id = rb.agent_id "
                "WHERE (a.id IS NULL AND rb.action = 'update') OR (a.id IS NOT NULL AND a.updated_at <> rb.last_written) "
                "ORDER BY rb.agent_id"
            )
            changed = [row[0] for row in cursor.fetchall()]
            cursor.execute(
                f"DELETE FROM agents a USING import_rollback_rows rb "  # noqa: S608
                f"WHERE a.id = rb.agent_id AND rb.action = 'create' AND {unchanged}"
            )
            deleted = cursor.rowcount
            columns = [c for c in AGENT_COLUMNS if c != "id"]
            targets = ", ".join(columns)
            sources = ", ".join(f"r.{c}" for c in columns)
            cursor.execute(
                f"UPDATE agents a SET ({targets}) = ({sources}) "  # noqa: S608
                f"FROM import_rollback_rows rb, jsonb_populate_record(NULL::agents, rb.before) r "
                f"WHERE rb.action = 'update' AND a.id = rb.agent_id AND {unchanged}"
            )
            restored = cursor.rowcount
            reinserted = 0
            if force:
                # Deleted after the import: forcing means the row comes back as it was before.
                all_columns = ", ".join(AGENT_COLUMNS)
                cursor.execute(
                    f"INSERT INTO agents ({all_columns}) SELECT {', '.join(f'r.{c}' for c in AGENT_COLUMNS)} "  # noqa: S608
                    f"FROM import_rollback_rows rb, jsonb_populate_record(NULL::agents, rb.before) r "
                    f"WHERE rb.action = 'update' AND NOT EXISTS (SELECT 1 FROM agents a WHERE a.id = rb.agent_id) "
                    f"ON CONFLICT (id) DO NOTHING"
                )
                reinserted = cursor.rowcount
            if rollback.job.source == ImportJob.Source.D1:
                # Rolling back a pull changes PostgreSQL only: D1 keeps serving the rows it had.
                cursor.execute("DELETE FROM sync_change WHERE xid = pg_current_xact_id()::text::bigint")
            cursor.execute("SELECT count(*) FROM import_rollback_rows")
            (entries,) = cursor.fetchone()
            cursor.execute("DROP TABLE import_rollback_rows")
        chunk.status = ImportRollbackChunk.Status.DONE
        chunk.deleted_rows = deleted
        chunk.restored_rows = restored + reinserted
        if force:
            chunk.overwritten_rows = len(changed)
            chunk.overwritten_ids = changed[:IDS_KEPT_PER_CHUNK]
            chunk.skipped_rows = entries - deleted - restored - reinserted
        else:
            chunk.skipped_rows = entries - deleted - restored
            chunk.skipped_ids = changed[:IDS_KEPT_PER_CHUNK]
        chunk.error = ""
        chunk.duration_ms = int((time.monotonic() - started) * 1000)
        chunk.save()
    return True


def import_rollback_chunk_fail(*, rollback_id: int, index: int, message: str) -> None:
    ImportRollbackChunk.objects.filter(rollback_id=rollback_id, index=index).exclude(
        status=ImportRollbackChunk.Status.DONE
    ).update(status=ImportRollbackChunk.Status.FAILED, error=message[:2000])


def import_rollback_chunk_record_error(*, rollback_id: int, index: int, message: str) -> None:
    ImportRollbackChunk.objects.filter(rollback_id=rollback_id, index=index).exclude(
        status=ImportRollbackChunk.Status.DONE
    ).update(status=ImportRollbackChunk.Status.PENDING, error=message[:2000])


def import_rollback_finalize(*, rollback_id: int) -> bool:
    """Close the rollback once no chunk is left; the job becomes rolled_back."""
    with transaction.atomic():
        rollback = ImportRollback.objects.select_for_update().get(pk=rollback_id)
        if rollback.status != ImportRollback.Status.RUNNING:
            return False
        chunks = rollback.chunks.all()
        if chunks.filter(
            status__in=[ImportRollbackChunk.Status.PENDING, ImportRollbackChunk.Status.RUNNING]
        ).exists():
            return False
        totals = chunks.filter(status=ImportRollbackChunk.Status.DONE).aggregate(
            deleted=Sum("deleted_rows"),
            restored=Sum("restored_rows"),
            skipped=Sum("skipped_rows"),
            overwritten=Sum("overwritten_rows"),
        )
        rollback.deleted_rows = totals["deleted"] or 0
        rollback.restored_rows = totals["restored"] or 0
        rollback.skipped_rows = totals["skipped"] or 0
        rollback.overwritten_rows = totals["overwritten"] or 0
        failed = list(chunks.filter(status=ImportRollbackChunk.Status.FAILED)[:5])
        rollback.finished_at = timezone.now()
        job = ImportJob.objects.select_for_update().get(pk=rollback.job_id)
        if failed:
            rollback.status = ImportRollback.Status.FAILED
            rollback.error_message = "; ".join(f"chunk {c.index}: {c.error}" for c in failed) + (
                " — resume the rollback to retry the failed chunks."
            )
        else:
            rollback.status = ImportRollback.Status.COMPLETED
            job.status = ImportJob.Status.ROLLED_BACK
            job.save(update_fields=["status"])
            transaction.on_commit(_edge_sync_request)
        rollback.save()
    return True


def import_rollback_resume(*, rollback_id: int) -> list[int]:
    """Re-enqueue every rollback chunk not done (after a crash or a failed chunk)."""
    with transaction.atomic():
        rollback = ImportRollback.objects.select_for_update().get(pk=rollback_id)
        if rollback.status not in (ImportRollback.Status.RUNNING, ImportRollback.Status.FAILED):
            return []
        # Chunks a live worker holds stay locked and are skipped: they finish on their own.
        indexes = list(
            rollback.chunks.exclude(status=ImportRollbackChunk.Status.DONE)
            .select_for_update(skip_locked=True)
            .values_list("index", flat=True)
        )
        rollback.chunks.filter(index__in=indexes).exclude(status=ImportRollbackChunk.Status.DONE).update(
            status=ImportRollbackChunk.Status.PENDING, attempts=0
        )
        rollback.status = ImportRollback.Status.RUNNING
        rollback.error_message = ""
        rollback.finished_at = None
        rollback.save()
        transaction.on_commit(
            lambda: import_rollback_chunks_enqueue(rollback_id=rollback_id, indexes=indexes)
        )
        if not indexes:
            transaction.on_commit(lambda: import_rollback_finalize(rollback_id=rollback_id))
    return indexes


def import_rollbacks_recover() -> dict[int, list[int]]:
    """Re-enqueue rollback chunks that no live worker holds (see import_jobs_recover)."""
    recovered = {}
    for rollback in ImportRollback.objects.filter(status=ImportRollback.Status.RUNNING):
        with transaction.atomic():
            orphaned = list(
                ImportRollbackChunk.objects.filter(
                    rollback=rollback, status=ImportRollbackChunk.Status.RUNNING
                )
                .select_for_update(skip_locked=True)
                .values_list("index", flat=True)
            )
            if orphaned:
                rollback.chunks.filter(index__in=orphaned).update(status=ImportRollbackChunk.Status.PENDING)
        if orphaned:
            recovered[rollback.pk] = orphaned
            import_rollback_chunks_enqueue(rollback_id=rollback.pk, indexes=orphaned)
    return recovered


def _edge_sync_request() -> None:
    try:
        from sync.services import d1_sync_request
    except ImportError:
        return
    d1_sync_request(reason="import rolled back")
