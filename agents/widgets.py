"""django-import-export widgets for agent columns: strict parsing with messages a user can act on.

`clean()` turns a cell (a string from CSV/XLSX, or a native value from JSON)
into the typed value the model stores, raising ValueError with a short
reason; `render()` turns it back for export.
"""

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

from django.utils.dateparse import parse_datetime
from import_export import widgets

TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})
_INT_RE = re.compile(r"^[+-]?\d+$")


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


class JSONWidget(widgets.Widget):
    """A JSON list or object: JSON text in CSV/XLSX cells, a native value in JSON files."""

    def __init__(self, *, expected: type, **kwargs):
        super().__init__(**kwargs)
        self.expected = expected

    def clean(self, value, row=None, **kwargs):
        if _blank(value):
            return None
        if isinstance(value, list | dict):
            parsed = value
        else:
            try:
                parsed = json.loads(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"not valid JSON ({exc.__class__.__name__}: {exc})") from None
        if not isinstance(parsed, self.expected):
            wanted = "a list" if self.expected is list else "an object"
            raise ValueError(f"expected JSON {wanted}, got {type(parsed).__name__}")
        return parsed

    def render(self, value, obj=None, **kwargs):
        return "" if value is None else json.dumps(value, ensure_ascii=False)
