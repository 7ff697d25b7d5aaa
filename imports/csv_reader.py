"""CSV reading: records with their byte ranges and lines, line endings, oversized rows, chunk rows.

Split out of imports.formats (which re-exports these names).
"""

import codecs
import csv
import io
import re
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from .formats import (
    EXCERPT_BYTES,
    ImportFileError,
    RejectedCells,
    import_limit,
)

CSV_FIELD_LIMIT = csv.field_size_limit()
CSV_READ_SIZE = 1 << 16


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


# --- a chunk's records, located by the index planning recorded --------------------


def record_index_pack(pairs: array) -> bytes:
    """(offset from the chunk's first byte, line) of each record, as little-endian uint32 pairs."""
    if sys.byteorder == "big":
        pairs = array(pairs.typecode, pairs)
        pairs.byteswap()
    return pairs.tobytes()


def record_index_unpack(data: bytes) -> array:
    pairs = array("I")
    pairs.frombytes(data)
    if sys.byteorder == "big":
        pairs.byteswap()
    return pairs


class ChunkRecords:
    """The records of one chunk's byte range, located by the index planning recorded.

    A record is parsed only when asked for, by csv_chunk_rows over its own
    bytes: exactly what reading the whole range gives for it. `raw` is its
    bytes as a digest sees them (imports.digests).
    """

    def __init__(self, data: bytes, index: bytes, *, encoding: str, staged: bool):
        pairs = record_index_unpack(index)
        self.data, self.encoding, self.staged = data, encoding, staged
        self.offsets = pairs[0::2]
        self.offsets.append(len(data))
        self.lines = pairs[1::2]

    def __len__(self) -> int:
        return len(self.lines)

    def raw(self, i: int) -> bytes:
        """The record's bytes without its line end (blank lines after it included)."""
        record = self.data[self.offsets[i] : self.offsets[i + 1]].rstrip(b"\r\n")
        # A staged record starts with its source line: the same row on another line is the same row.
        return record.lstrip(b"0123456789") if self.staged else record

    def row(self, i: int) -> tuple[int, list[str]]:
        """(line, cells) of the record, as csv_chunk_rows reads it."""
        window = self.data[self.offsets[i] : self.offsets[i + 1]]
        return next(
            csv_chunk_rows(window, encoding=self.encoding, first_line=self.lines[i], staged=self.staged)
        )
