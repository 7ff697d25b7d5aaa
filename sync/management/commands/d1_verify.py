import json

from django.core.management.base import BaseCommand, CommandError

from sync.services import d1_verify


class Command(BaseCommand):
    help = "Compare PostgreSQL with D1 (counts per industry and state, checksums per id range)."

    def add_arguments(self, parser):
        parser.add_argument("--repair", action="store_true", help="Re-push the drifted ranges.")
        parser.add_argument(
            "--prune",
            action="store_true",
            help="With --repair: also delete D1 agents PostgreSQL lacks (a restore point is taken first).",
        )
        parser.add_argument("--json", action="store_true", dest="as_json")

    def handle(self, *args, repair, prune, as_json: bool, **options):
        if prune and not repair:
            raise CommandError("--prune goes with --repair")
        result = d1_verify(repair=repair, prune=prune)
        data = {
            "id": result.pk,
            "clean": result.clean,
            "repaired": result.repaired,
            "rows_repaired": result.rows_repaired,
            "ranges_checked": result.ranges_checked,
            "drifted_ranges": result.drifted_ranges,
            "count_drift": result.count_drift,
            "industry_drift": result.industry_drift,
            "error": result.error,
        }
        if as_json:
            self.stdout.write(json.dumps(data, indent=2, default=str))
        else:
            state = "clean" if result.clean else "DRIFT"
            self.stdout.write(f"Verify #{result.pk}: {state}, {result.ranges_checked} id ranges checked")
            for rng in result.drifted_ranges[:20]:
                self.stdout.write(
                    f"  range [{rng['lo']!r}, {rng['hi']!r}): postgres {rng['pg_count']} rows, "
                    f"d1 {rng['d1_count']} rows, checksum {rng['pg_sum']} vs {rng['d1_sum']}"
                )
            for row in result.count_drift[:20]:
                self.stdout.write(
                    f"  {row['industry']}/{row['state']}: postgres {row['postgres']}, d1 {row['d1']}"
                )
            for row in result.industry_drift:
                self.stdout.write(f"  industry {row['industry']} differs")
            if result.repaired:
                self.stdout.write(f"Repaired {result.rows_repaired} rows.")
        if result.error:
            raise CommandError(result.error)
        if not result.clean:
            raise CommandError("D1 differs from PostgreSQL")
