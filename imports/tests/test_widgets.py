from datetime import UTC, datetime
from decimal import Decimal

import pytest

from agents.widgets import BooleanWidget, DateTimeWidget, DecimalWidget, IntegerWidget, JSONWidget, TextWidget


@pytest.mark.parametrize(
    ("raw", "value"), [("true", True), ("YES", True), ("0", False), ("f", False), ("", None)]
)
def test_boolean(raw, value):
    assert BooleanWidget().clean(raw) is value


def test_boolean_rejects_other_words():
    with pytest.raises(ValueError, match="expected true/false"):
        BooleanWidget().clean("maybe")


@pytest.mark.parametrize(("raw", "value"), [("12", 12), ("1,200", 1200), (" -3 ", -3), (7.0, 7), ("", None)])
def test_integer(raw, value):
    assert IntegerWidget().clean(raw) == value


@pytest.mark.parametrize("raw", ["1.5", "ten", True])
def test_integer_rejects(raw):
    with pytest.raises(ValueError):
        IntegerWidget().clean(raw)


def test_decimal_quantizes_and_rejects():
    assert DecimalWidget().clean("$1,234.5") == Decimal("1234.50")
    with pytest.raises(ValueError):
        DecimalWidget().clean("12abc")
    with pytest.raises(ValueError):
        DecimalWidget().clean("NaN")


def test_datetime_formats_are_utc():
    assert DateTimeWidget().clean("2024-05-01 13:30:00") == datetime(2024, 5, 1, 13, 30, tzinfo=UTC)
    assert DateTimeWidget().clean("2024-05-01T13:30:00+02:00") == datetime(2024, 5, 1, 11, 30, tzinfo=UTC)
    assert DateTimeWidget().clean("2024-05-01") == datetime(2024, 5, 1, tzinfo=UTC)
    assert DateTimeWidget().render(datetime(2024, 5, 1, 11, 30, tzinfo=UTC)) == "2024-05-01 11:30:00"
    with pytest.raises(ValueError, match="expected a date-time"):
        DateTimeWidget().clean("yesterday")


def test_json_widget_types():
    assert JSONWidget(expected=list).clean('["a", "b"]') == ["a", "b"]
    assert JSONWidget(expected=list).clean(["a"]) == ["a"]
    assert JSONWidget(expected=dict).clean('{"min": 1}') == {"min": 1}
    with pytest.raises(ValueError, match="expected JSON a list, got dict|expected JSON a list"):
        JSONWidget(expected=list).clean('{"a": 1}')
    with pytest.raises(ValueError, match="not valid JSON"):
        JSONWidget(expected=list).clean('["90210"')


def test_text_widget():
    assert TextWidget().clean("  x  ") == "x"
    assert TextWidget().clean("   ") is None
    assert TextWidget().clean(12345.0) == "12345"
