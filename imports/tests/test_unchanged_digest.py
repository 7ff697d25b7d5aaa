"""Unchanged rows of a re-import are counted without being parsed (imports.digests), and only those.

Each test imports a file, then changes the agent or the rules by another path
and imports again: a row is skipped only when the full path would have found
it unchanged.
"""

import csv
import json

import pytest

from agents.models import Agent
from agents.tests.factories import AgentFactory
from imports.benchmark import changed_file_write
from imports.models import ImportJob, ImportJournalEntry, ImportRowDigest, ImportRowError
from imports.rows import RowParser
from industries.models import IndustryConfig

from .conftest import csv_text, run_import
from .test_rollback import run_rollback

pytestmark = pytest.mark.django_db

HEADER = "id,name,license_number,phone,industry,profession,state,city,years_experience"
ROWS = [
    f"d-{i},Agent {i},RE{100000 + i},(415) 555-01{i:02d},real_estate,agent,CA,Fresno,{i}" for i in range(20)
]
FILE = csv_text(HEADER, *ROWS)


@pytest.fixture
def parsed(monkeypatch):
    """Lines the row parser was given, in order."""
    lines: list[int] = []
    parse = RowParser.parse

    def counting(self, line, cells):
        lines.append(line)
        return parse(self, line, cells)

    monkeypatch.setattr(RowParser, "parse", counting)
    return lines


def counts(job: ImportJob) -> tuple[int, int, int, int, int]:
    return job.created_rows, job.updated_rows, job.unchanged_rows, job.failed_rows, job.warned_rows


def issues(job: ImportJob, severity: str = ImportRowError.Severity.WARNING) -> list[tuple[int, str, str]]:
    return list(
        ImportRowError.objects.filter(job=job, severity=severity)
        .order_by("line", "id")
        .values_list("line", "column", "message")
    )


def stamps() -> dict[str, object]:
    return dict(Agent.objects.values_list("id", "updated_at"))


def admin_edit(client, agent: Agent, **changes) -> None:
    """Save `agent` through the admin's change form with `changes`."""
    url = f"/admin/agents/agent/{agent.pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "photo"}
    data.update({k: json.dumps(v) for k, v in data.items() if isinstance(v, list | dict)})
    data.update(ghost_profile="on" if data.get("ghost_profile") else "", **changes)
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]


def test_the_same_file_again_is_all_unchanged_without_parsing_or_writing(parsed):
    first = run_import(FILE)
    assert counts(first) == (20, 0, 0, 0, 0)
    assert len(parsed) == 20 and ImportRowDigest.objects.count() == 20
    assert set(first.chunks.values_list("record_index", flat=True)) == {b""}, "emptied once done"
    before, digests = stamps(), list(ImportRowDigest.objects.order_by("agent_id").values())
    parsed.clear()

    second = run_import(FILE)
    assert counts(second) == (0, 0, 20, 0, 0)
    assert second.status == ImportJob.Status.COMPLETED and second.processed_rows == 20
    assert parsed == [], "no row of an unchanged file is parsed"
    assert stamps() == before
    assert not ImportJournalEntry.objects.filter(job=second).exists()
    assert list(ImportRowDigest.objects.order_by("agent_id").values()) == digests


def test_a_row_edited_in_the_admin_since_is_applied_again(admin_client, parsed):
    run_import(FILE)
    admin_edit(admin_client, Agent.objects.get(pk="d-3"), city="Oakland")
    parsed.clear()

    job = run_import(FILE)
    assert counts(job) == (0, 1, 19, 0, 0)
    assert parsed == [5], "only the edited agent's row (line 5) is parsed"
    assert Agent.objects.get(pk="d-3").city == "Fresno", "the file wins, as without digests"
    # Applied again: the next import skips it.
    parsed.clear()
    assert counts(run_import(FILE)) == (0, 0, 20, 0, 0) and parsed == []


def test_a_write_that_keeps_updated_at_is_seen_too(parsed):
    """QuerySet.update, raw SQL, a pull keeping D1's updated_at: the row version (xmin) still changes."""
    run_import(FILE)
    Agent.objects.filter(pk__in=["d-0", "d-19"]).update(years_experience=70)
    parsed.clear()

    job = run_import(FILE)
    assert counts(job) == (0, 2, 18, 0, 0)
    assert sorted(parsed) == [2, 21]
    assert dict(Agent.objects.filter(pk__in=["d-0", "d-19"]).values_list("id", "years_experience")) == {
        "d-0": 0,
        "d-19": 19,
    }


