from django.core.management.base import BaseCommand

from sync.d1_client import d1_client_from_settings, d1_target_describe
from sync.selectors import d1_migrations_status
from sync.services import d1_migrate


class Command(BaseCommand):
    help = "Apply the numbered D1 schema migrations in sync/d1_migrations (wrangler-compatible)."

    def add_arguments(self, parser):
        parser.add_argument("--list", action="store_true", help="Show applied and pending migrations.")

    def handle(self, *args, **options):
        self.stdout.write(f"Target: {d1_target_describe()}")
        with d1_client_from_settings() as client:
            if options["list"]:
                for row in d1_migrations_status(client=client):
                    mark = f"applied {row['applied_at']}" if row["applied"] else "pending"
                    self.stdout.write(f"  {row['name']:45} {mark}")
                return
            applied = d1_migrate(client=client)
        if applied:
            for name in applied:
                self.stdout.write(f"Applied {name}")
        else:
            self.stdout.write("Nothing to apply.")
