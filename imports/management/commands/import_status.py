import json

from django.core.management.base import BaseCommand, CommandError

from imports.models import ImportJob

from ._progress import job_exit_code, job_summary, job_wait


class Command(BaseCommand):
    help = "Show an import job's status and counts (exit code as import_agents)."

    def add_arguments(self, parser):
        parser.add_argument("job", type=int)
        parser.add_argument("--json", action="store_true")
        parser.add_argument("--wait", action="store_true", help="Follow the job until it ends.")

    def handle(self, *args, **options):
        job = ImportJob.objects.filter(pk=options["job"]).first()
        if job is None:
            raise CommandError(f"No import job {options['job']}")
        if options["wait"]:
            job = job_wait(job, stream=self.stderr, show_bar=not options["json"] and self.stderr.isatty())
        summary = job_summary(job)
        if options["json"]:
            self.stdout.write(json.dumps(summary, ensure_ascii=False))
        else:
            self.stdout.write(
                f"Job {job.pk} {job.original_name}: {job.status} — {summary['total_rows'] or 0:,} rows, "
                f"{summary['created']:,} created, {summary['updated']:,} updated, "
                f"{summary['unchanged']:,} unchanged, {summary['failed']:,} rejected, "
                f"{summary['warned']:,} with warnings"
            )
            if job.error_message:
                self.stdout.write(f"Error: {job.error_message}")
        if job.is_terminal and job_exit_code(job):
            raise SystemExit(job_exit_code(job))
