"""Replaces django-import-export's `manage.py import`: it writes rows past validation, journal and audit."""

from django.core.management.base import BaseCommand, CommandError

REFUSAL = (
    "`manage.py import` is disabled in EstateFlow: it would write rows without validation, the import "
    "journal, rollback, audit or the D1 sync. Import agents with `manage.py import_agents FILE` "
    "(CSV, XLSX or JSON; `--dry-run` to check a file first); edit industries in the admin."
)


class Command(BaseCommand):
    help = "Disabled: use `manage.py import_agents FILE` (the one import path)."

    def add_arguments(self, parser):
        # Whatever django-import-export's command took, so any old invocation gets the explanation.
        parser.add_argument("args", nargs="*")
        parser.add_argument("--noinput", "--no-input", action="store_true")
        parser.add_argument("--raise-errors", action="store_true")
        parser.add_argument("-n", "--dry-run", action="store_true")
        parser.add_argument("--format")
        parser.add_argument("--encoding")

    def handle(self, *args, **options):
        raise CommandError(REFUSAL)
