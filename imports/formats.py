"""Reading import files: header mapping, format checks, and the byte-offset plan of a CSV.

Every format ends up as CSV: CSV files are read in place; XLSX and JSON are
staged once, at planning, into a UTF-8 CSV whose first column is the source
line. A chunk is then a byte range of a CSV that a worker seeks straight to.
"""

import codecs
import csv
import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import IO

from agents.resources import D1_AGENT_COLUMNS

LINE_COLUMN = "__line__"  # first column of a staged CSV: where the row was in the source file
CSV_FIELD_LIMIT = csv.field_size_limit()
XLSX_MAX_UNCOMPRESSED_BYTES = 2 * 1024**3
XLSX_MAX_RATIO = 200  # real sheets compress ~10-30x; bombs compress 1000x+
XLSX_MAX_MEMBERS = 10_000
JSON_READ_SIZE = 1 << 20

# Columns the file may not set: the back-office writes them itself.
IGNORED_COLUMNS = frozenset({"updated_at"})

HEADER_ALIASES = {
    "full_name": "name",
    "agent_name": "name",
    "e_mail": "email",
    "email_address": "email",
    "e_mail_address": "email",
    "phone_number": "phone",
    "telephone": "phone",
    "tel": "phone",
    "cell": "cell_phone",
    "mobile": "cell_phone",
    "mobile_phone": "cell_phone",
    "cell_number": "cell_phone",
    "office": "office_phone",
    "office_number": "office_phone",
    "license_no": "license_number",
    "license": "license_number",
    "licence": "license_number",
    "licence_number": "license_number",
    "licence_no": "license_number",
    "license_num": "license_number",
    "license_id": "license_number",
    "mls": "mls_id",
    "mls_number": "mls_id",
    "company": "brokerage",
    "brokerage_name": "brokerage",
    "firm": "brokerage",
    "zip_codes": "service_zipcodes",
    "zipcodes": "service_zipcodes",
    "languages": "language_capabilities",
    "tier": "subscription_tier",
    "years": "years_experience",
    "photo_path": "photo",
}


class ImportFileError(Exception):
    """The file as a whole cannot be imported; the message names file, line and column."""


def header_key(text: str) -> str:
    """'License #' -> 'license_number', ' E-mail ' -> 'e_mail', 'Phone  Number' -> 'phone_number'."""
    text = text.replace("\ufeff", "").strip().lower().replace("#", " number")
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


@dataclass
class HeaderMap:
    columns: list[str | None]  # D1 column (or "photo") per file column; None: ignored
    unknown: list[str]
    ignored: list[str]


def header_map(header: list[str], *, filename: str) -> HeaderMap:
    known = set(D1_AGENT_COLUMNS) | {"photo"}
    columns: list[str | None] = []
    unknown: list[str] = []
    ignored: list[str] = []
    seen: dict[str, str] = {}
    for position, raw in enumerate(header, start=1):
        key = header_key(str(raw) if raw is not None else "")
        column = key if key in known else HEADER_ALIASES.get(key)
        if not key:
            raise ImportFileError(f"{filename}: header column {position} is empty.")
        if column is None:
            unknown.append(str(raw))
            columns.append(None)
            continue
        if column in seen:
            raise ImportFileError(
                f"{filename}: duplicate header: column {position} {str(raw)!r} and "
                f"{seen[column]!r} both mean {column!r}."
            )
        seen[column] = str(raw)
        if column in IGNORED_COLUMNS:
            ignored.append(str(raw))
            columns.append(None)
            continue
        columns.append(column)
    return HeaderMap(columns=columns, unknown=unknown, ignored=ignored)


def sniff_problem(head: bytes, *, declared: str, filename: str) -> str | None:
    """Why the first bytes cannot be a file of the declared format, or None."""
    is_zip = head.startswith(b"PK\x03\x04")
    if declared == "xlsx":
        return None if is_zip else f"{filename}: not an XLSX file (an XLSX file is a ZIP archive)."
    if is_zip:
        return (
            f"{filename}: this is a ZIP/XLSX archive, not {declared.upper()}; choose the XLSX or ZIP format."
        )
    if b"\x00" in head:
        offset = head.index(b"\x00")
        return (
            f"{filename}: binary content (a NUL byte at offset {offset}); "
            f"this is not a {declared.upper()} text file."
        )
    if declared == "json":
        stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if not stripped.startswith(b"["):
            return f"{filename}: a JSON import must be an array of objects: [{{...}}, ...]."
    return None


