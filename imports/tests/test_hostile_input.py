"""Issue 12: hostile cells and files. One bad cell is a row error, never a failed chunk or a stuck sync."""

import io
import json

import pytest
from django.core.files.base import ContentFile
from django.db import connection

from agents.models import Agent
from imports.formats import ImportFileError, csv_chunk_rows, csv_records, json_objects
from imports.models import ImportJob
from imports.rows import RowParser
from imports.services import (
    import_chunk_fail,
    import_chunk_process,
    import_job_create,
    import_job_finalize,
    import_job_plan,
)
from imports.writer import ChunkWriter, write_isolating_bad_rows

from .conftest import csv_text, run_import
from .memory_probe import xlsx_shared_strings

pytestmark = pytest.mark.django_db

OVERFLOWING = "1" + "0" * 400 + ".5"  # jsonb keeps it; Python's json reads it back as inf


def names(count: int, start: int = 1, prefix: str = "h") -> list[str]:
    return [f"{prefix}-{i},Name {i},CA" for i in range(start, start + count)]


def errors(job: ImportJob) -> list[tuple[int, str]]:
    return list(job.row_errors.order_by("line").values_list("line", "column"))


# --- finding 1: JSON values PostgreSQL or the D1 sync cannot take --------------------------


def _quoted(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"'


@pytest.mark.parametrize(
    "cell",
    [
        '{"max": NaN}',
        '{"max": Infinity}',
        f'{{"max": {OVERFLOWING}}}',
        '{"a": ' + "[" * 40 + "]" * 40 + "}",
        '{"a": "x\\u0000"}',
        '{"\\ud800": 1}',
    ],
    ids=["nan", "infinity", "overflow", "deep", "nul", "surrogate"],
)
def test_json_cells_postgres_or_the_sync_cannot_take_are_row_errors(cell):
    # features: a JSON object the validator takes with any values, so only the JSON itself is at stake
    job = run_import(
        csv_text(
            "id,name,state,features",
            "h-1,Ann,CA,{}",
            f"h-2,Bob,NY,{_quoted(cell)}",
            'h-3,Cy,TX,"{""max"": 1.5}"',
        )
    )
    assert job.status == ImportJob.Status.COMPLETED_WITH_ERRORS, job.error_message
    assert (job.created_rows, job.failed_rows) == (2, 1)
    assert errors(job) == [(3, "features")]
    assert not Agent.objects.filter(pk="h-2").exists()


def test_json_file_values_postgres_cannot_take_are_row_errors():
    good = {"id": "j-0", "name": "Ann", "state": "CA", "service_regions": ["x"]}
    text = "[" + ",\n".join([
        json.dumps(good),
        '{"id": "j-1", "name": "Bob", "state": "NY", "features": {"a": [NaN]}}',
        '{"id": "j-2", "name": "Cy", "state": "TX", "features": {"a": 1e400}}',
        '{"id": "j-3", "name": "D\\u0000n", "state": "TX"}',
        '{"id": "j-4", "name": "E\\ud800", "state": "TX"}',
        '{"id": "j-5", "name": "Fay", "state": "TX", "specializations": ' + "[" * 50 + "]" * 50 + "}",
        '{"id": "j-6", "name": "Gus", "state": "TX", "price_ranges": {"max": Infinity}}',
    ]) + "]"  # fmt: skip
    job = run_import(text, name="agents.json")
    assert job.status == ImportJob.Status.COMPLETED_WITH_ERRORS, job.error_message
    assert (job.created_rows, job.failed_rows) == (1, 6)
    assert errors(job) == [
        (2, "features"), (3, "features"), (4, "name"), (5, "name"),
        (6, "specializations"), (7, "price_ranges"),
    ]  # fmt: skip
    messages = list(job.row_errors.order_by("line").values_list("message", flat=True))
    assert "NUL" in messages[2] and "unpaired surrogate" in messages[3]
    assert list(Agent.objects.values_list("id", flat=True)) == ["j-0"]


# --- finding 2: NUL and unpaired surrogates; data PostgreSQL refuses ------------------------


def test_nul_bytes_anywhere_in_a_csv_are_row_errors_naming_line_and_column():
    filler = names(4000)  # ~80 KB: the second NUL is past the first 64 KB the format check reads
    data = csv_text("id,name,state,city", "n-1,A\x00nn,CA,X", *filler, "n-2,Bob,NY,Alb\x00any")
    assert data.encode().index(b"\x00", 100) > 65536
    job = run_import(data, chunk_size=1000)
    assert job.status == ImportJob.Status.COMPLETED_WITH_ERRORS, job.error_message
    assert job.created_rows == len(filler)
    assert errors(job) == [(2, "name"), (len(filler) + 3, "city")]
    first = job.row_errors.order_by("line").first()
    assert "NUL" in first.message
    assert first.value == "A\ufffdnn" and first.raw_row[1] == "A\ufffdnn"  # stored, and readable


def test_a_value_postgres_refuses_isolates_the_row_and_the_rest_of_the_chunk_lands():
    """The net under the parser: a data error (SQLSTATE class 22) from the write is bisected to its row."""
    with connection.cursor() as cursor:  # a real PostgreSQL refusal, rolled back with the test
        cursor.execute(
            "CREATE FUNCTION test_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.name LIKE 'Poison%' THEN RAISE EXCEPTION 'poisoned value' USING ERRCODE = '22023'; END IF; "
            "RETURN NEW; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER test_poison BEFORE INSERT OR UPDATE ON agents FOR EACH ROW EXECUTE FUNCTION test_poison()"
        )
    body = [*names(150), "p-1,Poison Ivy,CA", *names(100, start=500), "p-2,Poison Oak,TX"]
    job = run_import(csv_text("id,name,state", *body), chunk_size=100)
    assert job.status == ImportJob.Status.COMPLETED_WITH_ERRORS, job.error_message
    assert (job.created_rows, job.failed_rows) == (250, 2)
    assert errors(job) == [(152, ""), (253, "")]
    for error in job.row_errors.all():
        assert "PostgreSQL refused the row" in error.message and "poisoned value" in error.message
    assert Agent.objects.count() == 250 and not Agent.objects.filter(name__startswith="Poison").exists()


def test_a_value_psycopg_refuses_in_the_copy_is_isolated_too(industry_rules):
    """The same net for a client-side refusal (a NUL in a COPY row), with rows built past the parser."""
    job = import_job_create(file=ContentFile(b"id,name,state\n"), original_name="a.csv", start=False)
    columns = ["id", "name", "state", "city"]
    parser = RowParser(columns, industry_rules)
    rows = [parser.parse(i + 2, [f"c-{i}", f"Name {i}", "CA", "Town"]) for i in range(9)]
    rows[4].values["city"] = "To\x00wn"  # what the parser now refuses: here it reaches the COPY
    writer = ChunkWriter(job_id=job.pk, chunk_index=0, columns=set(columns), mode="upsert", dry_run=False)
    result, refused = write_isolating_bad_rows(writer, writer.resolve(rows))
    assert (result.created, [r.line for r in refused]) == (8, [6])
    assert "PostgreSQL refused the row" in refused[0].errors[0].message
    assert Agent.objects.count() == 8 and not Agent.objects.filter(pk="c-4").exists()


def test_a_chunk_failing_for_infrastructure_says_what_landed_and_what_finishes_the_job():
    content = csv_text("id,name,state", *names(300)).encode()
    job = import_job_create(file=ContentFile(content), original_name="a.csv", start=False, chunk_size=100)
    assert import_job_plan(job_id=job.pk)
    import_chunk_process(job_id=job.pk, chunk_index=0)
    import_chunk_fail(job_id=job.pk, chunk_index=1, message="failed 6 times: OperationalError: server closed")
    import_chunk_process(job_id=job.pk, chunk_index=2)
    import_job_finalize(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    message = job.error_message
    assert "1 of 3 chunk(s) could not be imported: chunk 1 (lines from 102): failed 6 times" in message
    assert "Chunk(s) 0, 2 were written (200 created, 0 updated)" in message
    assert f"manage.py import_resume {job.pk}" in message and f"manage.py import_rollback {job.pk}" in message


# --- finding 3: line endings ----------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_csv_records_and_chunk_rows_read_every_line_ending_alike(newline):
    data = csv_text("id,name", "1,a", f'2,"b{newline}c"', "", "3,d", newline=newline).encode()
    records = list(csv_records(io.BytesIO(data), encoding="", filename="f.csv"))
    assert [(r.line, r.cells) for r in records] == [
        (1, ["id", "name"]), (2, ["1", "a"]), (3, ["2", f"b{newline}c"]), (6, ["3", "d"]),
    ]  # fmt: skip
    for record in records[1:]:
        piece = data[record.byte_start : record.byte_end]
        assert list(csv_chunk_rows(piece, encoding="", first_line=record.line)) == [
            (record.line, record.cells)
        ]
    assert records[-1].byte_end == len(data)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_every_line_ending_imports_in_several_chunks(newline):
    body = [f"e-{i},Name {i},CA,short" for i in range(1, 251)]
    body[120] = f'e-121,Name 121,CA,"Multi{newline}line"'
    body[200] = "e-201,Bad,ZZ,short"  # an invalid state: a row error naming its line
    job = run_import(csv_text("id,name,state,bio", *body, newline=newline), chunk_size=100)
    assert job.status == ImportJob.Status.COMPLETED_WITH_ERRORS, job.error_message
    assert job.chunks.count() == 3 and job.created_rows == 249
    assert errors(job) == [(203, "state")]
    assert Agent.objects.get(pk="e-121").bio == f"Multi{newline}line"


# --- finding 4: bounded memory and time -------------------------------------------------------


def test_an_oversized_row_is_a_row_error_keeping_only_an_excerpt(settings):
    settings.IMPORT_MAX_ROW_BYTES = 10_000
    wide = "o-2,Bob,NY," + ",".join(["x"] * 6000)  # 12 KB of small fields on one line
    tall = 'o-4,Dee,TX,"' + ("y" * 60 + "\n") * 300 + '"'  # 18 KB in one quoted field over 300 lines
    job = run_import(csv_text("id,name,state,bio", "o-1,Ann,CA,a", wide, "o-3,Cy,TX,c", tall, "o-5,Eve,CA,e"))
    assert job.status == ImportJob.Status.COMPLETED_WITH_ERRORS, job.error_message
    assert sorted(Agent.objects.values_list("id", flat=True)) == ["o-1", "o-3", "o-5"]
    assert errors(job) == [(3, ""), (5, "")]
    for error in job.row_errors.all():
        assert "IMPORT_MAX_ROW_BYTES" in error.message
        assert len(error.raw_row) <= 20 and all(len(cell) <= 120 for cell in error.raw_row)
    assert job.row_errors.order_by("line").first().raw_row[:3] == ["o-2", "Bob", "NY"]


def test_too_many_fields_is_a_row_error_and_a_header_too_wide_refuses_the_file(settings):
    settings.IMPORT_MAX_COLUMNS = 50
    job = run_import(csv_text("id,name,state", "f-1,Ann,CA", "f-2,Bob,NY" + ",z" * 60))
    assert job.status == ImportJob.Status.COMPLETED_WITH_ERRORS, job.error_message
    assert errors(job) == [(3, "")] and "IMPORT_MAX_COLUMNS" in job.row_errors.get().message
    job = run_import(
        csv_text("id,name,state" + "".join(f",c{i}" for i in range(60)), "f-3,Cy,TX"), name="wide.csv"
    )
    assert job.status == ImportJob.Status.FAILED and "IMPORT_MAX_COLUMNS" in job.error_message
    assert job.chunks.count() == 0


def _xlsx(rows) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    for row in rows:
        workbook.active.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def _xlsx_shared(rows, extra=()) -> bytes:
    out = io.BytesIO()
    xlsx_shared_strings(out, rows, extra)
    return out.getvalue()


def test_xlsx_shared_strings_are_bounded(settings):
    rows = [["id", "name", "state"], *([f"x-{i}", f"Name {i}", "CA"] for i in range(100))]
    rows[1][1] = ("Rich ", "Text")  # a rich-text shared string: runs joined
    data = _xlsx_shared(rows)
    settings.IMPORT_XLSX_MAX_SHARED_STRINGS = 50
    job = run_import(data, name="big.xlsx")
    assert job.status == ImportJob.Status.FAILED
    assert "big.xlsx: the workbook's shared-string table holds more than 50 texts" in job.error_message
    assert "IMPORT_XLSX_MAX_SHARED_STRINGS" in job.error_message and Agent.objects.count() == 0
    settings.IMPORT_XLSX_MAX_SHARED_STRINGS = 1000
    settings.IMPORT_XLSX_MAX_SHARED_STRINGS_BYTES = 500
    job = run_import(data, name="big.xlsx")
    assert (
        job.status == ImportJob.Status.FAILED and "IMPORT_XLSX_MAX_SHARED_STRINGS_BYTES" in job.error_message
    )
    settings.IMPORT_XLSX_MAX_SHARED_STRINGS_BYTES = 100_000
    job = run_import(data, name="big.xlsx")
    assert job.status == ImportJob.Status.COMPLETED and job.created_rows == 100
    assert Agent.objects.get(pk="x-0").name == "Rich Text"


def test_xlsx_unused_shared_strings_count_too(settings):
    settings.IMPORT_XLSX_MAX_SHARED_STRINGS = 1000
    job = run_import(_xlsx_shared([["id", "name", "state"], ["u-1", "Ann", "CA"]], (str(i) for i in range(2000))),
                     name="padded.xlsx")  # fmt: skip
    assert job.status == ImportJob.Status.FAILED and "more than 1,000 texts" in job.error_message


def test_an_xlsx_row_too_wide_is_a_row_error(settings):
    settings.IMPORT_MAX_COLUMNS = 20
    job = run_import(_xlsx([["id", "name", "state"], ["x-1", "Ann", "CA"], ["x-2", "Bob", "NY", *["z"] * 30]]),
                     name="wide.xlsx")  # fmt: skip
    assert job.status == ImportJob.Status.COMPLETED_WITH_ERRORS, job.error_message
    assert errors(job) == [(3, "")] and "IMPORT_MAX_COLUMNS" in job.row_errors.get().message


def test_json_keys_that_are_not_columns_make_one_warning_not_columns():
    objects = [
        {"id": f"k-{i}", "Full Name": f"Agent {i}", "state": "CA", f"custom_{i}": "v"} for i in range(300)
    ]
    job = run_import(json.dumps(objects), name="keys.json")
    assert job.status == ImportJob.Status.COMPLETED, job.error_message
    assert job.created_rows == 300
    assert job.header == ["id", "Full Name", "state"]
    assert len(job.warnings) == 1
    assert "(300 distinct): custom_0, custom_1" in job.warnings[0] and "and 280 more" in job.warnings[0]
    from estateflow.storage import shared_storage

    assert shared_storage().size(job.staged_file) < 20_000


def test_a_json_object_with_too_many_keys_is_a_row_error(settings):
    settings.IMPORT_JSON_MAX_KEYS = 10
    wide = {"id": "w-2", "name": "Bob", "state": "NY", **{f"x{i}": i for i in range(20)}}
    text = json.dumps([{"id": "w-1", "name": "Ann", "state": "CA"}, wide], indent=0)
    job = run_import(text, name="wide.json")
    assert job.status == ImportJob.Status.COMPLETED_WITH_ERRORS, job.error_message
    assert job.created_rows == 1
    ((line, column),) = errors(job)
    object_start = text.rindex("{", 0, text.index('"w-2"'))
    assert column == "" and line == text.count("\n", 0, object_start) + 1
    assert "IMPORT_JSON_MAX_KEYS" in job.row_errors.get().message


def test_a_json_syntax_error_is_reported_before_the_rest_of_the_file_is_read(monkeypatch):
    monkeypatch.setattr("imports.json_reader.JSON_READ_SIZE", 4096)
    item = json.dumps({"id": "s", "name": "A", "state": "CA", "bio": "x" * 200})
    data = ('[{"id": x, "name": "A"}' + (",\n" + item) * 2000 + "]").encode()  # ~480 KB
    raw = io.BytesIO(data)
    with pytest.raises(ImportFileError, match="line 1: invalid JSON: Expecting value"):
        list(json_objects(raw, filename="f.json"))
    assert raw.tell() < 64 * 1024, raw.tell()  # how far the reader got into the file


def test_a_json_item_over_the_row_limit_refuses_the_file(settings):
    settings.IMPORT_MAX_ROW_BYTES = 5_000
    text = json.dumps(
        [{"id": "b-1", "name": "Ann", "state": "CA"}, {"id": "b-2", "name": "B", "bio": "x" * 9000}]
    )
    job = run_import(text, name="big.json")
    assert job.status == ImportJob.Status.FAILED and "item 2 is longer than 5,000 bytes" in job.error_message


def test_planning_stops_at_its_time_limit(settings):
    settings.IMPORT_PLAN_TIME_LIMIT = 0
    job = run_import(csv_text("id,name,state", *names(10)), name="slow.csv")
    assert job.status == ImportJob.Status.FAILED
    assert "slow.csv: reading the file took longer than 0 s (IMPORT_PLAN_TIME_LIMIT)" in job.error_message
    assert job.chunks.count() == 0


def test_chunks_are_bounded_in_bytes_as_well_as_rows(settings):
    settings.IMPORT_CHUNK_MAX_BYTES = 2_000
    job = run_import(csv_text("id,name,state", *names(300)), chunk_size=5000)
    assert job.status == ImportJob.Status.COMPLETED and job.created_rows == 300
    assert job.chunks.count() >= 3
    assert all(c.byte_end - c.byte_start <= 2_000 + 100 for c in job.chunks.all())
