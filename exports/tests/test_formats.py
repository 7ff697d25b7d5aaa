"""The file formats alone: parts written apart join into one valid file."""

import csv
import io
import json

import pytest
from openpyxl import load_workbook

from exports.formats import FORMATS, xlsx_cell
from imports.xlsx_reader import xlsx_check_archive, xlsx_rows

HEADERS = ["id", "name", "bio"]
AWKWARD = [
    ["a1", 'Quote "Q" Person', "line one\nline two, with comma"],
    ["a2", "Ampersand & <tag>", ""],
    ["a3", "  padded  ", "tab\there\r\nCRLF"],
    ["a4", "Bell\x07 and form\x0cfeed", "plain"],
    ["a5", "Ünïcödé ✓ 日本", "'=1+1"],
]


def _file(key: str, parts: list[list[list[str]]]) -> bytes:
    file_format = FORMATS[key]
    encoded = []
    for rows in parts:
        part = io.BytesIO()
        assert file_format.part_write(part, HEADERS, rows) == len(rows)
        if rows:
            # In blocks, as the assembly reads parts from the storage.
            data = part.getvalue()
            encoded.append([data[i : i + 7] for i in range(0, len(data), 7)])
    out = io.BytesIO()
    file_format.file_write(out, HEADERS, encoded)
    return out.getvalue()


def test_csv_parts_join_into_one_file_with_one_header():
    data = _file("csv", [AWKWARD[:2], [], AWKWARD[2:]])
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows == [HEADERS, *AWKWARD]


@pytest.mark.parametrize("parts", [[AWKWARD[:1], AWKWARD[1:3], AWKWARD[3:]], [[], AWKWARD], []])
def test_json_parts_join_into_one_array(parts):
    data = json.loads(_file("json", parts))
    expected = [row for rows in parts for row in rows]
    assert data == [dict(zip(HEADERS, row, strict=True)) for row in expected]


def test_json_without_rows_is_an_empty_array():
    assert json.loads(_file("json", [])) == []


def _xlsx_values(data: bytes) -> list[list]:
    sheet = load_workbook(io.BytesIO(data)).active
    return [[cell.value for cell in row] for row in sheet.iter_rows()]


def test_xlsx_parts_join_into_one_workbook_with_every_cell_in_place():
    data = _file("xlsx", [AWKWARD[:2], AWKWARD[2:]])
    values = _xlsx_values(data)
    assert values[0] == HEADERS
    # The empty cell reads as None; padding and CR survive; control characters come back escaped.
    expected = [[value or None for value in row] for row in AWKWARD]
    expected[3][1] = "Bell_x0007_ and form_x000C_feed"  # OOXML's escape, which Excel shows as the character
    assert values[1:] == expected


def test_xlsx_cell_escapes_markup_and_what_xml_cannot_hold():
    assert xlsx_cell("") == "<c/>"
    assert xlsx_cell("a&b<c>") == '<c t="inlineStr"><is><t>a&amp;b&lt;c&gt;</t></is></c>'
    assert xlsx_cell("\x01") == '<c t="inlineStr"><is><t>_x0001_</t></is></c>'
    assert xlsx_cell(" x") == '<c t="inlineStr"><is><t xml:space="preserve"> x</t></is></c>'
    assert xlsx_cell("a\rb") == '<c t="inlineStr"><is><t>a&#13;b</t></is></c>'


def test_xlsx_passes_the_import_readers_checks_and_reads_back():
    """An export is a file the import pipeline takes back (zip checks, streamed rows)."""
    data = _file("xlsx", [AWKWARD])
    xlsx_check_archive(io.BytesIO(data), filename="export.xlsx")
    rows = [cells for _, cells in xlsx_rows(io.BytesIO(data), filename="export.xlsx")]
    assert rows[0] == HEADERS
    assert [cells[0] for cells in rows[1:]] == [row[0] for row in AWKWARD]
    assert rows[2][1] == "Ampersand & <tag>"


def test_xlsx_without_rows_is_a_workbook_with_the_header_only():
    assert _xlsx_values(_file("xlsx", [])) == [HEADERS]
