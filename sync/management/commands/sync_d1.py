import json

from django.core.management.base import BaseCommand, CommandError

from sync.d1_client import d1_target_describe
from sync.models import SyncRun
from sync.services import sync_run_execute

FIELDS = (
    "id",
    "kind",
    "status",
    "changes_read",
    "rows_upserted",
    "rows_deleted",
    "rows_failed",
    "requests",
    "retries",
    "bytes_sent",
    "statements",
    "max_statement_bytes",
    "duration_seconds",
    "position_before",
    "position_after",
    "error",
)


class Command(BaseCommand):
    help = "Push PostgreSQL changes (or everything, with --full) to Cloudflare D1."

    def add_arguments(self, parser):
        parser.add_argument("--full", action="store_true", help="Rebuild D1's content from PostgreSQL.")
        parser.add_argument("--dry-run", action="store_true", help="Build the statements, send nothing.")
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the SyncRun as JSON.")

    def handle(self, *args, full, dry_run, as_json: bool, **options):
        if not as_json:
            self.stdout.write(f"Target: {d1_target_describe()}")
        run = sync_run_execute(full=full, dry_run=dry_run, reason="manage.py sync_d1")
        data = {f: getattr(run, f) for f in FIELDS}
        data["failures"] = run.failures
        if as_json:
            self.stdout.write(_json_dumps(data))
        else:
            self.stdout.write(
                f"Sync #{run.pk} {run.kind}: {run.status} — {run.rows_upserted} upserted, "
                f"{run.rows_deleted} deleted, {run.rows_failed} skipped, {run.requests} requests, "
                f"{run.bytes_sent} bytes in {run.duration_seconds}s"
            )
            for failure in run.failures[:20]:
                self.stdout.write(f"  skipped {failure['table']} {failure['id']}: {failure['error']}")
        if run.status in (SyncRun.Status.FAILED, SyncRun.Status.SKIPPED):
            raise CommandError(run.error or run.status)


def _json_dumps(data: dict) -> str:
    return json.dumps(data, default=str, indent=2)
