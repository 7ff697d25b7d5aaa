"""SQLite literal quoting and size-bounded multi-row upsert statements for D1.

D1 allows 100 bound parameters per statement, which with ~50 columns means
two rows per INSERT; literal multi-row statements sized by UTF-8 bytes carry
hundreds. Everything here is pure (no Django, no I/O) so the property tests
can hammer it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

# D1 rejects statements above 100,000 bytes (SQLITE_TOOBIG) and above 100
# bound parameters; we keep a margin below the byte limit for safety.
D1_MAX_STATEMENT_BYTES = 100_000
D1_MAX_PARAMS = 100
STATEMENT_BYTE_BUDGET = 99_000
# D1 refuses rows or values above 2 MB; such a row cannot land anywhere.
D1_MAX_VALUE_BYTES = 2_000_000


class UnencodableValue(ValueError):
    """A value that no SQLite literal or parameter can carry faithfully."""


def _text_literal(value: str) -> str:
    if "\x00" in value:
        # SQLite's tokenizer stops at NUL, so a NUL cannot sit inside a quoted
        # literal. A hex blob cast to TEXT keeps every byte. PostgreSQL text
        # cannot hold NUL at all, so only direct callers ever reach this path.
        return f"CAST(X'{value.encode('utf-8').hex()}' AS TEXT)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates: not valid UTF-8 anywhere
        raise UnencodableValue(f"text is not valid Unicode: {exc}") from exc
    return "'" + value.replace("'", "''") + "'"


def d1_timestamp(value: dt.datetime) -> str:
    """D1's TIMESTAMP text: 'YYYY-MM-DD HH:MM:SS' in UTC, like CURRENT_TIMESTAMP."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def d1_value(value: object) -> object:
    """The Python value D1 stores for `value` (what our literal evaluates to)."""
    if value is None or isinstance(value, str | int | float | bytes):
        return int(value) if isinstance(value, bool) else value
    if isinstance(value, dt.datetime):
        return d1_timestamp(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, list | dict):
        return json_text(value)
    raise UnencodableValue(f"unsupported type {type(value).__name__}")


def json_text(value: object) -> str:
    # Compact and non-ASCII kept as is: D1 JSON columns hold plain text.
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError, RecursionError) as exc:
        # NaN/Infinity (jsonb keeps 1 followed by 400 digits then .5; Python reads it as inf),
        # a key or value JSON has no form for, nesting past the interpreter's depth.
        raise UnencodableValue(f"JSON value cannot be written: {exc}") from exc


def _decimal_text(value: Decimal) -> str:
    if not value.is_finite():
        raise UnencodableValue(f"non-finite decimal {value}")
    return format(value, "f")


def _float_literal(value: float) -> str:
    if not math.isfinite(value):
        raise UnencodableValue(f"non-finite float {value}")
    text = repr(value)
    # 1e+16 is a valid SQLite real literal; "inf" never gets here.
    return text


def sql_literal(value: object) -> str:
    """Exact SQLite literal for one value (NULL, integer, real, text or blob)."""
    if value is None:
        return "NULL"
    kind = type(value)
    if kind is str:
        return _text_literal(value)
    if kind is bool:
        return "1" if value else "0"
    if kind is int:
        if not -(2**63) <= value < 2**63:
            raise UnencodableValue(f"integer {value} is outside SQLite's 64-bit range")
        return str(value)
    if kind is float:
        return _float_literal(value)
    if isinstance(value, dt.datetime):
        return "'" + d1_timestamp(value) + "'"
    if isinstance(value, dt.date):
        return "'" + value.isoformat() + "'"
    if isinstance(value, Decimal):
        # NUMERIC affinity: D1's DECIMAL(12,2) stores it as INTEGER or REAL.
        return _decimal_text(value)
    if isinstance(value, list | dict):
        return _text_literal(json_text(value))
    if isinstance(value, bytes):
        return f"X'{value.hex()}'"
    raise UnencodableValue(f"unsupported type {kind.__name__}")


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Statement:
    sql: str
    params: tuple = ()
    # What the statement writes (PreparedRow objects or keys), so a rejected
    # statement can be split to find the offending row.
    rows: tuple = field(default=(), compare=False, repr=False)

    @property
    def size(self) -> int:
        return len(self.sql.encode("utf-8"))

    def payload(self) -> dict:
        body: dict = {"sql": self.sql}
        if self.params:
            body["params"] = list(self.params)
        return body


@dataclass(frozen=True)
class PreparedRow:
    """A row ready to pack: its key, its literal `(v1,v2,...)` and the raw values (for binding)."""

    key: object
    literal: str
    values: tuple


def prepare_row(values: Sequence[object], key_index: int = 0) -> PreparedRow:
    return PreparedRow(values[key_index], "(" + ",".join(sql_literal(v) for v in values) + ")", tuple(values))


