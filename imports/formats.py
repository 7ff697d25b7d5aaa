"""Reading import files: header mapping, format checks, and the byte-offset plan of a CSV.

Every format ends up as CSV: CSV files are read in place; XLSX and JSON are
staged once, at planning, into a UTF-8 CSV whose first column is the source
line. A chunk is then a byte range of a CSV that a worker seeks straight to.
"""

import json
import re
import time
from dataclasses import dataclass
from datetime import date, datetime

from django.conf import settings

from agents.resources import D1_AGENT_COLUMNS
from agents.widgets import unstorable_text

LINE_COLUMN = "__line__"  # first column of a staged CSV: where the row was in the source file
# What is kept of a record refused before parsing (too long, too many fields).
EXCERPT_BYTES = 2048
EXCERPT_CELLS = 20
EXCERPT_CELL_CHARS = 120


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


class RejectedCells(list):
    """An excerpt of a record refused before its cells are parsed, and why (a row error)."""

    def __init__(self, cells, reason: str):
        super().__init__(str(c)[:EXCERPT_CELL_CHARS] for c in list(cells)[:EXCERPT_CELLS])
        self.reason = reason


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


# The readers import the pieces above from here; importing them last keeps every reader
# name importable from imports.formats, as it was before the split.
from .csv_reader import (  # noqa: E402
    CSV_FIELD_LIMIT,
    ChunkRecords,
    CsvRecord,
    csv_chunk_rows,
    csv_encoding,
    csv_records,
    record_index_pack,
    staged_line,
    staged_line_cell,
)
from .json_reader import (  # noqa: E402
    JSON_UNKNOWN_KEYS_COUNTED,
    JSON_UNKNOWN_KEYS_LISTED,
    json_header,
    json_objects,
    json_rows,
)
from .xlsx_reader import (  # noqa: E402
    XLSX_MAX_MEMBERS,
    XLSX_MAX_RATIO,
    XLSX_MAX_UNCOMPRESSED_BYTES,
    xlsx_check_archive,
    xlsx_rows,
)

__all__ = [
    "LINE_COLUMN",
    "EXCERPT_BYTES",
    "EXCERPT_CELLS",
    "EXCERPT_CELL_CHARS",
    "import_limit",
    "IGNORED_COLUMNS",
    "HEADER_ALIASES",
    "ImportFileError",
    "PlanDeadline",
    "header_key",
    "HeaderMap",
    "header_map",
    "sniff_problem",
    "RejectedCells",
    "cell_text",
    "CSV_FIELD_LIMIT",
    "ChunkRecords",
    "CsvRecord",
    "csv_chunk_rows",
    "csv_encoding",
    "csv_records",
    "record_index_pack",
    "staged_line",
    "staged_line_cell",
    "JSON_UNKNOWN_KEYS_COUNTED",
    "JSON_UNKNOWN_KEYS_LISTED",
    "json_header",
    "json_objects",
    "json_rows",
    "XLSX_MAX_MEMBERS",
    "XLSX_MAX_RATIO",
    "XLSX_MAX_UNCOMPRESSED_BYTES",
    "xlsx_check_archive",
    "xlsx_rows",
]
