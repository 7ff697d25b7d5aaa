from django.core.management.base import BaseCommand, CommandError

from imports.models import ImportJob
from imports.services import import_job_resume


class Command(BaseCommand):
    help = "Resume a cancelled, failed or interrupted import job: re-enqueue every chunk not done."

    def add_arguments(self, parser):
        parser.add_argument("job", type=int)

    def handle(self, *args, **options):
        job = ImportJob.objects.filter(pk=options["job"]).first()
        if job is None:
            raise CommandError(f"No import job {options['job']}")
        if job.status in (ImportJob.Status.COMPLETED, ImportJob.Status.COMPLETED_WITH_ERRORS,
                          ImportJob.Status.ROLLED_BACK, ImportJob.Status.ROLLING_BACK):  # fmt: skip
            raise CommandError(f"Job {job.pk} is {job.status}; nothing to resume.")
        indexes = import_job_resume(job_id=job.pk)
        self.stdout.write(f"Job {job.pk}: re-enqueued {len(indexes)} chunk(s).")
