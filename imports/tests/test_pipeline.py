"""The import pipeline end to end on PostgreSQL, chunk by chunk in this process."""

import csv
import io
import json

import pytest

from agents.models import Agent
from agents.tests.factories import AgentFactory
from imports.models import ImportJob, ImportJournalEntry, ImportRowError
from imports.selectors import import_rejected_rows_csv

from .conftest import OLD_HEADER, csv_text, run_import

pytestmark = pytest.mark.django_db


def test_old_system_format_imports_as_is():
    job = run_import(csv_text(
        OLD_HEADER,
        "a-1,José O'Brien,CA-123,jose@example.com,+1 555 0100,real_estate,CA,San Diego",
        'a-2,"Smith, Jr., Ann",NMLS 1,ann@example.com,,mortgage,TX,Austin',
        "a-3,Bo Li,77,bo@example.com,,insurance,NY,Albany",
    ))  # fmt: skip
    # An off-pattern licence and an odd phone are imported, with warnings naming line and column.
    assert job.status == ImportJob.Status.COMPLETED
    assert (job.created_rows, job.failed_rows, job.warned_rows) == (3, 0, 2)
    assert not job.row_errors.filter(severity=ImportRowError.Severity.ERROR).exists()
    warning = job.row_errors.get(severity=ImportRowError.Severity.WARNING, line=3)
    assert warning.column == "license_number"
    assert "NMLS ID" in warning.message and warning.value == "NMLS 1"
    phone = job.row_errors.get(severity=ImportRowError.Severity.WARNING, line=2)
    assert (phone.column, phone.value) == ("phone", "+1 555 0100") and "10-digit" in phone.message
    assert Agent.objects.get(pk="a-2").license_number == "NMLS 1"
    agent = Agent.objects.get(pk="a-1")
    assert (agent.name, agent.state, agent.industry_id, agent.city) == (
        "José O'Brien",
        "CA",
        "real_estate",
        "San Diego",
    )
    assert agent.slug.startswith("jose-obrien-")
    # Columns the file does not carry get the D1 defaults.
    assert agent.property_types == ["single_family", "condo"] and agent.fake_leads_count == 7


def test_generated_file_counts_and_reimport_is_unchanged(generated_csv):
    from agents.generator import invalid_rows_expected

    path = generated_csv(3000, seed=11, invalid_rate=0.02)
    invalid = invalid_rows_expected(count=3000, seed=11, invalid_rate=0.02)
    job = run_import(path.read_bytes(), chunk_size=700)
    assert job.chunks.count() == 5
    assert job.total_rows == 3000
    assert job.failed_rows == len(invalid)
    assert job.created_rows == 3000 - len(invalid)
    assert Agent.objects.count() == job.created_rows
    assert job.status == ImportJob.Status.COMPLETED_WITH_ERRORS
    # The rejected rows are exactly the generator's invalid ones, each named by its own line.
    from agents.generator import agent_id_for

    first_errors = job.row_errors.exclude(raw_row=None)
    assert {e.raw_row[0] for e in first_errors} == {agent_id_for(seed=11, index=i) for i in invalid}
    assert first_errors.values("line").distinct().count() == len(invalid)
    again = run_import(path.read_bytes(), chunk_size=700)
    assert (again.created_rows, again.updated_rows) == (0, 0)
    assert again.unchanged_rows == 3000 - len(invalid)
    assert Agent.objects.count() == job.created_rows
    assert not ImportJournalEntry.objects.filter(job=again).exists()


def test_update_changes_only_what_differs_and_journals_prior_values():
    first = run_import(
        csv_text("id,name,state,city,years_experience", "u-1,Ann,CA,Fresno,3", "u-2,Bob,CA,Napa,4")
    )
    assert first.created_rows == 2
    before = Agent.objects.get(pk="u-1")
    job = run_import(
        csv_text("id,name,state,city,years_experience", "u-1,Ann,CA,Fresno,9", "u-2,Bob,CA,Napa,4")
    )
    assert (job.created_rows, job.updated_rows, job.unchanged_rows) == (0, 1, 1)
    after = Agent.objects.get(pk="u-1")
    assert after.years_experience == 9 and after.updated_at > before.updated_at
    entry = ImportJournalEntry.objects.get(job=job)
    assert entry.action == "update" and entry.agent_id == "u-1"
    assert entry.before["years_experience"] == 3 and entry.before["city"] == "Fresno"
    assert entry.before["updated_at"] is not None
    assert entry.after_updated_at == after.updated_at


