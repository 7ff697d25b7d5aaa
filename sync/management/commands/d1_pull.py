import json
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from imports.management.commands._progress import job_exit_code, job_summary
from sync.d1_client import d1_client_from_settings, d1_target_describe
from sync.pull import PREFER_D1, PREFER_POSTGRES, PullError, d1_export_load, d1_pull


class Command(BaseCommand):
    help = (
        "Adopt a live D1: read its industry_config and agents and write them into PostgreSQL through "
        "the import pipeline (an import job of source D1: journal, counts, row warnings, import_rollback). "
        "Rows keep their ids, slugs, timestamps and JSON as they are in D1; a rule of ours they break is "
        "a warning, only what PostgreSQL cannot store is an error. Exit 0: every row adopted; 2: some "
        "rows could not be stored (listed); 1: the pull failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count what would change; write nothing.")
        parser.add_argument(
            "--prefer",
            choices=(PREFER_POSTGRES, PREFER_D1),
            default=PREFER_POSTGRES,
            help="Who wins when an agent differs on both sides (default: postgres; the row is listed).",
        )
        parser.add_argument(
            "--from-file",
            metavar="EXPORT.sql",
            help="Read a `wrangler d1 export` SQL dump instead of the D1 API (D1 itself is not touched).",
        )
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print one JSON summary.")

    def handle(self, *args, dry_run, prefer, from_file, as_json, **options):
        with tempfile.TemporaryDirectory(prefix="d1-pull-") as scratch:
            if from_file:
                if not Path(from_file).is_file():
                    raise CommandError(f"{from_file}: no such file")
                source = f"export file {from_file}"
                try:
                    client = d1_export_load(from_file, into=Path(scratch) / "export.sqlite3")
                except PullError as exc:
                    raise CommandError(str(exc)) from exc
            else:
                source = d1_target_describe()
                client = d1_client_from_settings()
            if not as_json:
                self.stdout.write(f"Pulling from {source}{' (dry run)' if dry_run else ''}")
            try:
                result = d1_pull(client=client, prefer=prefer, dry_run=dry_run, mark=not from_file)
            except PullError as exc:
                raise CommandError(str(exc)) from exc
            finally:
                client.close()
        job = result.job
        summary = {
            "source": source,
            "prefer": prefer,
            "d1_agents": result.d1_agents,
            "industries_created": result.industries_created,
            "industries_updated": result.industries_updated,
            "industry_conflicts": result.industry_conflicts,
            "marked_in_d1": result.marked,
            "conflicts": result.conflicts,
            "sync_run": result.run.pk if result.run else None,
            **job_summary(job),
        }
        if as_json:
            self.stdout.write(json.dumps(summary, ensure_ascii=False, default=str))
        else:
            self._print(summary)
        code = job_exit_code(job)
        if code:
            raise SystemExit(code)

    def _print(self, s: dict) -> None:
        self.stdout.write(
            f"Import job {s['job_id']} (source D1): {s['status']} — {s['d1_agents']:,} D1 agents: "
            f"{s['created']:,} created, {s['updated']:,} updated, {s['unchanged']:,} unchanged, "
            f"{s['failed']:,} failed, {s['warned']:,} with warnings"
        )
        if s["industries_created"] or s["industries_updated"]:
            self.stdout.write(
                f"Industries: created {', '.join(s['industries_created']) or '-'}; "
                f"updated {', '.join(s['industries_updated']) or '-'}"
            )
        for conflict in s["industry_conflicts"]:
            self.stdout.write(f"  industry conflict, PostgreSQL's kept: {conflict}")
        conflicts = [w for w in s["row_warnings"] if w["message"].startswith("conflict:")]
        if s["prefer"] == PREFER_POSTGRES and (s["conflicts"] or conflicts):
            self.stdout.write(
                f"  {max(s['conflicts'], len(conflicts)):,} agents differ; PostgreSQL's version kept:"
            )
            for w in conflicts[:20]:
                self.stdout.write(f"    line {w['line']}: {w['message']}")
        for e in s["errors"][:20]:
            self.stdout.write(f"  line {e['line']} {e['column']}: {e['message']}")
        if s["sync_run"]:
            self.stdout.write(
                f"{s['marked_in_d1']:,} D1 agents marked as adopted (sync run {s['sync_run']}). "
                f"Undo the PostgreSQL side with: manage.py import_rollback {s['job_id']}"
            )
