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
import time
import zipfile
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from itertools import islice
from typing import IO

from django.conf import settings

from agents.resources import D1_AGENT_COLUMNS
from agents.widgets import unstorable_text

LINE_COLUMN = "__line__"  # first column of a staged CSV: where the row was in the source file
CSV_FIELD_LIMIT = csv.field_size_limit()
XLSX_MAX_UNCOMPRESSED_BYTES = 2 * 1024**3
XLSX_MAX_RATIO = 200  # real sheets compress ~10-30x; bombs compress 1000x+
XLSX_MAX_MEMBERS = 10_000
JSON_READ_SIZE = 1 << 20
CSV_READ_SIZE = 1 << 16
# What is kept of a record refused before parsing (too long, too many fields).
EXCERPT_BYTES = 2048
EXCERPT_CELLS = 20
EXCERPT_CELL_CHARS = 120
# How many key names of a JSON file that are not agent columns the warning lists.
JSON_UNKNOWN_KEYS_LISTED = 20
JSON_UNKNOWN_KEYS_COUNTED = 10_000


def import_limit(name: str) -> int:
    """One of the IMPORT_* limits of settings (declared with defaults in settings/base.py), read per call."""
    return int(getattr(settings, name))


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


class PlanDeadline:
    """IMPORT_PLAN_TIME_LIMIT for reading a file at planning, checked every few hundred rows.

    Celery's time limit on the planning task stops a worker stuck in one long
    call; this stops planning's loops with a clear message wherever it runs.
    """

    EVERY = 256

    def __init__(self, filename: str):
        self.seconds = import_limit("IMPORT_PLAN_TIME_LIMIT")
        self.at = time.monotonic() + self.seconds
        self.filename = filename

    def watch(self, items):
        for n, item in enumerate(items):
            if n % self.EVERY == 0 and time.monotonic() >= self.at:
                raise ImportFileError(
                    f"{self.filename}: reading the file took longer than {self.seconds:,} s "
                    "(IMPORT_PLAN_TIME_LIMIT); split it into smaller files."
                )
            yield item


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
    if len(header) > import_limit("IMPORT_MAX_COLUMNS"):
        raise ImportFileError(
            f"{filename}: the header has {len(header):,} columns; the limit is "
            f"{import_limit('IMPORT_MAX_COLUMNS'):,} (IMPORT_MAX_COLUMNS)."
        )
    known = set(D1_AGENT_COLUMNS) | {"photo"}
    columns: list[str | None] = []
    unknown: list[str] = []
    ignored: list[str] = []
    seen: dict[str, str] = {}
    for position, raw in enumerate(header, start=1):
        problem = unstorable_text(str(raw) if raw is not None else "")
        if problem:  # it would end up in the job's warnings, which PostgreSQL must store
            raise ImportFileError(f"{filename}: header column {position} {problem}.")
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


_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1f]")