def test_columns_absent_from_the_file_are_kept_on_update():
    AgentFactory(id="k-1", name="Kim", state="WA", brokerage="Keep Me", bio="Long bio")
    job = run_import(csv_text("id,name,state", "k-1,Kim Lee,WA"))
    assert job.updated_rows == 1
    agent = Agent.objects.get(pk="k-1")
    assert (agent.name, agent.brokerage, agent.bio) == ("Kim Lee", "Keep Me", "Long bio")


def test_natural_key_matches_rows_without_id():
    existing = AgentFactory(industry_id="insurance", profession="agent", state="NY", license_number="555")
    job = run_import(csv_text("name,industry,state,license_number,city", "New Name,insurance,ny,555,Albany",
                              "Fresh,insurance,NY,556,Albany"))  # fmt: skip
    assert (job.created_rows, job.updated_rows) == (1, 1)
    existing.refresh_from_db()
    assert existing.name == "New Name" and existing.city == "Albany"


def test_duplicate_keys_in_a_file_later_row_wins_across_chunks():
    rows = [f"d-{i},Person {i},CA" for i in range(250)]
    rows.append("d-10,Winner,CA")  # repeats d-10 in another chunk
    job = run_import(csv_text("id,name,state", *rows), chunk_size=100)
    assert job.failed_rows == 1
    error = job.row_errors.get()
    assert error.line == 12 and "replaced by line 252" in error.message
    assert Agent.objects.get(pk="d-10").name == "Winner"
    assert job.created_rows == 250


def test_same_licence_with_two_ids_in_one_file_is_not_a_database_error():
    # Each row has its own id, so both are agents of their own; the shared licence is a warning.
    job = run_import(csv_text("id,name,state,industry,license_number",
                              "z-1,First,CA,real_estate,RE-9", "z-2,Second,CA,real_estate,RE-9"))  # fmt: skip
    assert (job.created_rows, job.failed_rows, job.warned_rows) == (2, 0, 2)
    assert set(Agent.objects.filter(license_number="RE-9").values_list("pk", flat=True)) == {"z-1", "z-2"}
    warnings = job.row_errors.filter(severity=ImportRowError.Severity.WARNING).order_by("line")
    assert [(w.line, w.column) for w in warnings] == [(2, "license_number"), (3, "license_number")]
    assert all(w.message == "licence RE-9 is shared by 2 agents in CA real_estate" for w in warnings)


def test_licence_held_by_another_agent_is_a_warning_when_the_row_has_an_id():
    AgentFactory(id="owner", industry_id="real_estate", state="CA", license_number="RE-1")
    job = run_import(csv_text("id,name,state,industry,license_number", "other,Other,CA,real_estate,RE-1"))
    assert (job.created_rows, job.failed_rows, job.warned_rows) == (1, 0, 1)
    warning = job.row_errors.get()
    assert warning.severity == ImportRowError.Severity.WARNING
    assert (
        warning.column == "license_number"
        and warning.message == "licence RE-1 is shared by 2 agents in CA real_estate"
    )
    assert Agent.objects.get(pk="owner").name != "Other"


def test_row_without_id_on_a_shared_licence_is_rejected_asking_for_the_id():
    for i in range(3):
        AgentFactory(
            id=f"sh-{i}", name=f"Holder {i}", industry_id="real_estate", state="FL", license_number="RE123456"
        )
    job = run_import(csv_text("name,industry,state,license_number", "Who Am I,real_estate,FL,RE123456"))
    assert (job.created_rows, job.updated_rows, job.failed_rows) == (0, 0, 1)
    error = job.row_errors.get()
    assert (error.severity, error.line, error.column, error.value) == (
        "error",
        2,
        "license_number",
        "RE123456",
    )
    assert error.message == "3 agents share licence RE123456 in FL real_estate; give the id"
    assert not Agent.objects.filter(name="Who Am I").exists()
    # Given the id, the same row updates that one agent (and is warned about the shared licence).
    job = run_import(
        csv_text("id,name,industry,state,license_number", "sh-1,Who Am I,real_estate,FL,RE123456")
    )
    assert (job.updated_rows, job.failed_rows, job.warned_rows) == (1, 0, 1)
    assert Agent.objects.get(pk="sh-1").name == "Who Am I"
    assert "shared by 3 agents" in job.row_errors.get().message


