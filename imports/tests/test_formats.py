import io
import json

import pytest

from imports.formats import (
    ImportFileError,
    csv_chunk_rows,
    csv_records,
    header_key,
    header_map,
    json_objects,
    sniff_problem,
)


@pytest.mark.parametrize(
    ("raw", "key"),
    [("License #", "license_number"), (" E-mail ", "e_mail"), ("Phone  Number", "phone_number"),
     ("\ufeffID", "id"), ("Service Zipcodes", "service_zipcodes")],
)  # fmt: skip
def test_header_key(raw, key):
    assert header_key(raw) == key


def test_header_map_aliases_unknown_and_ignored():
    mapping = header_map(["Full Name", "License #", "E-mail", "Phone Number", "STATE", "Favourite Colour",
                          "updated_at"], filename="f.csv")  # fmt: skip
    assert mapping.columns == ["name", "license_number", "email", "phone", "state", None, None]
    assert mapping.unknown == ["Favourite Colour"]
    assert mapping.ignored == ["updated_at"]


def test_header_map_refuses_two_names_for_one_column():
    with pytest.raises(
        ImportFileError, match="duplicate header: column 2 'Full Name' and 'Name' both mean 'name'"
    ):
        header_map(["Name", "Full Name"], filename="f.csv")


def test_csv_records_report_byte_ranges_and_lines():
    data = b'id,bio\r\n1,"two\nlines"\r\n2,plain\r\n'
    records = list(csv_records(io.BytesIO(data), encoding="", filename="f.csv"))
    assert [r.line for r in records] == [1, 2, 4]
    assert [r.cells for r in records][1] == ["1", "two\nlines"]
    # Seeking to a record's byte range gives back exactly that record and its line.
    second = records[1]
    rows = list(
        csv_chunk_rows(data[second.byte_start : records[2].byte_end], encoding="", first_line=second.line)
    )
    assert rows == [(2, ["1", "two\nlines"]), (4, ["2", "plain"])]


def test_csv_bom_is_skipped():
    records = list(csv_records(io.BytesIO(b"\xef\xbb\xbfid,name\n1,a\n"), encoding="", filename="f.csv"))
    assert records[0].cells == ["id", "name"]


def test_csv_undecodable_bytes_name_the_line():
    data = "id,name\n1,ok\n2,Jos\xe9\n".encode("latin-1")
    with pytest.raises(ImportFileError, match=r"f.csv, line 3: bytes that are not valid utf-8"):
        list(csv_records(io.BytesIO(data), encoding="", filename="f.csv"))
    records = list(csv_records(io.BytesIO(data), encoding="latin-1", filename="f.csv"))
    assert records[2].cells == ["2", "José"]


def test_json_objects_stream_with_lines():
    items = [{"name": f"n{i}", "bio": "a\nb"} for i in range(5)]
    text = json.dumps(items, indent=1)
    got = list(json_objects(io.BytesIO(text.encode()), filename="f.json"))
    assert [o for _, o in got] == items
    lines = text.split("\n")
    for line, _obj in got:
        assert lines[line - 1].strip() == "{"  # each object starts on the line reported


def test_json_objects_small_read_size(monkeypatch):
    import imports.json_reader as json_reader

    monkeypatch.setattr(json_reader, "JSON_READ_SIZE", 7)
    items = [{"name": "x" * 30, "n": 123456789}, {"name": "y", "n": 1.5}]
    got = [o for _, o in json_objects(io.BytesIO(json.dumps(items).encode()), filename="f.json")]
    assert got == items


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"name": "a"}', "must be an array"),
        ('[{"name": "a"},', "not closed"),
        ('[{"name": "a"} {"name": "b"}]', "expected ','"),
        ('[{"name": "a"}, 5]', "item 2 is int"),
        ('[{"name": "a", }]', "invalid JSON"),
    ],
)
def test_json_errors(text, message):
    with pytest.raises(ImportFileError, match=message):
        list(json_objects(io.BytesIO(text.encode()), filename="f.json"))


@pytest.mark.parametrize(
    ("head", "declared", "problem"),
    [
        (b"PK\x03\x04rest", "csv", "ZIP/XLSX archive"),
        (b"id,name\n1," + bytes(range(32)) * 4, "csv", "binary content"),
        ("id,name\n".encode("utf-16-le"), "csv", "binary content"),
        (b"id,name\n1,a\x00b\n", "csv", None),  # a stray NUL in a text file: a row error later
        (b"id,name\n", "xlsx", "not an XLSX"),
        (b"{}", "json", "array of objects"),
        (b"id,name\n1,a\n", "csv", None),
        (b"\xef\xbb\xbf [", "json", None),
    ],
)
def test_sniff(head, declared, problem):
    result = sniff_problem(head, declared=declared, filename="f")
    assert (result is None) if problem is None else (problem in result)
