"""The live system's own import files are accepted; what is doubtful in them is flagged, not rejected.

The files come from agents/tests/live_shape.py: numeric ids, one licence shared
by a thousand FL real-estate agents, licences that break the NPN / NMLS / CRD
patterns, phones like 555-0001 (DESIGN.md, "The live D1 we take over").
"""

import csv
import io
import json
from collections import Counter

import pytest
from django.core.management import call_command
from django.urls import reverse

from agents.models import Agent
from agents.tests.live_shape import SHARED_RE_LICENCE, live_agent_rows, live_csv, live_stage_files
from imports.models import ImportJob, ImportRowError
from imports.selectors import import_rejected_rows_csv

from .conftest import OLD_HEADER, csv_text, run_import

pytestmark = pytest.mark.django_db

STAGES = (10, 100, 1000)  # 1,110 rows: the first three stages of the live load
PATTERN_LABELS = {"insurance": "NPN", "mortgage": "NMLS ID", "financial": "FINRA CRD"}
WARNING = ImportRowError.Severity.WARNING


def expected_warnings(rows: list[dict]) -> dict[int, set[tuple[str, str]]]:
    """{line: {(column, message fragment)}} every live row must carry, worked out here in Python."""
    holders = Counter((r["industry"], r["state"], r["license_number"]) for r in rows)
    out = {}
    for line, r in enumerate(rows, start=2):
        expected = {("phone", f"'{r['phone']}' is not a 10-digit US phone number")}
        label = PATTERN_LABELS.get(r["industry"])
        if label:
            expected.add(("license_number", f"'{r['license_number']}' is not a recognised {label}"))
        n = holders[(r["industry"], r["state"], r["license_number"])]
        if n > 1:
            expected.add(
                ("license_number", f"licence {r['license_number']} is shared by {n:,} agents in {r['state']} {r['industry']}")
            )  # fmt: skip
        out[line] = expected
    return out


def stored_warnings(job: ImportJob) -> dict[int, list[tuple[str, str, str]]]:
    out: dict[int, list[tuple[str, str, str]]] = {}
    for line, column, value, message in job.row_errors.filter(severity=WARNING).values_list(
        "line", "column", "value", "message"
    ):
        out.setdefault(line, []).append((column, value, message))
    return out


def assert_warned_as_expected(job: ImportJob, rows: list[dict]) -> None:
    expected = expected_warnings(rows)
    stored = stored_warnings(job)
    assert stored.keys() == expected.keys()
    for line, fragments in expected.items():
        got = stored[line]
        assert len(got) == len(fragments), (line, got)
        row = rows[line - 2]
        for column, fragment in fragments:
            assert any(c == column and v == row[column] and m.startswith(fragment) for c, v, m in got), (
                line,
                fragment,
                got,
            )


def test_live_file_imports_every_row_and_flags_what_is_doubtful():
    rows = list(live_agent_rows(STAGES))
    assert len(rows) == 1110
    # One chunk: a shared licence is counted when its chunk is written, so only then are the
    # counts of a first import final (the re-import below runs in several chunks).
    job = run_import(live_csv(rows))
    assert job.status == ImportJob.Status.COMPLETED
    assert (job.total_rows, job.created_rows, job.failed_rows) == (1110, 1110, 0)
    assert Agent.objects.count() == 1110
    assert job.warned_rows == 1110  # every phone is like 555-0001
    assert not job.row_errors.filter(severity=ImportRowError.Severity.ERROR).exists()
    assert_warned_as_expected(job, rows)
    # Spot checks against the data itself, not the helper above.
    re_holders = sum(1 for r in rows if r["license_number"] == SHARED_RE_LICENCE)
    assert re_holders > 200
    shared = job.row_errors.filter(severity=WARNING, message__contains=SHARED_RE_LICENCE)
    assert shared.count() == re_holders
    assert {w.message for w in shared} == {
        f"licence {SHARED_RE_LICENCE} is shared by {re_holders:,} agents in FL real_estate"
    }
    mortgage = job.row_errors.get(severity=WARNING, line=6, message__contains="NMLS")  # id 5
    assert (mortgage.column, mortgage.value) == ("license_number", "MTG34567")
    agent = Agent.objects.get(pk="5")
    assert (agent.license_number, agent.phone, agent.industry_id) == ("MTG34567", "555-0005", "mortgage")

    # The same file again: nothing to write, and the warnings are reported again.
    again = run_import(live_csv(rows), chunk_size=400)
    assert again.chunks.count() == 3
    assert (again.created_rows, again.updated_rows, again.unchanged_rows, again.failed_rows) == (
        0,
        0,
        1110,
        0,
    )
    assert again.status == ImportJob.Status.COMPLETED and again.warned_rows == 1110
    assert_warned_as_expected(again, rows)
    assert again.row_errors.count() == job.row_errors.count()


