"""`manage.py create_role_user NAME --role Viewer|Editor|Importer|Operator`: a staff user in one role."""

import getpass
import os

from django.core.management.base import BaseCommand, CommandError

from accounts.roles import ROLES
from accounts.services import user_create_in_role


class Command(BaseCommand):
    help = "Create a staff user (not a superuser) whose permissions come from one role's group."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=list(ROLES))
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--no-password",
            action="store_true",
            help="No usable password (set one later, or log in through SSO).",
        )

    def handle(self, *args, username, role, email, no_password, **options):
        password = None
        if not no_password:
            # From the environment for scripts, else asked twice on the terminal.
            password = os.environ.get("ESTATEFLOW_USER_PASSWORD") or getpass.getpass("Password: ")
            if not os.environ.get("ESTATEFLOW_USER_PASSWORD") and password != getpass.getpass("Again: "):
                raise CommandError("passwords differ")
            from django.contrib.auth.password_validation import validate_password
            from django.core.exceptions import ValidationError

            try:
                validate_password(password)
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from exc
        try:
            user = user_create_in_role(username=username, role=role, password=password, email=email)
        except (ValueError, LookupError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Created staff user {user.get_username()} with role {role}.")
