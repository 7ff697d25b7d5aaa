import json

from django.core.management.base import BaseCommand, CommandError

from assets.models import AssetSyncRun
from assets.services import r2_sync_run


class Command(BaseCommand):
    help = (
        "Push agents' photos and thumbnails to the R2 asset bucket (or the local folder standing in for it)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would be sent or deleted; change nothing."
        )
        parser.add_argument(
            "--verify", action="store_true", help="HEAD every object instead of trusting the records."
        )
        parser.add_argument("--json", action="store_true", help="Print the run record as JSON.")

    def handle(self, *args, **options):
        run = r2_sync_run(
            reason="manage.py sync_assets", dry_run=options["dry_run"], verify=options["verify"]
        )
        if options["json"]:
            self.stdout.write(json.dumps(run.as_dict(), indent=2))
        else:
            prefix = "[dry run] would have " if run.dry_run else ""
            self.stdout.write(
                f"Run {run.pk} {run.status} in {run.duration_seconds}s: {prefix}put {run.objects_put} "
                f"({run.bytes_put} bytes), skipped {run.objects_skipped}, orphaned {run.objects_orphaned}, "
                f"deleted {run.objects_deleted}; agents {run.agents_seen} seen, {run.agents_updated} "
                f"photo_url updated, {run.agents_failed} failed."
            )
            if run.error:
                self.stderr.write(run.error)
        if run.status in (AssetSyncRun.Status.FAILED, AssetSyncRun.Status.SKIPPED):
            raise CommandError(f"Asset sync run {run.pk} {run.status}.")
        if run.status == AssetSyncRun.Status.PARTIAL:
            # Some agents' photos could not be pushed: not done, like sync_d1's and import_agents' exit 2.
            raise SystemExit(2)
