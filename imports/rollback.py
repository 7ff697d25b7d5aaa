"""Exact undo of an import job from its journal, chunked, idempotent and resumable.

The rollback is a kind of the chunked-job engine (jobs.runner): this module
supplies its request (conflict check, one rollback chunk per import chunk),
its `process_chunk` step (the SQL below), its counters and what its end
means (the import becomes rolled_back, the edge is synced).

For every agent the job touched, the *first* journal entry of the job holds
what the row was before the job (or that the job created it), and the
*last* entry holds the updated_at the job wrote. A row whose updated_at no
longer equals that value was changed after the import (an admin edit, a
later import): a rollback refuses to overwrite it unless forced.
"""

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from agents.models import Agent
from jobs.runner import ChunkedJobRunner
from sync import services as sync_services

from .models import ImportChunk, ImportJob, ImportJournalEntry, ImportRollback, ImportRollbackChunk
from .selectors import JOURNAL_ENTRIES_SQL, import_rollback_conflicts

ROLLBACKABLE = frozenset({
    ImportJob.Status.COMPLETED,
    ImportJob.Status.COMPLETED_WITH_ERRORS,
    ImportJob.Status.FAILED,
    ImportJob.Status.CANCELLED,
})  # fmt: skip
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
        ROLLBACKS.chunks_start(job_id=rollback.pk, indexes=list(indexes))
    return rollback


def _chunk_entry_counts(*, job_id: int) -> dict[int, int]:
    rows = (
        ImportJournalEntry.objects.filter(job_id=job_id)
        .values("chunk_index")
        .annotate(n=Count("id"))
        .order_by("chunk_index")
    )
    return {r["chunk_index"]: r["n"] for r in rows}


class RollbackRunner(ChunkedJobRunner):
    label = "Rollback"
    job_model = ImportRollback
    chunk_model = ImportRollbackChunk
    parent_field = "rollback"
    chunk_task_path = "imports.tasks.import_rollback_chunk_task"
    counters = {
        field: field for field in ("deleted_rows", "restored_rows", "skipped_rows", "overwritten_rows")
    }
    resumable = (ImportRollback.Status.RUNNING, ImportRollback.Status.FAILED)

    def process_chunk(self, rollback: ImportRollback, chunk: ImportRollbackChunk) -> None:
        """Undo one import chunk's entries (inside the rollback chunk's transaction)."""
        index = chunk.index
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
            # The journal's row laid over the current one (jsonb_populate_record's base): a
            # column the journal does not hold, added by a migration after the import, keeps
            # its current value instead of becoming NULL.
            cursor.execute(
                f"UPDATE agents a SET ({targets}) = "  # noqa: S608
                f"(SELECT {sources} FROM jsonb_populate_record(a, rb.before) r) "
                f"FROM import_rollback_rows rb "
                f"WHERE rb.action = 'update' AND a.id = rb.agent_id AND {unchanged}"
            )
            restored = cursor.rowcount
            reinserted = 0
            if force:
                # Deleted after the import: forcing means the row comes back as it was before.
                # A column the journal does not hold (added since) takes its model default:
                # NULL would refuse the row if the column is NOT NULL.
                all_columns = ", ".join(AGENT_COLUMNS)
                defaults = {
                    f.column: f.get_default()
                    for f in Agent._meta.concrete_fields
                    if f.has_default() and not f.primary_key
                }
                cursor.execute(
                    f"INSERT INTO agents ({all_columns}) SELECT {', '.join(f'r.{c}' for c in AGENT_COLUMNS)} "  # noqa: S608
                    f"FROM import_rollback_rows rb, jsonb_populate_record(NULL::agents, %s::jsonb || rb.before) r "
                    f"WHERE rb.action = 'update' AND NOT EXISTS (SELECT 1 FROM agents a WHERE a.id = rb.agent_id) "
                    f"ON CONFLICT (id) DO NOTHING",
                    [json.dumps(defaults, cls=DjangoJSONEncoder)],
                )
                reinserted = cursor.rowcount
            if rollback.job.source == ImportJob.Source.D1:
                # Rolling back a pull changes PostgreSQL only: D1 keeps serving the rows it had.
                cursor.execute("DELETE FROM sync_change WHERE xid = pg_current_xact_id()::text::bigint")
            cursor.execute("SELECT count(*) FROM import_rollback_rows")
            (entries,) = cursor.fetchone()
            cursor.execute("DROP TABLE import_rollback_rows")
        chunk.deleted_rows = deleted
        chunk.restored_rows = restored + reinserted
        if force:
            chunk.overwritten_rows = len(changed)
            chunk.overwritten_ids = changed[:IDS_KEPT_PER_CHUNK]
            chunk.skipped_rows = entries - deleted - restored - reinserted
        else:
            chunk.skipped_rows = entries - deleted - restored
            chunk.skipped_ids = changed[:IDS_KEPT_PER_CHUNK]

    def job_succeeded(self, rollback: ImportRollback) -> None:
        rollback.status = ImportRollback.Status.COMPLETED
        job = ImportJob.objects.select_for_update().get(pk=rollback.job_id)
        job.status = ImportJob.Status.ROLLED_BACK
        job.save(update_fields=["status"])
        transaction.on_commit(_edge_sync_request)

    def failed_message(self, rollback, failed, failed_count) -> str:
        details = "; ".join(f"chunk {c.index}: {c.error}" for c in failed)
        return f"{details} — resume the rollback to retry the failed chunks."


ROLLBACKS = RollbackRunner()


def import_rollback_chunk_process(*, rollback_id: int, index: int) -> bool:
    """Undo one import chunk's entries in one transaction with the chunk's done-mark."""
    return ROLLBACKS.chunk_process(job_id=rollback_id, chunk_index=index)


def import_rollback_finalize(*, rollback_id: int) -> bool:
    """Close the rollback once no chunk is left; the job becomes rolled_back."""
    return ROLLBACKS.job_finalize(job_id=rollback_id)


def import_rollback_resume(*, rollback_id: int) -> list[int]:
    """Re-enqueue every rollback chunk not done (after a crash or a failed chunk)."""
    return ROLLBACKS.job_resume(job_id=rollback_id)


def _edge_sync_request() -> None:
    sync_services.d1_sync_request(reason="import rolled back")
