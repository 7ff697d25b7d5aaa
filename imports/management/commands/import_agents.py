import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from imports.models import ImportJob
from imports.services import ImportRequestError, import_job_create

from ._progress import job_exit_code, job_summary, job_wait

# 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C.
EXIT_INTERRUPTED = 130


class Command(BaseCommand):
    help = (
        "Import agents from a CSV, XLSX or JSON file through the chunked pipeline. "
        "Exit code: 0 every row landed, 2 completed with rejected rows, 1 failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--mode", choices=ImportJob.Mode.values, default=ImportJob.Mode.UPSERT)
        parser.add_argument("--format", dest="file_format", choices=ImportJob.Format.values)
        parser.add_argument("--encoding", default="", help="CSV encoding, e.g. latin-1 (default UTF-8).")
        parser.add_argument("--dry-run", action="store_true", help="Validate and count; write no agents.")
        parser.add_argument("--chunk-size", type=int, default=5000)
        parser.add_argument("--no-wait", action="store_true", help="Print the job id and return.")
        parser.add_argument("--json", action="store_true", help="Print one JSON summary object.")
        parser.add_argument("--user", help="Username recorded as the job's creator.")

    def handle(self, *args, **options):
        path = Path(options["path"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"No user {options['user']!r}")
        try:
            with path.open("rb") as handle:
                job = import_job_create(
                    file=File(handle),
                    original_name=path.name,
                    file_format=options["file_format"],
                    mode=options["mode"],
                    dry_run=options["dry_run"],
                    chunk_size=options["chunk_size"],
                    encoding=options["encoding"],
                    user=user,
                )
        except ImportRequestError as exc:
            raise CommandError(str(exc)) from exc
        if options["no_wait"]:
            self.stdout.write(
                json.dumps({"job_id": job.pk}) if options["json"] else f"Import job {job.pk} started"
            )
            return
        try:
            job = job_wait(job, stream=self.stderr, show_bar=not options["json"] and self.stderr.isatty())
        except KeyboardInterrupt:
            # Ctrl-C stops the waiting, not the job: the workers carry on, so say how to find it again.
            self.stderr.write(
                f"\nInterrupted: job {job.pk} continues in the background; follow it with "
                f"`manage.py import_status {job.pk}` or stop it with `manage.py import_cancel {job.pk}`."
            )
            raise SystemExit(EXIT_INTERRUPTED) from None
        summary = job_summary(job)
        if options["json"]:
            self.stdout.write(json.dumps(summary, ensure_ascii=False))
        else:
            self._print(summary)
        code = job_exit_code(job)
        if code:
            raise SystemExit(code)

    def _print(self, s: dict) -> None:
        self.stdout.write(
            f"Job {s['job_id']}: {s['status']}{' (dry run)' if s['dry_run'] else ''} — "
            f"{s['total_rows'] or 0:,} rows: {s['created']:,} created, {s['updated']:,} updated, "
            f"{s['unchanged']:,} unchanged, {s['failed']:,} rejected, {s['warned']:,} with warnings"
        )
        if s["error_message"]:
            self.stdout.write(f"Error: {s['error_message']}")
        for warning in s["warnings"]:
            self.stdout.write(f"Warning: {warning}")
        for e in s["errors"][:20]:
            self.stdout.write(f"  line {e['line']} {e['column'] or '-'}: {e['message']}")
        if s["failed"] > 20:
            self.stdout.write(f"  ... {s['failed'] - 20:,} more; see import_status {s['job_id']} --json")
        for w in s["row_warnings"][:10]:
            self.stdout.write(f"  line {w['line']} {w['column'] or '-'} (warning): {w['message']}")
        if s["warned"] > 10:
            self.stdout.write(f"  ... warnings on {s['warned']:,} rows; the job page offers them as CSV")