def test_a_deleted_agent_is_created_again(parsed):
    run_import(FILE)
    Agent.objects.filter(pk="d-7").delete()
    parsed.clear()

    job = run_import(FILE)
    assert counts(job) == (1, 0, 19, 0, 0)
    assert parsed == [9] and Agent.objects.filter(pk="d-7").exists()


def test_a_changed_licence_pattern_revalidates_and_reports_the_new_warnings(parsed):
    run_import(FILE)
    # Rows 0-9 hold RE1000xx licences, rows 10-19 RE1000yy with yy >= 10.
    IndustryConfig.objects.filter(pk="real_estate").update(license_pattern=r"RE10000\d")
    parsed.clear()

    job = run_import(FILE)
    assert len(parsed) == 20, "new rules: every row is checked again"
    assert counts(job) == (0, 0, 20, 0, 10)
    assert {line for line, column, _ in issues(job)} == set(range(12, 22))
    assert all(column == "license_number" for _, column, _ in issues(job))

    # The same rules again: skipped, and the stored warnings are reported again.
    parsed.clear()
    again = run_import(FILE)
    assert parsed == [] and counts(again) == (0, 0, 20, 0, 10)
    assert issues(again) == issues(job)


def test_a_disabled_industry_rejects_rows_that_were_imported_before(parsed):
    run_import(FILE)
    IndustryConfig.objects.filter(pk="real_estate").update(enabled=False)
    parsed.clear()

    job = run_import(FILE)
    assert counts(job) == (0, 0, 0, 20, 0) and len(parsed) == 20
    assert {m for _, _, m in issues(job, ImportRowError.Severity.ERROR)} == {
        "Industry 'real_estate' is disabled and accepts no agents."
    }


def test_rolling_back_the_second_import_invalidates_its_rows(parsed):
    run_import(FILE)
    changed = FILE.replace("Agent 4,", "Agent Four,")
    second = run_import(changed)
    assert counts(second) == (0, 1, 19, 0, 0)

    assert run_rollback(second).status == "completed"
    assert Agent.objects.get(pk="d-4").name == "Agent 4"
    parsed.clear()
    again = run_import(changed)
    assert counts(again) == (0, 1, 19, 0, 0) and parsed == [6]
    assert Agent.objects.get(pk="d-4").name == "Agent Four"


def test_rolling_back_the_first_import_deletes_and_the_file_creates_again():
    first = run_import(FILE)
    assert run_rollback(first).status == "completed" and not Agent.objects.exists()
    assert counts(run_import(FILE)) == (20, 0, 0, 0, 0)


def test_a_d1_pull_that_keeps_updated_at_invalidates(tmp_path, monkeypatch, parsed):
    from sync.d1_client import D1Client, SqliteTransport
    from sync.pull import d1_pull
    from sync.selectors import d1_migration_files
    from sync.sqlite_sql import Statement, d1_timestamp, split_sql

    monkeypatch.setattr("sync.services.d1_sync_request", lambda **kwargs: None)
    run_import(FILE)
    agent = Agent.objects.get(pk="d-2")
    client = D1Client(SqliteTransport(path=str(tmp_path / "d1.sqlite3")))
    for path in d1_migration_files()[1:]:
        client.execute([Statement(s) for s in split_sql(path.read_text())])
    # D1's version of d-2: another city, the same updated_at as PostgreSQL's.
    client.execute([
        Statement(
            "INSERT INTO agents (id, slug, name, license_number, phone, industry, profession, state, city, "
            "years_experience, created_at, updated_at) VALUES "
            "('d-2', ?, 'Agent 2', 'RE100002', '(415) 555-0102', 'real_estate', 'agent', 'CA', 'Pulled City', "
            "2, ?, ?)",
            (agent.slug, d1_timestamp(agent.created_at), d1_timestamp(agent.updated_at)),
        )
    ])  # fmt: skip
    pull = d1_pull(client=client, prefer="d1", mark=False).job
    assert pull.updated_rows == 1
    agent.refresh_from_db()
    assert agent.city == "Pulled City"
    parsed.clear()

    job = run_import(FILE)
    assert counts(job) == (0, 1, 19, 0, 0) and parsed == [4]
    assert Agent.objects.get(pk="d-2").city == "Fresno"


def test_another_import_that_changed_the_agent_invalidates(parsed):
    run_import(FILE)
    run_import(csv_text("id,name,state,city", "d-5,Agent 5,CA,Napa", "d-6,Agent 6,CA,Napa"))
    parsed.clear()

    job = run_import(FILE)
    assert counts(job) == (0, 2, 18, 0, 0) and sorted(parsed) == [7, 8]
    assert set(Agent.objects.values_list("city", flat=True)) == {"Fresno"}


