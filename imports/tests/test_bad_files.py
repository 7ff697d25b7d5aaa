"""A corpus of messy files, each with its expected outcome; failures write nothing."""

import io
import zipfile

import pytest

from agents.models import Agent
from imports.models import ImportJob, ImportJournalEntry

from .conftest import csv_text, run_import

pytestmark = pytest.mark.django_db

GOOD_ROWS = ["b-1,Ann,CA", "b-2,Bob,NY"]


def assert_failed_without_writes(job: ImportJob, *fragments: str) -> None:
    assert job.status == ImportJob.Status.FAILED, job.error_message
    for fragment in fragments:
        assert fragment in job.error_message
    assert Agent.objects.count() == 0
    assert not ImportJournalEntry.objects.exists()
    assert job.chunks.count() == 0


def test_bom_is_fine():
    job = run_import(b"\xef\xbb\xbf" + csv_text("id,name,state", *GOOD_ROWS).encode())
    assert job.status == ImportJob.Status.COMPLETED and job.created_rows == 2


def test_crlf_is_fine():
    job = run_import(csv_text("id,name,state", *GOOD_ROWS, 'b-3,"Multi\r\nLine Name",TX', newline="\r\n"))
    assert job.status == ImportJob.Status.COMPLETED and job.created_rows == 3


def test_latin1_without_the_option_fails_naming_the_line():
    data = csv_text("id,name,state", "b-1,Ann,CA", "b-2,José,CA").encode("latin-1")
    job = run_import(data, name="old.csv")
    assert_failed_without_writes(job, "old.csv, line 3", "not valid utf-8", "encoding")
    job = run_import(data, name="old.csv", encoding="latin-1")
    assert job.status == ImportJob.Status.COMPLETED
    assert Agent.objects.get(pk="b-2").name == "José"


def test_unbalanced_quote_fails_naming_the_line():
    job = run_import(csv_text("id,name,state", "b-1,Ann,CA", 'b-2,"Bob,NY', "b-3,Cy,TX"), name="q.csv")
    assert_failed_without_writes(job, "q.csv, line 3", "unbalanced quote")


def test_empty_file_fails():
    assert_failed_without_writes(run_import(b"", name="empty.csv"), "empty.csv: the file is empty")


def test_header_only_fails():
    assert_failed_without_writes(run_import("id,name,state\n", name="h.csv"), "header but no data rows")


def test_missing_required_column_fails():
    job = run_import(csv_text("id,name,city", "b-1,Ann,Fresno"), name="m.csv")
    assert_failed_without_writes(job, "m.csv: missing required column(s): state")


def test_duplicate_headers_fail():
    job = run_import(csv_text("id,name,state,Name", "b-1,Ann,CA,Ann"), name="d.csv")
    assert_failed_without_writes(job, "duplicate header", "'Name'")


def test_duplicate_keys_later_row_wins():
    job = run_import(csv_text("id,name,state", "b-1,First,CA", "b-1,Second,CA"))
    assert (job.created_rows, job.failed_rows) == (1, 1)
    assert Agent.objects.get(pk="b-1").name == "Second"
    assert "replaced by line 3" in job.row_errors.get().message


def test_field_larger_than_the_csv_limit_fails_naming_the_line():
    huge = "x" * 200_000
    job = run_import(
        csv_text("id,name,state,bio", "b-1,Ann,CA,short", f'b-2,Bob,NY,"{huge}"'), name="big.csv"
    )
    assert_failed_without_writes(job, "big.csv, line 3", "larger than")


def test_bad_json_cell_is_a_row_error():
    job = run_import(
        csv_text("id,name,state,service_zipcodes", 'b-1,Ann,CA,"[""90210"""', 'b-2,Bob,NY,"[""10001""]"')
    )
    assert (job.created_rows, job.failed_rows) == (1, 1)
    error = job.row_errors.get()
    assert (error.line, error.column) == (2, "service_zipcodes") and "not valid JSON" in error.message


def _xlsx(rows) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    for row in rows:
        workbook.active.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def test_xlsx_file_imports():
    job = run_import(_xlsx([["id", "name", "state"], ["b-1", "Ann", "CA"], [None, None, None], ["b-2", "Bob", "NY"]]),
                     name="sheet.xlsx")  # fmt: skip
    assert job.status == ImportJob.Status.COMPLETED and job.created_rows == 2


def test_xlsx_named_csv_fails():
    job = run_import(_xlsx([["id", "name", "state"], ["b-1", "Ann", "CA"]]), name="really.csv")
    assert_failed_without_writes(job, "ZIP/XLSX archive, not CSV")


def test_zip_bomb_fails():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (20 * 1024 * 1024))
    job = run_import(out.getvalue(), name="bomb.xlsx")
    assert_failed_without_writes(job, "bomb.xlsx", "zip bomb")


def test_binary_bytes_named_csv_fail():
    job = run_import(bytes(range(256)) * 40, name="photo.csv")
    assert_failed_without_writes(job, "photo.csv: binary content")


def test_json_that_is_not_an_array_fails():
    job = run_import('{"id": "b-1"}', name="obj.json")
    assert_failed_without_writes(job, "array of objects")