# --- CSV ------------------------------------------------------------------------


@dataclass
class CsvRecord:
    cells: list[str]
    line: int  # line where the record starts (1-based)
    byte_start: int
    byte_end: int


def csv_encoding(encoding: str) -> str:
    name = encoding or "utf-8"
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise ImportFileError(f"Unknown encoding {encoding!r}.") from None
    if info.name.startswith(("utf-16", "utf-32")):
        raise ImportFileError(f"Encoding {encoding} is not supported; save the file as UTF-8.")
    return "utf-8" if info.name == "utf-8-sig" else info.name


def csv_records(
    raw: IO[bytes], *, encoding: str, filename: str, start: int = 0, first_line: int = 1
) -> Iterator[CsvRecord]:
    """Records of a CSV file with the byte range and line each came from.

    Lines are decoded one by one so an undecodable byte is reported with its
    line, and csv.reader pulls lines lazily, so the bytes consumed after a
    record are exactly its end offset.
    """
    codec = csv_encoding(encoding)
    raw.seek(start)
    position = start
    if start == 0 and raw.read(3) == codecs.BOM_UTF8:
        position = 3
    raw.seek(position)
    state = {"position": position, "line": first_line}

    def lines() -> Iterator[str]:
        for chunk in raw:
            try:
                text = chunk.decode(codec)
            except UnicodeDecodeError as exc:
                hint = " Choose the file's encoding (for example latin-1) in the import form."
                raise ImportFileError(
                    f"{filename}, line {state['line']}: bytes that are not valid {codec} "
                    f"(byte {exc.start + 1} of the line: {chunk[exc.start : exc.start + 4]!r}).{hint}"
                ) from None
            state["position"] += len(chunk)
            state["line"] += 1
            yield text

    reader = csv.reader(lines(), strict=True)
    record_start, record_line = position, first_line
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            message = str(exc)
            if "field larger than field limit" in message:
                message = f"a field is larger than {CSV_FIELD_LIMIT:,} characters"
            elif "unexpected end of data" in message or "EOF" in message:
                message = "a quoted field is never closed (unbalanced quote)"
            raise ImportFileError(f"{filename}, line {record_line}: malformed CSV: {message}.") from None
        if cells:  # csv yields [] for a blank line
            yield CsvRecord(cells, record_line, record_start, state["position"])
        record_start, record_line = state["position"], state["line"]


def csv_chunk_rows(data: bytes, *, encoding: str, first_line: int) -> Iterator[tuple[int, list[str]]]:
    """(line, cells) of the records inside one chunk's byte range (already validated at planning)."""
    text = data.decode(csv_encoding(encoding))
    reader = csv.reader(io.StringIO(text, newline="\n"), strict=True)
    line_before = 0
    for cells in reader:
        if cells:
            yield first_line + line_before, cells
        line_before = reader.line_num


# --- XLSX and JSON staging ------------------------------------------------------


def cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def xlsx_check_archive(raw: IO[bytes], *, filename: str) -> None:
    """Refuse zip bombs before openpyxl inflates anything."""
    try:
        archive = zipfile.ZipFile(raw)
    except zipfile.BadZipFile:
        raise ImportFileError(f"{filename}: not a valid XLSX file (broken ZIP archive).") from None
    members = archive.infolist()
    if len(members) > XLSX_MAX_MEMBERS:
        raise ImportFileError(f"{filename}: the XLSX archive holds {len(members):,} parts; refused.")
    total = 0
    for member in members:
        total += member.file_size
        ratio = member.file_size / max(member.compress_size, 1)
        if ratio > XLSX_MAX_RATIO and member.file_size > 1024 * 1024:
            raise ImportFileError(
                f"{filename}: part {member.filename} expands {ratio:,.0f}x "
                f"({member.file_size:,} bytes); refused as a possible zip bomb."
            )
    if total > XLSX_MAX_UNCOMPRESSED_BYTES:
        raise ImportFileError(
            f"{filename}: the XLSX file expands to {total:,} bytes "
            f"(limit {XLSX_MAX_UNCOMPRESSED_BYTES:,}); refused."
        )
    if "xl/workbook.xml" not in {m.filename for m in members}:
        raise ImportFileError(f"{filename}: a ZIP archive but not an XLSX workbook.")


