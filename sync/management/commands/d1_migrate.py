from django.core.management.base import BaseCommand, CommandError

from sync.d1_client import d1_client_from_settings, d1_target_describe
from sync.selectors import d1_migrations_status
from sync.services import D1SchemaConflict, d1_migrate


class Command(BaseCommand):
    help = (
        "Apply the numbered D1 schema migrations in sync/d1_migrations (wrangler-compatible). "
        "On a D1 whose objects already exist (built with `wrangler d1 execute --file`), migrations "
        "are recorded as present or only their missing statements run; a schema that cannot be "
        "reconciled stops the command before anything is written."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--list", action="store_true", help="Show applied, recorded-as-present and pending migrations."
        )

    def handle(self, *args, **options):
        target = d1_target_describe()
        self.stdout.write(f"Target: {target}")
        with d1_client_from_settings() as client:
            if options["list"]:
                for row in d1_migrations_status(client=client, target=target):
                    self.stdout.write(f"  {row['name']:45} {row['state']}")
                return
            try:
                done = d1_migrate(client=client, target=target)
            except D1SchemaConflict as exc:
                raise CommandError(str(exc)) from exc
            status = {r["name"]: r["state"] for r in d1_migrations_status(client=client, target=target)}
        for name in done:
            self.stdout.write(f"{name}: {status[name]}")
        if not done:
            self.stdout.write("Nothing to apply.")
