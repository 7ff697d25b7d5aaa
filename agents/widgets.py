"""django-import-export widgets for agent columns: strict parsing with messages a user can act on.

`clean()` turns a cell (a string from CSV/XLSX, or a native value from JSON)
into the typed value the model stores, raising ValueError with a short
reason; `render()` turns it back for export.
"""

import json
import math
import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

from django.utils.dateparse import parse_datetime
from import_export import widgets

TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})
_INT_RE = re.compile(r"^[+-]?\d+$")
# PostgreSQL text and jsonb cannot hold NUL, and an unpaired surrogate is no Unicode at all
# (no UTF-8 carries it): either fails a whole COPY, so they are caught cell by cell.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
JSON_MAX_DEPTH_DEFAULT = 32
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def unstorable_text(text: str) -> str | None:
    """Why PostgreSQL cannot store `text` (a NUL, an unpaired surrogate), or None."""
    if text.isascii():
        return "contains a NUL character, which cannot be stored" if "\x00" in text else None
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character, which cannot be stored"
    return "contains an unpaired surrogate (not valid Unicode), which cannot be stored"


def storable_text(text: str) -> str:
    """`text` with what PostgreSQL cannot store replaced by U+FFFD (for messages and excerpts)."""
    return _UNSTORABLE.sub("\ufffd", text)


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


class TextWidget(widgets.Widget):
    """Text with surrounding white space dropped; a blank cell is NULL."""

    def clean(self, value, row=None, **kwargs):
        if value.__class__ is str:  # the common case (CSV cells), kept short: it runs per cell
            return value.strip() or None
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # XLSX stores "12345" typed as a number
        return str(value).strip() or None

    def render(self, value, obj=None, **kwargs):
        return "" if value is None else str(value)


class UpperCodeWidget(TextWidget):
    """Codes such as states: case-insensitive on input."""

    def clean(self, value, row=None, **kwargs):
        text = super().clean(value, row, **kwargs)
        return text.upper() if text is not None else None


class KeyWidget(TextWidget):
    """snake_case keys (industry slug, profession, tier...): case-insensitive on input."""

    def clean(self, value, row=None, **kwargs):
        text = super().clean(value, row, **kwargs)
        return text.lower() if text is not None else None


class IntegerWidget(widgets.Widget):
    def clean(self, value, row=None, **kwargs):
        if value.__class__ is str:
            text = value.strip()
            if not text:
                return None
            if text.isdigit():
                return int(text)
        elif value is None:
            return None
        if isinstance(value, bool):
            raise ValueError("expected a whole number, got a boolean")
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            if value.is_integer():
                return int(value)
            raise ValueError(f"expected a whole number, got {value!r}")
        text = str(value).strip().replace(",", "")
        if not _INT_RE.match(text):
            raise ValueError(f"expected a whole number, got {str(value)[:40]!r}")
        return int(text)

    def render(self, value, obj=None, **kwargs):
        return "" if value is None else str(value)


class DecimalWidget(widgets.Widget):
    def __init__(self, *, decimal_places: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.quantum = Decimal(1).scaleb(-decimal_places)

    def clean(self, value, row=None, **kwargs):
        if _blank(value):
            return None
        if isinstance(value, bool):
            raise ValueError("expected a number, got a boolean")
        text = str(value).strip().replace(",", "").lstrip("$")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValueError(f"expected a number, got {str(value)[:40]!r}") from None
        if not number.is_finite():
            raise ValueError(f"expected a finite number, got {text!r}")
        return number.quantize(self.quantum)

    def render(self, value, obj=None, **kwargs):
        return "" if value is None else str(value)


class BooleanWidget(widgets.Widget):
    def clean(self, value, row=None, **kwargs):
        if _blank(value):
            return None
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise ValueError(f"expected true/false, got {str(value)[:40]!r}")

    def render(self, value, obj=None, **kwargs):
        return "" if value is None else ("true" if value else "false")


class DateTimeWidget(widgets.Widget):
    """ISO 8601 or D1's 'YYYY-MM-DD HH:MM:SS'; a time without zone is UTC, as in D1."""

    def clean(self, value, row=None, **kwargs):
        if _blank(value):
            return None
        if isinstance(value, datetime):
            parsed = value
        elif isinstance(value, date):
            parsed = datetime(value.year, value.month, value.day)
        else:
            text = str(value).strip()
            try:
                parsed = parse_datetime(text)
                if parsed is None and len(text) == 10:
                    parsed = datetime.fromisoformat(text)
            except ValueError:
                parsed = None
            if parsed is None:
                raise ValueError(f"expected a date-time like 2024-05-01 13:30:00, got {text[:40]!r}")
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed

    def render(self, value, obj=None, **kwargs):
        if value is None:
            return ""
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _json_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _json_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e400, or 400 digits then .5: PostgreSQL keeps it, JSON output cannot
        raise ValueError(f"number {text[:20]}{'…' if len(text) > 20 else ''} is too large")
    return number


def _json_too_deep(text: str, limit: int) -> bool:
    """Whether JSON text nests deeper than `limit`, told without parsing it (no recursion)."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            return True
    return False


def _json_value_problem(value: object, limit: int, depth: int = 0) -> str | None:
    """What in a parsed JSON value PostgreSQL's jsonb or D1 cannot take, or None.

    `depth` counts the lists and objects around `value`, as _json_too_deep counts brackets.
    """
    if isinstance(value, str):
        return unstorable_text(value)
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value} is not a JSON number"
    if isinstance(value, list):
        items = value
    elif isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    else:
        return None
    if depth >= limit:
        return f"nested deeper than {limit} levels"
    for item in items:
        problem = _json_value_problem(item, limit, depth + 1)
        if problem:
            return problem
    return None


class JSONWidget(widgets.Widget):
    """A JSON list or object: JSON text in CSV/XLSX cells, a native value in JSON files.

    Everything Python's json accepts but PostgreSQL's jsonb or a JSON encoder
    refuses (NaN, Infinity, numbers that overflow, NUL, unpaired surrogates,
    nesting past IMPORT_JSON_MAX_DEPTH) is a row error here, not a failed chunk
    or a sync that can never render the row.
    """

    def __init__(self, *, expected: type, **kwargs):
        super().__init__(**kwargs)
        self.expected = expected

    @staticmethod
    def max_depth() -> int:
        from django.conf import settings

        return int(getattr(settings, "IMPORT_JSON_MAX_DEPTH", JSON_MAX_DEPTH_DEFAULT))

    def clean(self, value, row=None, **kwargs):
        if _blank(value):
            return None
        limit = self.max_depth()
        if isinstance(value, list | dict):
            parsed = value
        else:
            text = value if isinstance(value, str) else str(value)
            if _json_too_deep(text, limit):
                raise ValueError(f"JSON nested deeper than {limit} levels")
            try:
                parsed = json.loads(text, parse_constant=_json_constant, parse_float=_json_float)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"not valid JSON ({exc.__class__.__name__}: {exc})") from None
        if not isinstance(parsed, self.expected):
            wanted = "a list" if self.expected is list else "an object"
            raise ValueError(f"expected JSON {wanted}, got {type(parsed).__name__}")
        problem = _json_value_problem(parsed, limit)
        if problem:
            raise ValueError(f"JSON value {problem}")
        return parsed

    def render(self, value, obj=None, **kwargs):
        return "" if value is None else json.dumps(value, ensure_ascii=False)
