"""XLSX reading: zip-bomb checks, bounded shared strings, rows of the first worksheet.

Split out of imports.formats (which re-exports these names).
"""

import zipfile
from array import array
from collections.abc import Iterator
from typing import IO

from .formats import (
    EXCERPT_CELLS,
    ImportFileError,
    RejectedCells,
    cell_text,
    import_limit,
)

XLSX_MAX_UNCOMPRESSED_BYTES = 2 * 1024**3
XLSX_MAX_RATIO = 200  # real sheets compress ~10-30x; bombs compress 1000x+
XLSX_MAX_MEMBERS = 10_000


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