def test_dry_run_of_the_live_file_predicts_the_shared_licences():
    rows = list(live_agent_rows(STAGES))
    job = run_import(live_csv(rows), dry_run=True, chunk_size=400)
    assert (job.created_rows, job.failed_rows, job.warned_rows) == (1110, 0, 1110)
    assert not Agent.objects.exists()
    # Holders counted across chunks as if written: the other chunks' rows are not there yet,
    # so a dry run counts this chunk's rows plus what PostgreSQL already holds.
    assert job.row_errors.filter(severity=WARNING, message__contains="is shared by").exists()
    assert job.row_errors.filter(severity=WARNING, column="phone").count() == 1110


def test_rows_without_id_are_matched_on_a_licence_only_one_agent_holds():
    rows = list(live_agent_rows(STAGES))
    run_import(live_csv(rows), chunk_size=400)
    unique = next(
        r for r in rows if r["industry"] == "real_estate" and r["license_number"] != SHARED_RE_LICENCE
    )
    holders = sum(1 for r in rows if r["license_number"] == SHARED_RE_LICENCE)
    job = run_import(csv_text(
        "name,license_number,email,phone,industry,state,city",
        f"Renamed Agent,{unique['license_number']},new@example.com,(415) 555-0123,real_estate,{unique['state']},Austin",
        f"Who Am I,{SHARED_RE_LICENCE},who@example.com,,real_estate,FL,Miami",
    ))  # fmt: skip
    assert (job.created_rows, job.updated_rows, job.failed_rows) == (0, 1, 1)
    assert job.status == ImportJob.Status.COMPLETED_WITH_ERRORS
    agent = Agent.objects.get(pk=unique["id"])
    assert (agent.name, agent.email, agent.phone) == ("Renamed Agent", "new@example.com", "(415) 555-0123")
    error = job.row_errors.get(severity=ImportRowError.Severity.ERROR)
    assert (error.line, error.column, error.value) == (3, "license_number", SHARED_RE_LICENCE)
    assert (
        error.message
        == f"{holders:,} agents share licence {SHARED_RE_LICENCE} in FL real_estate; give the id"
    )
    assert Agent.objects.count() == 1110


