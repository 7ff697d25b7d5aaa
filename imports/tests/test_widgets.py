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


OVERFLOWING = "1" + "0" * 400 + ".5"  # jsonb keeps it; Python's json reads it as inf


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[NaN]", "NaN is not a JSON number"),
        ('{"a": Infinity}', "Infinity is not a JSON number"),
        ("[-Infinity]", "-Infinity is not a JSON number"),
        (f"[{OVERFLOWING}]", "is too large"),
        ("[1e400]", "is too large"),
        ('["a\\u0000b"]', "NUL"),
        ('{"\\u0000": 1}', "NUL"),
        ('["\\ud800"]', "unpaired surrogate"),
        ('["x\\udfffy"]', "unpaired surrogate"),
        ("[" * 33 + "]" * 33, "nested deeper than 32"),
        ("[" * 200_000 + "]" * 200_000, "nested deeper than 32"),  # json.loads alone: RecursionError
        ('[{"a": ' * 20 + "1" + "}]" * 20, "nested deeper than 32"),
    ],
)
def test_json_widget_refuses_what_postgres_or_a_json_encoder_cannot_take(text, message):
    with pytest.raises(ValueError, match=message):
        JSONWidget(expected=list | dict).clean(text)


def test_json_widget_refuses_native_values_the_same_way():
    with pytest.raises(ValueError, match="not a JSON number"):
        JSONWidget(expected=list).clean([1.0, float("nan")])
    with pytest.raises(ValueError, match="NUL"):
        JSONWidget(expected=dict).clean({"k": ["a\x00"]})
    deep: list = []
    for _ in range(40):
        deep = [deep]
    with pytest.raises(ValueError, match="nested deeper than 32"):
        JSONWidget(expected=list).clean(deep)


def test_json_widget_keeps_what_is_fine_near_the_edges():
    assert JSONWidget(expected=list).clean('["\\ud83d\\ude00", "[[[[", 1.5e300]') == ["😀", "[[[[", 1.5e300]
    assert JSONWidget(expected=list).clean("[" * 32 + "]" * 32) is not None
    assert JSONWidget(expected=list).clean('["' + "[" * 100 + '"]') == ["[" * 100]  # brackets in a string
    assert JSONWidget(expected=list).clean("[1" + "0" * 400 + "]") == [10**400]  # an integer stays exact


def test_json_widget_depth_limit_is_a_setting(settings):
    settings.IMPORT_JSON_MAX_DEPTH = 3
    with pytest.raises(ValueError, match="nested deeper than 3"):
        JSONWidget(expected=list).clean("[[[[1]]]]")
    assert JSONWidget(expected=list).clean("[[[1]]]") == [[[1]]]