def test_the_nightly_file_updates_exactly_its_changed_rows(tmp_path, generated_csv, parsed):
    source = generated_csv(450, seed=3)
    first = run_import(source.read_bytes(), chunk_size=100)
    assert first.created_rows == 450
    nightly = tmp_path / "nightly.csv"
    assert changed_file_write(source, nightly, every=100) == 5
    with nightly.open(newline="") as handle:
        changed = {
            row["id"]: int(row["years_experience"])
            for i, row in enumerate(csv.DictReader(handle))
            if i % 100 == 0
        }
    before = stamps()
    parsed.clear()

    job = run_import(nightly.read_bytes(), chunk_size=100)
    assert (job.created_rows, job.updated_rows, job.unchanged_rows, job.failed_rows) == (0, 5, 445, 0)
    assert len(parsed) == 5
    assert set(ImportJournalEntry.objects.filter(job=job).values_list("agent_id", flat=True)) == set(changed)
    assert dict(Agent.objects.filter(pk__in=changed).values_list("id", "years_experience")) == changed
    after = stamps()
    assert {i for i in after if after[i] != before[i]} == set(changed)
    assert job.warned_rows == first.warned_rows, "the generator's warnings are reported on every import"


def test_warnings_are_reported_again_for_skipped_rows(parsed):
    rows = [
        "w-1,Doubtful Phone,RE1,555-0001,real_estate,agent,TX,Austin,1",
        "w-2,Shared Licence,SHARED-9,(415) 555-0100,real_estate,agent,TX,Austin,2",
        "w-3,Shared Too,SHARED-9,(415) 555-0100,real_estate,agent,TX,Austin,3",
        "w-4,Clean,RE4,(415) 555-0100,real_estate,agent,TX,Austin,4",
    ]
    text = csv_text(HEADER, *rows)
    first = run_import(text)
    assert counts(first)[4] == 3
    parsed.clear()

    second = run_import(text)
    assert parsed == [] and counts(second) == (0, 0, 4, 0, 3)
    assert issues(second) == issues(first)
    raw = ImportRowError.objects.filter(job=second, line=2).values_list("raw_row", flat=True).first()
    assert raw == rows[0].split(",")

    # A third agent takes the licence since: the skipped rows say so; w-4 gets the warning too.
    AgentFactory(id="other", industry_id="real_estate", state="TX", license_number="SHARED-9")
    AgentFactory(id="other-4", industry_id="real_estate", state="TX", license_number="RE4")
    third = run_import(text)
    assert parsed == [] and counts(third) == (0, 0, 4, 0, 4)
    messages = {m for _, c, m in issues(third) if c == "license_number"}
    assert messages == {
        "licence SHARED-9 is shared by 3 agents in TX real_estate",
        "licence RE4 is shared by 2 agents in TX real_estate",
    }


def test_a_licence_the_same_chunk_gives_or_takes_is_counted_again_for_skipped_rows(parsed):
    def text(second_licence: str) -> str:
        return csv_text(
            HEADER,
            "s-1,Kept,LIC-1,(415) 555-0100,real_estate,agent,TX,Austin,1",
            f"s-2,Moving,{second_licence},(415) 555-0100,real_estate,agent,TX,Austin,2",
        )

    run_import(text("LIC-2"))
    # s-2 takes s-1's licence: s-1 is skipped, and now shares it.
    parsed.clear()
    job = run_import(text("LIC-1"))
    assert parsed == [3] and counts(job) == (0, 1, 1, 0, 2)
    assert [line for line, _, _ in issues(job)] == [2, 3]
    # s-2 gives it back: s-1 is skipped again, and no longer shares it.
    parsed.clear()
    job = run_import(text("LIC-2"))
    assert parsed == [3] and counts(job) == (0, 1, 1, 0, 0)


def test_rows_without_an_id_are_skipped_while_their_licence_finds_one_agent(parsed):
    header = "name,license_number,industry,state,city"
    text = csv_text(header, "By Licence,LIC-55,real_estate,TX,Austin", "Another,LIC-56,real_estate,TX,Dallas")
    assert counts(run_import(text)) == (2, 0, 0, 0, 0)
    parsed.clear()
    assert counts(run_import(text)) == (0, 0, 2, 0, 0) and parsed == []

    # A second agent now holds LIC-55: the row no longer says which agent it means.
    AgentFactory(id="twin", industry_id="real_estate", state="TX", license_number="LIC-55")
    job = run_import(text)
    assert parsed == [2] and counts(job) == (0, 0, 1, 1, 0)
    assert "2 agents share licence LIC-55" in issues(job, ImportRowError.Severity.ERROR)[0][2]