def test_warnings_csv_download_and_rejected_csv_exclude_each_other(admin_client):
    rows = list(live_agent_rows((10,)))
    content = live_csv(rows) + "bad-1,Bad State,RE1,bad@example.com,415-555-0123,real_estate,ZZ,Nowhere\n"
    job = run_import(content)
    assert (job.created_rows, job.failed_rows, job.warned_rows) == (10, 1, 10)

    rejected = admin_client.get(reverse("admin:imports_importjob_rejected", args=[job.pk]))
    rejected_rows = list(csv.reader(io.StringIO(b"".join(rejected.streaming_content).decode("utf-8-sig"))))
    assert rejected_rows[0] == [*OLD_HEADER.split(","), "error"]
    assert [r[0] for r in rejected_rows[1:]] == ["bad-1"]
    assert "Unknown state code" in rejected_rows[1][-1] and "10-digit" not in rejected_rows[1][-1]

    response = admin_client.get(reverse("admin:imports_importjob_warnings", args=[job.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="import-{job.pk}-warnings.csv"'
    warned = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert warned[0] == [*OLD_HEADER.split(","), "warning"]
    assert [r[:8] for r in warned[1:]] == [[r[c] for c in OLD_HEADER.split(",")] for r in rows]
    insurance = warned[4]  # id 4 (line 5): INS45678 is off the NPN pattern; phone 555-0004
    assert "line 5, license_number: 'INS45678' is not a recognised NPN" in insurance[-1]
    assert "line 5, phone: '555-0004' is not a 10-digit" in insurance[-1]
    realtor = warned[1]  # id 1 (line 2): one of the three FL real-estate agents on RE123456
    assert "line 2, license_number: licence RE123456 is shared by 3 agents in FL real_estate" in realtor[-1]
    # The selector behind both downloads, asked for errors, never yields a warning row.
    text = "".join(import_rejected_rows_csv(job=job))
    assert "555-0004" not in text and "bad-1" in text

    page = admin_client.get(reverse("admin:imports_importjob_change", args=[job.pk])).content.decode()
    assert 'id="ef-warnings-download"' in page and 'id="ef-rejected-download"' in page
    assert "Warnings (" in page and "is not a recognised NPN" in page
    assert "Source: File." in page and job.source == ImportJob.Source.FILE
    progress = admin_client.get(reverse("admin:imports_importjob_progress", args=[job.pk])).json()
    assert (progress["failed"], progress["warned"]) == (1, 10)


@pytest.mark.django_db(transaction=True)
def test_commands_report_warned_and_exit_zero(tmp_path, capsys):
    path = tmp_path / "live.csv"
    path.write_text(live_csv(live_agent_rows((10,))))
    try:
        call_command("import_agents", str(path), "--json")
    except SystemExit as exc:  # pragma: no cover - the assertion below reports it
        pytest.fail(f"warnings alone changed the exit code to {exc.code}")
    summary = json.loads(capsys.readouterr().out)
    assert (summary["status"], summary["created"], summary["failed"], summary["warned"]) == (
        "completed",
        10,
        0,
        10,
    )
    assert summary["errors"] == []
    assert {"line": 2, "column": "phone"}.items() <= summary["row_warnings"][0].items()

    call_command("import_status", str(summary["job_id"]), "--json")
    assert json.loads(capsys.readouterr().out)["warned"] == 10
    call_command("import_status", str(summary["job_id"]))
    assert "10 with warnings" in capsys.readouterr().out
    call_command("import_agents", str(path))
    out = capsys.readouterr().out
    assert "10 unchanged, 0 rejected, 10 with warnings" in out and "(warning)" in out


@pytest.mark.slow
def test_the_four_live_stage_files_import_in_full():
    rows = list(live_agent_rows())
    assert len(rows) == 11110
    for stage in live_stage_files():
        job = run_import(stage)
        assert job.status == ImportJob.Status.COMPLETED
        assert job.failed_rows == 0 and job.created_rows == job.total_rows == job.warned_rows
    assert Agent.objects.count() == 11110
    assert (
        Agent.objects.filter(license_number=SHARED_RE_LICENCE, state="FL", industry_id="real_estate").count()
        == 1000
    )
    # Importing the whole live set again as one file: all unchanged, every row warned as computed here.
    again = run_import(live_csv(rows))
    assert (again.unchanged_rows, again.failed_rows, again.warned_rows) == (11110, 0, 11110)
    assert_warned_as_expected(again, rows)
    job = run_import(
        csv_text("name,industry,state,license_number", f"Nobody,real_estate,FL,{SHARED_RE_LICENCE}")
    )
    assert (
        job.row_errors.get().message == "1,000 agents share licence RE123456 in FL real_estate; give the id"
    )
