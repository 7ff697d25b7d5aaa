"""Wraps django-import-export's `manage.py export`, refusing agents (the admin export applies the contacts
permission; this command would print every email and phone)."""

from django.core.management.base import CommandError
from import_export.command_utils import get_resource_class
from import_export.management.commands.export import Command as ImportExportCommand

from agents.models import Agent


class Command(ImportExportCommand):
    def handle(self, *args, **options):
        resource = get_resource_class(options["resource"])
        if resource._meta.model is not None and issubclass(resource._meta.model, Agent):
            raise CommandError(
                "`manage.py export` is disabled for agents: export them from the admin (Agents → Export), "
                "which leaves out emails and phones unless you hold agents.export_contacts_agent."
            )
        return super().handle(*args, **options)