def test_rows_with_neither_id_nor_licence_create_an_agent_each_time():
    text = csv_text("name,state,city", "No Key,TX,Austin")
    run_import(text)
    assert counts(run_import(text)) == (1, 0, 0, 0, 0)
    assert Agent.objects.filter(name="No Key").count() == 2


def test_dry_runs_read_digests_and_write_none(parsed):
    preview = run_import(FILE, dry_run=True)
    assert counts(preview) == (20, 0, 0, 0, 0) and not ImportRowDigest.objects.exists()
    run_import(FILE)
    Agent.objects.filter(pk="d-1").update(city="Elsewhere")
    parsed.clear()

    preview = run_import(FILE, dry_run=True)
    assert counts(preview) == (0, 1, 19, 0, 0) and parsed == [3]
    assert Agent.objects.get(pk="d-1").city == "Elsewhere"


def test_create_only_reports_existing_agents_as_before():
    run_import(FILE)
    job = run_import(FILE, mode=ImportJob.Mode.CREATE_ONLY)
    assert counts(job) == (0, 0, 0, 20, 0)


def test_update_only_skips_like_upsert(parsed):
    run_import(FILE)
    parsed.clear()
    job = run_import(FILE, mode=ImportJob.Mode.UPDATE_ONLY)
    assert counts(job) == (0, 0, 20, 0, 0) and parsed == []


def test_another_column_mapping_is_another_digest(parsed):
    run_import(FILE)
    # The same cells under a header that maps the last column elsewhere: parsed again.
    swapped = FILE.replace("years_experience", "transactions_ytd", 1)
    parsed.clear()
    job = run_import(swapped)
    assert len(parsed) == 20 and counts(job)[1] == 19  # row 0: 0 transactions already


def test_the_digest_table_is_never_synced():
    from django.db import connection

    run_import(FILE)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'import_row_digests'::regclass AND NOT tgisinternal"
        )
        assert cursor.fetchone()[0] == 0
        cursor.execute(
            "SELECT count(*) FROM sync_change WHERE table_name NOT IN ('agents', 'industry_config')"
        )
        assert cursor.fetchone()[0] == 0


def test_rows_that_moved_to_other_lines_are_still_unchanged(parsed):
    run_import(FILE)
    parsed.clear()
    moved = csv_text(HEADER, *reversed(ROWS), newline="\r\n")  # another order, CRLF line ends
    assert counts(run_import(moved)) == (0, 0, 20, 0, 0) and parsed == []


def test_a_staged_file_is_skipped_the_second_time_even_with_rows_on_other_lines(parsed):
    """JSON (like XLSX) is staged as CSV whose first cell is the source line: not part of the digest."""
    records = [{"id": f"j-{i}", "name": f"Json {i}", "state": "TX", "city": "Austin"} for i in range(5)]
    assert counts(run_import(json.dumps(records), name="agents.json")) == (5, 0, 0, 0, 0)
    parsed.clear()
    again = [{"id": "j-new", "name": "Json New", "state": "TX", "city": "Austin"}, *records]
    body = json.dumps(again, indent=2)  # every record on other lines
    assert counts(run_import(body, name="agents.json")) == (1, 0, 5, 0, 0)
    assert len(parsed) == 1


def test_a_chunk_planned_without_a_record_index_parses_every_row(parsed):
    """Jobs planned before record indexes existed: their chunks stream and parse as before."""
    from django.core.files.base import ContentFile

    from imports.models import ImportChunk
    from imports.services import import_chunk_process, import_job_create, import_job_finalize, import_job_plan

    run_import(FILE)
    parsed.clear()
    job = import_job_create(file=ContentFile(FILE.encode()), original_name="agents.csv", start=False)
    assert import_job_plan(job_id=job.pk)
    assert all(job.chunks.values_list("record_index", flat=True))
    ImportChunk.objects.filter(job=job).update(record_index=b"")
    import_chunk_process(job_id=job.pk, chunk_index=0)
    import_job_finalize(job_id=job.pk)
    job.refresh_from_db()
    assert counts(job) == (0, 0, 20, 0, 0) and len(parsed) == 20
    assert bytes(ImportChunk.objects.get(job=job).record_index) == b"", "emptied once the chunk is done"
