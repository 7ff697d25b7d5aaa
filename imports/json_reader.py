"""JSON reading: a streamed array of objects, its header keys, key-count limits.

Split out of imports.formats (which re-exports these names).
"""

import io
import json
import re
from collections.abc import Iterator
from itertools import islice
from typing import IO

from agents.resources import D1_AGENT_COLUMNS

from .formats import (
    EXCERPT_CELLS,
    HEADER_ALIASES,
    ImportFileError,
    PlanDeadline,
    RejectedCells,
    cell_text,
    header_key,
    import_limit,
)

JSON_READ_SIZE = 1 << 20
# How many key names of a JSON file that are not agent columns the warning lists.
JSON_UNKNOWN_KEYS_LISTED = 20
JSON_UNKNOWN_KEYS_COUNTED = 10_000


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