def xlsx_rows(raw: IO[bytes], *, filename: str) -> Iterator[tuple[int, list[str]]]:
    """(sheet row number, cells as text) of the first worksheet, streamed."""
    from openpyxl import load_workbook  # uses defusedxml when installed

    xlsx_check_archive(raw, filename=filename)
    raw.seek(0)
    try:
        workbook = load_workbook(raw, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for broken files
        raise ImportFileError(f"{filename}: cannot read the XLSX file: {exc}.") from None
    try:
        sheet = workbook.worksheets[0]
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = [cell_text(v) for v in row]
            while cells and cells[-1] == "":
                cells.pop()
            if cells:
                yield number, cells
    finally:
        workbook.close()


_SPACE = re.compile(r"[ \t\r\n]*")


class _JsonArrayReader:
    """Incremental reader of a JSON array: one raw_decode per item over a sliding buffer."""

    def __init__(self, raw: IO[bytes], filename: str):
        self.reader = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        self.filename = filename
        self.decoder = json.JSONDecoder()
        self.buffer, self.pos, self.line, self.eof = "", 0, 1, False

    def fill(self) -> bool:
        if self.eof:
            return False
        try:
            more = self.reader.read(JSON_READ_SIZE)
        except UnicodeDecodeError:
            raise ImportFileError(f"{self.filename}: not UTF-8 text; JSON files must be UTF-8.") from None
        if not more:
            self.eof = True
            return False
        self.buffer, self.pos = self.buffer[self.pos :] + more, 0
        return True

    def skip_space(self) -> bool:
        """Move past white space; False at the end of the file."""
        while True:
            end = _SPACE.match(self.buffer, self.pos).end()
            self.line += self.buffer.count("\n", self.pos, end)
            self.pos = end
            if self.pos < len(self.buffer):
                return True
            if not self.fill():
                return False

    def decode(self) -> tuple[object, int]:
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError as exc:
                if self.fill():
                    continue
                error_line = self.line + self.buffer.count("\n", self.pos, exc.pos)
                raise ImportFileError(
                    f"{self.filename}, line {error_line}: invalid JSON: {exc.msg}."
                ) from None
            if end == len(self.buffer) and not isinstance(value, dict | list) and self.fill():
                continue  # a number or literal cut at the end of the buffer
            return value, end

    def items(self) -> Iterator[tuple[int, dict]]:
        name = self.filename
        if not self.skip_space() or self.buffer[self.pos] != "[":
            raise ImportFileError(f"{name}: a JSON import must be an array of objects.")
        self.pos += 1
        item, expect_value = 0, True
        while True:
            if not self.skip_space():
                raise ImportFileError(
                    f"{name}: the JSON array is not closed (file ends at line {self.line})."
                )
            char = self.buffer[self.pos]
            if char == "]" and (item == 0 or not expect_value):
                return
            if not expect_value:
                if char != ",":
                    raise ImportFileError(f"{name}, line {self.line}: expected ',' or ']' after item {item}.")
                self.pos += 1
                expect_value = True
                continue
            value, end = self.decode()
            item += 1
            if not isinstance(value, dict):
                raise ImportFileError(
                    f"{name}, line {self.line}: item {item} is {type(value).__name__}, expected an object."
                )
            yield self.line, value
            self.line += self.buffer.count("\n", self.pos, end)
            self.pos = end
            expect_value = False


def json_objects(raw: IO[bytes], *, filename: str) -> Iterator[tuple[int, dict]]:
    """(line, object) for each item of a JSON array, without loading the whole file."""
    reader = _JsonArrayReader(raw, filename)
    try:
        yield from reader.items()
    finally:
        reader.reader.detach()  # leave the caller's file open
