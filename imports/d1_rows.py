"""Rows pulled from D1 (`manage.py d1_pull`): typed as they are in D1, warned about, never refused for a rule.

A pull's staged file holds one JSON value per cell (what D1's /raw answered:
text, integer, real or null), so NULL and "" stay apart and numbers keep
their type. D1 already serves these rows: a rule of ours they break
(`profession = 'agent'` on a legal agent, a licence off its pattern) is a
warning; only what PostgreSQL itself cannot store is an error.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from django.utils.dateparse import parse_datetime

from agents.models import Agent
from agents.validation import AgentValidator
from industries.selectors import IndustryRule

from .rows import ParsedRow, RowError, excerpt

INT32 = (-(2**31), 2**31 - 1)
JSON_MAX_DEPTH = 64


class _Unstorable(ValueError):
    """PostgreSQL cannot hold this value in this column."""


def _no_constant(name: str) -> object:
    raise _Unstorable(f"JSON holds {name}, which PostgreSQL's jsonb cannot store")


def _depth(value: object, limit: int = JSON_MAX_DEPTH) -> int:
    stack, deepest = [(value, 1)], 1
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > limit:
            return depth
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _text(value: object, field) -> str:
    text = value if isinstance(value, str) else json.dumps(value) if isinstance(value, float) else str(value)
    if "\x00" in text:
        raise _Unstorable("text holds a NUL character, which PostgreSQL cannot store")
    if field.max_length and len(text) > field.max_length:
        raise _Unstorable(f"{len(text)} characters; this column holds at most {field.max_length}")
    return text


def _typed(value: object, field) -> object:
    """D1's value for `field` as the Python value the column stores, or _Unstorable."""
    if value is None:
        if not field.null:
            raise _Unstorable("NULL in D1; this column requires a value")
        return None
    kind = field.get_internal_type()
    if kind == "BooleanField":
        if value in (0, 1, "0", "1", "true", "false", "TRUE", "FALSE"):
            return value in (1, "1", "true", "TRUE")
        raise _Unstorable(f"{value!r} is not a boolean")
    if kind == "IntegerField":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError as exc:
                raise _Unstorable(f"{value!r} is not an integer") from exc
        if not isinstance(value, int) or not INT32[0] <= value <= INT32[1]:
            raise _Unstorable(f"{value!r} is not a 32-bit integer")
        return value
    if kind == "DecimalField":
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise _Unstorable(f"{value!r} is not a number") from exc
        digits = field.max_digits - field.decimal_places
        if not number.is_finite() or abs(number) >= Decimal(10) ** digits:
            raise _Unstorable(f"{value!r} does not fit NUMERIC({field.max_digits},{field.decimal_places})")
        return number
    if kind == "DateTimeField":
        parsed = parse_datetime(str(value).strip()) if isinstance(value, str) else None
        if parsed is None:
            raise _Unstorable(f"{value!r} is not a timestamp")
        # D1's CURRENT_TIMESTAMP and datetime('now') are UTC without a zone.
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    if kind == "JSONField":
        if not isinstance(value, str):
            return value  # a bare number in a JSON column is JSON too
        try:
            decoded = json.loads(value, parse_constant=_no_constant)
        except (ValueError, RecursionError) as exc:
            if isinstance(exc, _Unstorable):
                raise
            raise _Unstorable(f"not valid JSON: {exc}") from exc
        if _depth(decoded) > JSON_MAX_DEPTH:
            raise _Unstorable(f"JSON nested deeper than {JSON_MAX_DEPTH} levels")
        if "\\u0000" in value:
            raise _Unstorable("JSON text holds \\u0000, which PostgreSQL's jsonb cannot store")
        if any(isinstance(v, float) and not math.isfinite(v) for v in _floats(decoded)):
            raise _Unstorable("JSON holds a number too large for jsonb")
        return decoded
    return _text(value, field)


def _floats(value: object):
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


class D1RowParser:
    """Parses a pull's staged cells (one JSON value each) into an agent's column values."""

    def __init__(self, columns: list[str | None], industry_rules: Mapping[str, IndustryRule]):
        fields = {f.column: f for f in Agent._meta.concrete_fields}
        self.plan = [(i, c, fields[c]) for i, c in enumerate(columns) if c in fields]
        self.industry_rules = industry_rules
        self.validator = AgentValidator(industry_rules)

    def parse(self, line: int, cells: list[str]) -> ParsedRow:
        row = ParsedRow(line=line, values={}, cells=cells)
        for position, column, field in self.plan:
            raw = cells[position] if position < len(cells) else "null"
            try:
                value = json.loads(raw) if raw else None
                row.values[column] = _typed(value, field)
            except (ValueError, RecursionError) as exc:
                message = str(exc) if isinstance(exc, _Unstorable) else f"unreadable staged cell: {exc}"
                row.errors.append(
                    RowError(line, column, excerpt(raw), f"PostgreSQL cannot store it: {message}")
                )
                continue
            if column == "industry" and row.values[column] not in self.industry_rules:
                row.errors.append(
                    RowError(line, column, excerpt(row.values[column]), "no such industry in industry_config")
                )
        if row.errors:
            return row
        checked = {k: v for k, v in row.values.items() if v is not None or k in ("name", "state")}
        doubts = {**self.validator.validate(checked), **self.validator.warnings(checked)}
        for column, message in doubts.items():
            row.warnings.append(RowError(line, column, excerpt(row.values.get(column, "")), message))
        return row


def pull_conflicts_flag(rows: list[ParsedRow]) -> list[str]:
    """Existing agents whose PostgreSQL version differs from D1's: PostgreSQL wins, each row warned.

    Returns their ids (the caller keeps them pending for the next sync).
    """
    existing = [r for r in rows if r.exists]
    if not existing:
        return []
    columns = [c for c in rows[0].values if c != "id"]
    attnames = {f.column: f.attname for f in Agent._meta.concrete_fields}
    current = {
        values[0]: dict(zip(columns, values[1:], strict=True))
        for values in Agent.objects.filter(pk__in=[r.values["id"] for r in existing]).values_list(
            "id", *(attnames[c] for c in columns)
        )
    }
    conflicted = []
    for r in existing:
        mine = current.get(r.values["id"])
        if mine is None:
            continue
        differing = [c for c in columns if mine[c] != r.values.get(c)]
        if differing:
            conflicted.append(r.values["id"])
            shown = ", ".join(differing[:8]) + (" …" if len(differing) > 8 else "")
            r.warnings.append(
                RowError(
                    r.line,
                    differing[0],
                    excerpt(r.values.get(differing[0])),
                    f"conflict: PostgreSQL's version kept (differs in {shown}); the next sync writes it to D1",
                )
            )
    return conflicted
