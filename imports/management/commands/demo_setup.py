import os

from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management import call_command
from django.core.management.base import BaseCommand

from agents.models import Agent
from imports.models import ImportJob
from imports.services import import_job_create

from ._progress import job_wait

DEMO_USERNAME = "demo"


class Command(BaseCommand):
    help = (
        "Prepare a demo: a staff superuser (credentials printed) and N generated agents loaded "
        "through the import pipeline, so the admin shows a finished import job. Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument("--agents", type=int, default=10_000)
        parser.add_argument("--seed", type=int, default=2024)
        parser.add_argument(
            "--wait", action="store_true", help="Follow the import until a worker has finished it."
        )

    def handle(self, *args, **options):
        password = os.environ.get("DEMO_PASSWORD", "estateflow-demo")
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=DEMO_USERNAME,
            defaults={"is_staff": True, "is_superuser": True, "email": "demo@example.com"},
        )
        if created:
            user.set_password(password)
            user.save()
        self.stdout.write(
            f"Demo staff user: {DEMO_USERNAME} / {password}" + ("" if created else " (existing)")
        )

        if Agent.objects.exists():
            self.stdout.write(f"{Agent.objects.count():,} agents already loaded; skipping the demo data.")
            return
        path = os.path.join("var", f"demo-agents-{options['agents']}.csv")
        os.makedirs("var", exist_ok=True)
        call_command("generate_agents", options["agents"], out=path, seed=options["seed"], invalid_rate=0.005)
        with open(path, "rb") as handle:
            job = import_job_create(file=File(handle), original_name=os.path.basename(path), user=user)
        self.stdout.write(
            f"Demo import job {job.pk} queued; {options['agents']:,} agents will appear as the worker imports them."
        )
        if options["wait"]:
            job = job_wait(job, stream=self.stderr, show_bar=self.stderr.isatty())
        job.refresh_from_db()
        if job.status in (ImportJob.Status.COMPLETED, ImportJob.Status.COMPLETED_WITH_ERRORS):
            self.stdout.write(f"Demo import job {job.pk}: {job.status}, {job.created_rows:,} agents created.")