def sniff_problem(head: bytes, *, declared: str, filename: str) -> str | None:
    """Why the first bytes cannot be a file of the declared format, or None."""
    is_zip = head.startswith(b"PK\x03\x04")
    if declared == "xlsx":
        return None if is_zip else f"{filename}: not an XLSX file (an XLSX file is a ZIP archive)."
    if is_zip:
        return (
            f"{filename}: this is a ZIP/XLSX archive, not {declared.upper()}; choose the XLSX or ZIP format."
        )
    # A text file may carry a stray NUL in a cell (a row error later); a binary file is full
    # of NULs and other control bytes, and UTF-16 text is one NUL in two bytes.
    nuls = head.count(b"\x00")
    if nuls and (nuls * 10 > len(head) or len(_CONTROL_BYTES.findall(head)) > max(8, len(head) // 100)):
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


class RejectedCells(list):
    """An excerpt of a record refused before its cells are parsed, and why (a row error)."""

    def __init__(self, cells, reason: str):
        super().__init__(str(c)[:EXCERPT_CELL_CHARS] for c in list(cells)[:EXCERPT_CELLS])
        self.reason = reason


@dataclass
class CsvRecord:
    cells: list[str]  # RejectedCells when the record was refused (rejected holds why)
    line: int  # line where the record starts (1-based)
    byte_start: int
    byte_end: int
    rejected: str | None = None


def csv_encoding(encoding: str) -> str:
    name = encoding or "utf-8"
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise ImportFileError(f"Unknown encoding {encoding!r}.") from None
    if not getattr(info, "_is_text_encoding", True):  # rot13, hex, base64...: not a text encoding
        raise ImportFileError(f"Unknown encoding {encoding!r}.")
    if info.name.startswith(("utf-16", "utf-32")):
        raise ImportFileError(f"Encoding {encoding} is not supported; save the file as UTF-8.")
    return "utf-8" if info.name == "utf-8-sig" else info.name


class _Oversized(Exception):
    """The record being read passed IMPORT_MAX_ROW_BYTES; its bytes were skipped, not kept."""

    def __init__(self, size: int, head: bytes):
        super().__init__(size)
        self.size = size
        self.head = head


class _Lines:
    """The physical lines of a byte stream, decoded, for csv.reader.

    A line ends at LF, CRLF or a bare CR (classic Mac), as bytes.splitlines
    cuts them; planning and chunks both read through here, so a chunk's byte
    range holds exactly the records planning counted, whatever the endings.
    No record is ever held beyond `max_bytes`: past it the rest of the record
    is skipped unread (to the first line end with an even count of quotes,
    where csv would end it too) and _Oversized is raised. This is a class,
    not a generator, so it keeps working after raising.
    """

    def __init__(self, raw: IO[bytes], *, decode, max_bytes: int, position: int, line: int):
        self.raw, self.decode, self.max_bytes = raw, decode, max_bytes
        self.position = position  # offset just after the last line handed out
        self.line = line  # number of the next line
        self.lines: list[bytes] = []
        self.index = 0
        self.tail = b""  # an unfinished line (or a CR that may be the half of a CRLF)
        self.eof = False
        self.record_begin()

    def record_begin(self) -> None:
        self.record_start, self.record_line = self.position, self.line
        self.record_quotes, self.record_head = 0, b""

    def __iter__(self):
        return self

    def __next__(self) -> str:
        while self.index >= len(self.lines):
            if not self._more():
                raise StopIteration
        line = self.lines[self.index]
        self.index += 1
        if self.position + len(line) - self.record_start > self.max_bytes:
            raise self._skip_record(line)
        if len(self.record_head) < EXCERPT_BYTES:
            self.record_head += line[:EXCERPT_BYTES]
        self.record_quotes += line.count(b'"')
        text = self.decode(line, self.line)
        self.position += len(line)
        self.line += 1
        return text

    def _more(self) -> bool:
        """Cut the next block into whole lines; False at the end of the stream."""
        if self.eof:
            if not self.tail:
                return False
            block = b""
        else:
            block = self.raw.read(CSV_READ_SIZE)
            self.eof = not block
        lines = (self.tail + block).splitlines(keepends=True)
        self.tail = b""
        if lines and not self.eof and not lines[-1].endswith(b"\n"):
            self.tail = lines.pop()
        self.lines, self.index = lines, 0
        if not lines and len(self.tail) + self.position - self.record_start > self.max_bytes:
            raise self._skip_record(b"")
        return True

    def _skip_record(self, pending: bytes) -> _Oversized:
        """Consume the rest of the current record without keeping it; the exception to raise."""
        data = pending + b"".join(self.lines[self.index :]) + self.tail
        self.lines, self.index, self.tail = [], 0, b""
        head = (self.record_head + data[:EXCERPT_BYTES])[:EXCERPT_BYTES]
        quotes, size = self.record_quotes, self.position - self.record_start
        while True:
            start = 0
            for match in _LINE_END.finditer(data):
                end = match.end()
                if end == len(data) and data.endswith(b"\r") and not self.eof:
                    break  # maybe the CR of a CRLF cut by the read
                quotes += data.count(b'"', start, end)
                size += end - start
                self.line += 1
                start = end
                if quotes % 2 == 0:
                    self.position = self.record_start + size
                    self.tail = data[end:]
                    return _Oversized(size, head)
            keep = 1 if data.endswith(b"\r") and not self.eof and start < len(data) else 0
            quotes += data.count(b'"', start, len(data) - keep)
            size += len(data) - keep - start
            carry = data[len(data) - keep :]
            if self.eof:
                self.position = self.record_start + size
                return _Oversized(size, head)
            block = self.raw.read(CSV_READ_SIZE)
            self.eof = not block
            data = carry + block


_LINE_END = re.compile(rb"\r\n|\r|\n")


def _excerpt_cells(head: bytes, codec: str) -> list[str]:
    """The first cells of a refused record, from its first bytes, as well as they parse."""
    text = head.decode(codec, errors="replace")
    try:
        return next(csv.reader(io.StringIO(text, newline="")), [])
    except csv.Error:
        return [text]


def csv_records(
    raw: IO[bytes],
    *,
    encoding: str,
    filename: str,
    start: int = 0,
    first_line: int = 1,
    errors: str = "strict",
    bom: bool = True,
) -> Iterator[CsvRecord]:
    """Records of a CSV file with the byte range and line each came from.

    Lines are decoded one by one so an undecodable byte is reported with its
    line, and csv.reader pulls lines lazily, so the bytes consumed after a
    record are exactly its end offset. A record over IMPORT_MAX_ROW_BYTES or
    IMPORT_MAX_COLUMNS comes out `rejected`, its cells an excerpt.
    `errors="surrogatepass"` reads back staged files (see cell_text).
    """
    codec = csv_encoding(encoding)
    max_bytes, max_fields = import_limit("IMPORT_MAX_ROW_BYTES"), import_limit("IMPORT_MAX_COLUMNS")
    raw.seek(start)
    position = start
    if bom and start == 0 and raw.read(3) == codecs.BOM_UTF8:
        position = 3
    raw.seek(position)

    def decode(line: bytes, number: int) -> str:
        try:
            return line.decode(codec, errors)
        except UnicodeDecodeError as exc:
            hint = " Choose the file's encoding (for example latin-1) in the import form."
            raise ImportFileError(
                f"{filename}, line {number}: bytes that are not valid {codec} "
                f"(byte {exc.start + 1} of the line: {line[exc.start : exc.start + 4]!r}).{hint}"
            ) from None

    lines = _Lines(raw, decode=decode, max_bytes=max_bytes, position=position, line=first_line)
    reader = csv.reader(lines, strict=True)
    while True:
        lines.record_begin()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except _Oversized as big:
            reason = (
                f"the row is longer than {max_bytes:,} bytes (IMPORT_MAX_ROW_BYTES); only its start is kept"
            )
            cells = RejectedCells(_excerpt_cells(big.head, codec), reason)
            yield CsvRecord(cells, lines.record_line, lines.record_start, lines.position, reason)
            reader = csv.reader(lines, strict=True)  # the old one may be inside the skipped record
            continue
        except csv.Error as exc:
            message = str(exc)
            if "field larger than field limit" in message:
                message = f"a field is larger than {CSV_FIELD_LIMIT:,} characters"
            elif "unexpected end of data" in message or "EOF" in message:
                message = "a quoted field is never closed (unbalanced quote)"
            raise ImportFileError(
                f"{filename}, line {lines.record_line}: malformed CSV: {message}."
            ) from None
        if not cells:  # csv yields [] for a blank line
            continue
        if len(cells) > max_fields:
            reason = f"the row has {len(cells):,} fields; the limit is {max_fields:,} (IMPORT_MAX_COLUMNS)"
            cells = RejectedCells(cells, reason)
            yield CsvRecord(cells, lines.record_line, lines.record_start, lines.position, reason)
            continue
        yield CsvRecord(cells, lines.record_line, lines.record_start, lines.position)


def staged_line_cell(line: int, rejected: str | None = None) -> str:
    """The first cell of a staged row: its source line, and why it was refused at staging if it was."""
    return f"{line} {rejected}" if rejected else str(line)


def staged_line(cell: str) -> tuple[int, str | None]:
    number, _, reason = cell.partition(" ")
    return int(number), reason or None


class _ByteWindow:
    """The bytes of a file before `end`: a chunk streams its range instead of loading it."""

    def __init__(self, raw: IO[bytes], end: int):
        self.raw, self.end = raw, end

    def seek(self, position: int) -> None:
        self.raw.seek(position)

    def read(self, size: int = -1) -> bytes:
        left = self.end - self.raw.tell()
        if left <= 0:
            return b""
        return self.raw.read(left if size < 0 else min(size, left))


def csv_chunk_rows(
    data: bytes | IO[bytes],
    *,
    encoding: str,
    first_line: int,
    staged: bool = False,
    start: int = 0,
    end: int | None = None,
) -> Iterator[tuple[int, list[str]]]:
    """(line, cells) of the records inside one chunk's byte range (already validated at planning).

    `data` is the range's bytes, or an open file read from `start` to `end`.
    Read exactly as planning read them (csv_records); a refused record's cells
    are RejectedCells. For a staged file the line is the source line.
    """
    raw = io.BytesIO(data) if isinstance(data, bytes) else _ByteWindow(data, end)
    records = csv_records(
        raw,
        encoding=encoding,
        filename="",
        start=start,
        first_line=first_line,
        errors="surrogatepass" if staged else "strict",
        bom=False,
    )
    for record in records:
        if not staged:
            yield record.line, record.cells
            continue
        cells = record.cells
        try:
            line, reason = staged_line(cells[0])
        except (IndexError, ValueError):  # an excerpt cut inside the line cell
            line, reason = record.line, None
        reason = record.rejected or reason
        yield line, (RejectedCells(cells[1:], reason) if reason else cells[1:])


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


class _SharedStrings:
    """An XLSX shared-string table held compactly: one UTF-8 blob and the end offset of each string.

    openpyxl keeps every shared string as a Python object (~100-900 bytes
    each with its parser's leftovers); here a string costs its bytes plus 8,
    and the table is refused past the IMPORT_XLSX_MAX_SHARED_STRINGS* limits.
    """

    def __init__(self):
        self.blob = bytearray()
        self.ends = array("Q")

    def append(self, text: str) -> None:
        self.blob += text.encode("utf-8", "surrogatepass")
        self.ends.append(len(self.blob))

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, index: int) -> str:
        if index < 0:
            raise IndexError(index)
        start = self.ends[index - 1] if index else 0
        return self.blob[start : self.ends[index]].decode("utf-8", "surrogatepass")


def _xlsx_shared_strings(src: IO[bytes], *, filename: str) -> _SharedStrings:
    """openpyxl's read_string_table, bounded and without keeping the parsed XML."""
    from openpyxl.cell.text import Text
    from openpyxl.xml.constants import SHEET_MAIN_NS
    from openpyxl.xml.functions import iterparse  # defusedxml's when installed

    si_tag, t_tag = f"{{{SHEET_MAIN_NS}}}si", f"{{{SHEET_MAIN_NS}}}t"
    max_count = import_limit("IMPORT_XLSX_MAX_SHARED_STRINGS")
    max_bytes = import_limit("IMPORT_XLSX_MAX_SHARED_STRINGS_BYTES")
    table = _SharedStrings()
    root = None
    for event, node in iterparse(src, events=("start", "end")):
        if root is None:
            root = node
        if event != "end" or node.tag != si_tag:
            continue
        plain = len(node) == 1 and node[0].tag == t_tag  # else rich text runs, phonetic hints
        text = (node[0].text or "") if plain else Text.from_tree(node).content
        table.append(text.replace("x005F_", ""))  # as openpyxl does
        root.clear()  # drop the parsed <si> elements, or they pile up under <sst>
        if len(table) > max_count:
            raise ImportFileError(
                f"{filename}: the workbook's shared-string table holds more than {max_count:,} texts "
                "(IMPORT_XLSX_MAX_SHARED_STRINGS); save the sheet as CSV and import that."
            )
        if len(table.blob) > max_bytes:
            raise ImportFileError(
                f"{filename}: the workbook's shared-string table holds more than {max_bytes:,} bytes of text "
                "(IMPORT_XLSX_MAX_SHARED_STRINGS_BYTES); save the sheet as CSV and import that."
            )
    return table


def _xlsx_workbook(raw: IO[bytes], *, filename: str):
    """openpyxl's load_workbook(read_only=True, data_only=True) with the bounded shared strings."""
    from openpyxl.reader.excel import SHARED_STRINGS, ExcelReader

    class BoundedReader(ExcelReader):
        def read_strings(self):
            part = self.package.find(SHARED_STRINGS)
            if part is not None:
                with self.archive.open(part.PartName[1:]) as src:
                    self.shared_strings = _xlsx_shared_strings(src, filename=filename)

    reader = BoundedReader(raw, read_only=True, data_only=True)
    reader.read()
    return reader.wb


def xlsx_rows(raw: IO[bytes], *, filename: str) -> Iterator[tuple[int, list[str]]]:
    """(sheet row number, cells as text) of the first worksheet, streamed.

    A row over IMPORT_MAX_COLUMNS cells or IMPORT_MAX_ROW_BYTES of text comes
    out as RejectedCells (a row error later).
    """
    xlsx_check_archive(raw, filename=filename)
    raw.seek(0)
    try:
        workbook = _xlsx_workbook(raw, filename=filename)
    except ImportFileError:
        raise
    except Exception as exc:  # openpyxl raises many types for broken files
        raise ImportFileError(f"{filename}: cannot read the XLSX file: {exc}.") from None
    max_bytes, max_fields = import_limit("IMPORT_MAX_ROW_BYTES"), import_limit("IMPORT_MAX_COLUMNS")
    try:
        sheet = workbook.worksheets[0]
        # The declared size (<dimension>) is the file's claim: A1:XFD1048576 would pad every row
        # to 16,384 cells. Without it, rows are as long as their last cell.
        sheet.reset_dimensions()
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            end = len(row)
            while end and row[end - 1] in (None, ""):
                end -= 1
            if not end:
                continue
            if end > max_fields:
                reason = f"the row has {end:,} cells; the limit is {max_fields:,} (IMPORT_MAX_COLUMNS)"
                yield number, RejectedCells(map(cell_text, row[:EXCERPT_CELLS]), reason)
                continue
            cells = [cell_text(v) for v in row[:end]]
            if sum(map(len, cells)) > max_bytes:
                reason = f"the row is longer than {max_bytes:,} bytes (IMPORT_MAX_ROW_BYTES); only its start is kept"
                yield number, RejectedCells(cells, reason)
                continue
            yield number, cells
    except ImportFileError:
        raise
    except Exception as exc:  # a sheet that points at missing strings, broken XML...
        raise ImportFileError(f"{filename}: cannot read the XLSX file: {exc}.") from None
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

    def decode(self, item: int) -> tuple[object, int]:
        max_bytes = import_limit("IMPORT_MAX_ROW_BYTES")
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError as exc:
                # Only an error the end of the buffer may have caused is worth reading more
                # for; any other is reported at once, not after buffering the whole file.
                cut = exc.msg.startswith("Unterminated string") or exc.pos >= len(self.buffer) - 10
                if cut and len(self.buffer) - self.pos > max_bytes:
                    raise self.too_large(item, max_bytes) from None
                if cut and self.fill():
                    continue
                error_line = self.line + self.buffer.count("\n", self.pos, exc.pos)
                raise ImportFileError(
                    f"{self.filename}, line {error_line}: invalid JSON: {exc.msg}."
                ) from None
            except RecursionError:
                raise ImportFileError(
                    f"{self.filename}, line {self.line}: item {item} is nested too deeply to read."
                ) from None
            if end == len(self.buffer) and not isinstance(value, dict | list) and self.fill():
                continue  # a number or literal cut at the end of the buffer
            if end - self.pos > max_bytes:
                raise self.too_large(item, max_bytes)
            return value, end

    def too_large(self, item: int, max_bytes: int) -> ImportFileError:
        # A JSON item is only known whole once read whole, so it cannot be skipped like a CSV row.
        return ImportFileError(
            f"{self.filename}, line {self.line}: item {item} is longer than {max_bytes:,} bytes "
            "(IMPORT_MAX_ROW_BYTES); refused."
        )

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
            item += 1
            value, end = self.decode(item)
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


_KNOWN_KEYS = frozenset(D1_AGENT_COLUMNS) | {"photo"}


def _key_column(key: str) -> str | None:
    """The agent column a JSON key (or header cell) names, as header_map maps it, or None."""
    normal = header_key(key)
    return normal if normal in _KNOWN_KEYS else HEADER_ALIASES.get(normal)


def json_header(
    raw: IO[bytes], *, filename: str, deadline: PlanDeadline | None = None
) -> tuple[list[str], list[str]]:
    """(header, warnings) of a JSON file: its keys that name agent columns, in order of first use.

    Other keys are not columns (a file of objects with distinct keys would
    otherwise stage one column per object): they make one warning. Objects
    over IMPORT_JSON_MAX_KEYS keys are left to json_rows, which refuses them.
    """
    max_keys = import_limit("IMPORT_JSON_MAX_KEYS")
    header: dict[str, None] = {}
    unknown: dict[str, None] = {}  # the first few, for the warning
    unknown_count = 0
    seen_unknown: set[str] = set()  # bounded: past it, keys are counted, maybe twice
    count = 0
    objects = json_objects(raw, filename=filename)
    for _line, obj in deadline.watch(objects) if deadline else objects:
        count += 1
        if len(obj) > max_keys:
            continue
        for key in obj:
            if key in header or key in seen_unknown:
                continue
            if _key_column(key):
                header[key] = None
                continue
            unknown_count += 1
            if len(seen_unknown) < JSON_UNKNOWN_KEYS_COUNTED:
                seen_unknown.add(key)
            if len(unknown) < JSON_UNKNOWN_KEYS_LISTED:
                unknown[repr(key)[1:-1]] = None  # escaped: a key may hold a NUL
    if count == 0:
        raise ImportFileError(f"{filename}: the JSON array is empty.")
    warnings = []
    if unknown_count:
        more = unknown_count - len(unknown)
        counted = "" if len(seen_unknown) < JSON_UNKNOWN_KEYS_COUNTED else "at least "
        warnings.append(
            f"Keys that are not agent columns were ignored ({counted}{unknown_count:,} distinct): "
            f"{', '.join(unknown)}" + (f" and {more:,} more." if more > 0 else ".")
        )
    return list(header), warnings


def json_rows(raw: IO[bytes], *, filename: str, header: list[str]) -> Iterator[tuple[int, list[str]]]:
    """(line, cells under `header`) of each object; RejectedCells for an object refused here."""
    max_keys = import_limit("IMPORT_JSON_MAX_KEYS")
    for line, obj in json_objects(raw, filename=filename):
        if len(obj) > max_keys:
            reason = f"the object has {len(obj):,} keys; the limit is {max_keys:,} (IMPORT_JSON_MAX_KEYS)"
            excerpt = (f"{k}: {cell_text(v)[:40]}" for k, v in islice(obj.items(), EXCERPT_CELLS))
            yield line, RejectedCells(excerpt, reason)
            continue
        try:
            yield line, [cell_text(obj.get(key)) for key in header]
        except (RecursionError, ValueError) as exc:  # a value nested too deep to write back as JSON
            yield line, RejectedCells([], f"a value cannot be read back as JSON ({exc.__class__.__name__})")
