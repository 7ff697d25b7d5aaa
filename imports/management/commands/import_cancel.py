from django.core.management.base import BaseCommand, CommandError

from imports.models import ImportJob
from imports.services import import_job_cancel


class Command(BaseCommand):
    help = "Cancel an import job: chunks not started are skipped; rows already written stay."

    def add_arguments(self, parser):
        parser.add_argument("job", type=int)

    def handle(self, *args, **options):
        if not ImportJob.objects.filter(pk=options["job"]).exists():
            raise CommandError(f"No import job {options['job']}")
        if not import_job_cancel(job_id=options["job"]):
            raise CommandError(f"Job {options['job']} has already ended; nothing to cancel.")
        self.stdout.write(f"Job {options['job']} cancelled.")
