import json
import time

from django.core.management.base import BaseCommand, CommandError

from imports.models import ImportJob, ImportRollback
from imports.rollback import RollbackRefused, import_rollback_request, import_rollback_resume


class Command(BaseCommand):
    help = (
        "Roll back an import job exactly: delete the rows it created, restore the rows it updated. "
        "Refuses when rows changed after the import unless --force. Exit code 0 rolled back, 1 refused or failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("job", type=int)
        parser.add_argument("--force", action="store_true", help="Overwrite rows changed after the import.")
        parser.add_argument("--json", action="store_true")
        parser.add_argument("--no-wait", action="store_true")

    def handle(self, *args, **options):
        job = ImportJob.objects.filter(pk=options["job"]).first()
        if job is None:
            raise CommandError(f"No import job {options['job']}")
        try:
            rollback = import_rollback_request(job_id=job.pk, force=options["force"])
        except RollbackRefused as exc:
            raise CommandError(str(exc)) from exc
        if rollback.status == ImportRollback.Status.FAILED:
            import_rollback_resume(rollback_id=rollback.pk)
        while not options["no_wait"]:
            rollback.refresh_from_db()
            if rollback.status not in (ImportRollback.Status.PENDING, ImportRollback.Status.RUNNING):
                break
            time.sleep(0.5)
        summary = rollback_summary(rollback)
        if options["json"]:
            self.stdout.write(json.dumps(summary))
        else:
            self.stdout.write(
                f"Rollback of import #{job.pk}: {rollback.status} — {rollback.deleted_rows:,} created rows deleted, "
                f"{rollback.restored_rows:,} rows restored, {rollback.skipped_rows:,} skipped, "
                f"{rollback.overwritten_rows:,} overwritten"
            )
            if rollback.error_message:
                self.stdout.write(rollback.error_message)
            for conflict in summary["conflicts"][:50]:
                state = "deleted" if conflict["deleted"] else f"changed at {conflict['updated_at']}"
                self.stdout.write(f"  {conflict['agent_id']} {conflict['name'] or ''}: {state}")
        if rollback.status in (ImportRollback.Status.REFUSED, ImportRollback.Status.FAILED):
            raise SystemExit(1)


def rollback_summary(rollback: ImportRollback) -> dict:
    return {
        "job_id": rollback.job_id,
        "rollback_id": rollback.pk,
        "status": rollback.status,
        "job_status": ImportJob.objects.values_list("status", flat=True).get(pk=rollback.job_id),
        "force": rollback.force,
        "deleted": rollback.deleted_rows,
        "restored": rollback.restored_rows,
        "skipped": rollback.skipped_rows,
        "overwritten": rollback.overwritten_rows,
        "conflict_count": rollback.conflict_count,
        "conflicts": rollback.conflicts[:100],
        "skipped_ids": [i for c in rollback.chunks.all() for i in c.skipped_ids][:100],
        "overwritten_ids": [i for c in rollback.chunks.all() for i in c.overwritten_ids][:100],
        "error_message": rollback.error_message,
    }
