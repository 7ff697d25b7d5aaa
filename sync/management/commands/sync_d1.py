import json

from django.core.management.base import BaseCommand, CommandError

from sync.d1_client import d1_target_describe
from sync.models import SyncRun
from sync.services import SyncOptions, sync_run_execute

EXIT_PARTIAL = 2

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
    "unknown_in_d1",
    "pruned",
    "bookmark",
    "restore_hint",
    "error",
)


class Command(BaseCommand):
    help = (
        "Push PostgreSQL changes (or everything, with --full) to Cloudflare D1. Exit 0: done; "
        "2: partial (rows skipped or D1 rows left as they are, kept pending); 1: failed, skipped or refused."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--full", action="store_true", help="Push every PostgreSQL row (D1 rows PostgreSQL lacks stay)."
        )
        parser.add_argument(
            "--prune",
            action="store_true",
            help="With --full: delete D1 agents PostgreSQL lacks, after taking a Time Travel bookmark.",
        )
        parser.add_argument(
            "--keep-unknown",
            action="store_true",
            help="Let the first sync run although D1 holds agents PostgreSQL does not know (left as they are).",
        )
        parser.add_argument(
            "--overwrite-unmanaged",
            action="store_true",
            help="Overwrite D1 agents no back-office sync wrote even when their content differs.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Build the statements, send nothing.")
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print the SyncRun as JSON.")

    def handle(
        self, *args, full, prune, keep_unknown, overwrite_unmanaged, dry_run, as_json: bool, **options
    ):
        if prune and not full:
            raise CommandError("--prune goes with --full: `sync_d1 --full --prune`")
        if not as_json:
            self.stdout.write(f"Target: {d1_target_describe()}")
        options = SyncOptions(prune=prune, keep_unknown=keep_unknown, overwrite_unmanaged=overwrite_unmanaged)
        run = sync_run_execute(full=full, dry_run=dry_run, reason="manage.py sync_d1", options=options)
        data = {f: getattr(run, f) for f in FIELDS}
        data["failures"] = run.failures
        data["unmanaged_kept"] = run.unmanaged_kept
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
            if run.unknown_in_d1:
                verb = "deleted" if run.pruned and run.status != SyncRun.Status.REFUSED else "left in D1"
                self.stdout.write(f"  {run.unknown_in_d1:,} D1 agents PostgreSQL does not know: {verb}")
            if run.bookmark:
                self.stdout.write(f"  restore point: {run.bookmark}\n  to go back: {run.restore_hint}")
            if run.unmanaged_kept:
                self.stdout.write(f"  {run.error}")
        if run.status in (SyncRun.Status.FAILED, SyncRun.Status.SKIPPED, SyncRun.Status.REFUSED):
            raise CommandError(run.error or run.status)
        if run.status == SyncRun.Status.PARTIAL:
            # Rows were skipped (and stay pending): the work is not done, like import_agents' exit 2.
            raise SystemExit(EXIT_PARTIAL)


def _json_dumps(data: dict) -> str:
    return json.dumps(data, default=str, indent=2)