@dataclass
class UpsertBuilder:
    """Packs rows into `INSERT ... VALUES (...),(...) ON CONFLICT DO UPDATE` statements.

    `guard` is an optional SQL condition appended to the DO UPDATE (for
    example a monotonic run check so a late duplicate cannot overwrite a
    newer row). A row whose literal does not fit the byte budget is bound as
    parameters, alone in its statement.
    """

    table: str
    columns: Sequence[str]
    key: str
    guard: str = ""
    budget: int = STATEMENT_BYTE_BUDGET

    def __post_init__(self) -> None:
        cols = ", ".join(quote_ident(c) for c in self.columns)
        updates = ", ".join(
            f"{quote_ident(c)} = excluded.{quote_ident(c)}" for c in self.columns if c != self.key
        )
        # Identifiers are quoted; every value goes through sql_literal.
        self.head = f"INSERT INTO {quote_ident(self.table)} ({cols}) VALUES "  # noqa: S608
        tail = f" ON CONFLICT({quote_ident(self.key)}) DO UPDATE SET {updates}"
        if self.guard:
            tail += f" WHERE {self.guard}"
        self.tail = tail
        self.key_index = list(self.columns).index(self.key)
        self.fixed = len(self.head.encode()) + len(self.tail.encode())

    def prepare(self, values: Sequence[object]) -> PreparedRow:
        return prepare_row(values, self.key_index)

    def statements(
        self, rows: Iterable[PreparedRow], on_error: Callable[[object, str], None] | None = None
    ) -> Iterator[Statement]:
        """Yield statements of at most `budget` bytes; rows no statement can carry go to `on_error`."""
        parts: list[str] = []
        batch: list[PreparedRow] = []
        used = self.fixed
        for row in rows:
            size = len(row.literal.encode("utf-8"))
            if self.fixed + size > self.budget:
                try:
                    yield self.bound_statement(row)
                except UnencodableValue as exc:
                    if on_error is None:
                        raise
                    on_error(row.key, str(exc))
                continue
            extra = size + (1 if parts else 0)
            if parts and used + extra > self.budget:
                yield self._literal_statement(parts, batch)
                parts, batch, used = [], [], self.fixed
                extra = size
            parts.append(row.literal)
            batch.append(row)
            used += extra
        if parts:
            yield self._literal_statement(parts, batch)

    def _literal_statement(self, parts: list[str], batch: list[PreparedRow]) -> Statement:
        return Statement(self.head + ",".join(parts) + self.tail, (), tuple(batch))

    def bound_statement(self, row: PreparedRow) -> Statement:
        """One row whose literal is too large: its big values become parameters."""
        pieces: list[str] = []
        params: list = []
        for value in row.values:
            literal = sql_literal(value)
            if len(literal) > 256:
                bound = d1_value(value)
                if isinstance(bound, bytes):
                    raise UnencodableValue("blobs cannot travel as JSON parameters")
                if isinstance(bound, str) and len(bound.encode("utf-8")) > D1_MAX_VALUE_BYTES:
                    raise UnencodableValue(f"value of {len(bound.encode())} bytes exceeds D1's 2 MB limit")
                params.append(bound)
                pieces.append("?")
            else:
                pieces.append(literal)
        if len(params) > D1_MAX_PARAMS:
            raise UnencodableValue("row needs more bound parameters than D1 allows")
        sql = self.head + "(" + ",".join(pieces) + ")" + self.tail
        if len(sql.encode("utf-8")) > self.budget:
            raise UnencodableValue("row does not fit a D1 statement even with bound parameters")
        return Statement(sql, tuple(params), (row,))


def delete_statements(
    table: str, key: str, ids: Iterable[object], *, where: str = "", budget: int = STATEMENT_BYTE_BUDGET
) -> Iterator[Statement]:
    """`DELETE FROM table WHERE key IN (...) [AND where]` statements within the byte budget."""
    head = f"DELETE FROM {quote_ident(table)} WHERE {quote_ident(key)} IN ("  # noqa: S608
    close = ")" + (f" AND {where}" if where else "")
    parts: list[str] = []
    chunk: list = []
    used = len(head) + len(close)
    for row_id in ids:
        literal = sql_literal(row_id)
        size = len(literal.encode("utf-8")) + 1
        if parts and used + size > budget:
            yield Statement(head + ",".join(parts) + close, (), tuple(chunk))
            parts, chunk, used = [], [], len(head) + len(close)
        parts.append(literal)
        chunk.append(row_id)
        used += size
    if parts:
        yield Statement(head + ",".join(parts) + close, (), tuple(chunk))


def split_sql(sql: str) -> list[str]:
    """Split a migration file into statements (quotes, comments, trigger bodies respected)."""
    out: list[str] = []
    start = i = depth = 0
    n = len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            i += 1
            while i < n:
                if sql[i] == c:
                    if i + 1 < n and sql[i + 1] == c:
                        i += 2
                        continue
                    break
                i += 1
            i += 1
        elif c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j
        elif c == "/" and sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif (c.isalpha() or c == "_") and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            j = i
            while j < n and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            word = sql[i:j].upper() if j - i <= 5 else ""
            if word == "END" and depth:
                depth -= 1
            elif word == "BEGIN":
                # Only looked at for BEGIN, or long statements would go quadratic.
                head = re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql[start:i], flags=re.S).upper().split()
                if head[:1] == ["CREATE"] and "TRIGGER" in head:
                    depth += 1
            i = j
        elif c == ";" and depth == 0:
            stmt = _strip_comments_only(sql[start:i])
            if stmt:
                out.append(stmt)
            start = i = i + 1
        else:
            i += 1
    tail = _strip_comments_only(sql[start:])
    if tail:
        out.append(tail)
    return out


def _strip_comments_only(text: str) -> str:
    stripped = text.strip()
    lines = [ln for ln in stripped.splitlines() if ln.strip() and not ln.strip().startswith("--")]
    return stripped if lines else ""
