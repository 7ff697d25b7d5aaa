import json

from django.core.management.base import BaseCommand

from agents.selectors import agents_table_checksum


class Command(BaseCommand):
    help = "Print an md5 checksum of the whole agents table (every column, rows in id order)."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        result = agents_table_checksum()
        self.stdout.write(
            json.dumps(result) if options["json"] else f"{result['md5']}  {result['rows']} rows"
        )