def test_modes():
    AgentFactory(id="m-1", name="Exists", state="CA")
    created = run_import(csv_text("id,name,state", "m-1,Exists,CA", "m-2,New,CA"), mode="create_only")
    assert (created.created_rows, created.failed_rows) == (1, 1)
    assert "create only" in created.row_errors.get().message
    updated = run_import(csv_text("id,name,state", "m-1,Changed,CA", "m-3,Nope,CA"), mode="update_only")
    assert (updated.updated_rows, updated.failed_rows) == (1, 1)
    assert not Agent.objects.filter(pk="m-3").exists()


def test_dry_run_writes_no_agents():
    AgentFactory(id="dr-1", name="Before", state="CA")
    job = run_import(csv_text("id,name,state", "dr-1,After,CA", "dr-2,New,CA", "dr-3,Bad,ZZ"), dry_run=True)
    assert (job.created_rows, job.updated_rows, job.failed_rows) == (1, 1, 1)
    assert Agent.objects.get(pk="dr-1").name == "Before"
    assert not Agent.objects.filter(pk="dr-2").exists()
    assert not ImportJournalEntry.objects.filter(job=job).exists()


def test_rejected_rows_csv_has_original_columns_and_reasons():
    job = run_import(csv_text("id,name,state,email", "r-1,Good,CA,a@b.co", 'r-2,"Bad, Row",ZZ,nope'))
    text = "".join(import_rejected_rows_csv(job=job)).lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["id", "name", "state", "email", "error"]
    assert rows[1][:4] == ["r-2", "Bad, Row", "ZZ", "nope"]
    assert "state" in rows[1][4] and "email" in rows[1][4]
    assert len(rows) == 2
    # Fixed and imported again, the rejected row lands.
    fixed = text.replace(",ZZ,nope,", ",NV,ok@example.com,")
    again = run_import(fixed.encode())
    assert again.created_rows == 1 and Agent.objects.get(pk="r-2").state == "NV"


def test_json_and_xlsx_formats(tmp_path):
    from openpyxl import Workbook

    items = [{"id": "j-1", "name": "Jay", "state": "OR", "service_zipcodes": ["97201"], "ghost_profile": False},
             {"id": "j-2", "name": "Kay", "state": "OR", "service_zipcodes": "97201"}]  # fmt: skip
    job = run_import(json.dumps(items, indent=2), name="agents.json")
    assert (job.created_rows, job.failed_rows) == (1, 1)
    error = job.row_errors.get()
    assert error.column == "service_zipcodes" and error.line == 11
    assert Agent.objects.get(pk="j-1").ghost_profile is False

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["ID", "Full Name", "State", "Years Experience"])
    sheet.append(["x-1", "Xavier", "TX", 12])
    sheet.append(["x-2", "Yolanda", "TX", "many"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    job = run_import(buffer.getvalue(), name="agents.xlsx")
    assert (job.created_rows, job.failed_rows) == (1, 1)
    assert job.row_errors.get().line == 3
    assert Agent.objects.get(pk="x-1").years_experience == 12


def test_unknown_columns_are_a_warning():
    job = run_import(csv_text("id,name,state,favourite_colour", "w-1,Wen,CA,blue"))
    assert job.status == ImportJob.Status.COMPLETED
    assert job.warnings == ["Unknown columns ignored: favourite_colour."]


def test_a_chunk_processed_twice_counts_once():
    from imports.services import import_chunk_process, import_job_finalize

    job = run_import(csv_text("id,name,state", "t-1,Tia,CA", "t-2,Tom,CA"))
    assert import_chunk_process(job_id=job.pk, chunk_index=0) is False
    import_job_finalize(job_id=job.pk)
    job.refresh_from_db()
    assert job.created_rows == 2
    assert ImportJournalEntry.objects.filter(job=job).count() == 2
    assert ImportRowError.objects.filter(job=job).count() == 0
