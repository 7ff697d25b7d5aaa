"""Our SQLite quoting, checked against the real D1 engine and the statement limits."""

import datetime as dt
import json
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.sqlite_sql import (
    D1_MAX_PARAMS,
    D1_MAX_STATEMENT_BYTES,
    Statement,
    UnencodableValue,
    UpsertBuilder,
    d1_timestamp,
    json_text,
    prepare_row,
    split_sql,
    sql_literal,
)

# Any Unicode scalar value: surrogates are not text in UTF-8, PostgreSQL or D1.
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
# D1 returns numbers through JavaScript: integers are exact within +-2**53.
INTS = st.integers(-(2**53), 2**53)
# SQLite's text-to-double conversion is not correctly rounded for large
# exponents (found by this test: 2.08920745296371e+173 came back one ulp off).
# Our schema has no float columns and DECIMAL(12,2) needs at most 14 digits,
# so the claim is: 15 significant digits, magnitudes 1e-6 to 1e15 (and 0), exact.
FLOATS = st.one_of(
    st.just(0.0), st.floats(min_value=1e-6, max_value=1e15), st.floats(min_value=-1e15, max_value=-1e-6)
).map(lambda x: float(f"{x:.15g}"))
TIMESTAMPS = st.datetimes(
    min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(9999, 12, 31), timezones=st.just(dt.UTC)
)
HYPO = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _select(d1, literals: list[str]) -> list:
    sql = "SELECT " + ", ".join(f"{lit} AS c{i}" for i, lit in enumerate(literals))
    return d1.rows(sql)[0]


@HYPO
@given(values=st.lists(TEXT, min_size=1, max_size=8))
def test_any_text_round_trips_through_d1(d1_empty, values):
    assert _select(d1_empty, [sql_literal(v) for v in values]) == values


@HYPO
@given(value=st.text(alphabet=st.sampled_from(["\x00", "a", "'", "é", "\n"]), min_size=1, max_size=20))
def test_text_with_nul_round_trips_through_d1(d1_empty, value):
    # PostgreSQL text cannot hold NUL, but the quoting is total anyway (hex blob cast to TEXT).
    assert _select(d1_empty, [sql_literal(value)]) == [value]


@HYPO
@given(ints=st.lists(INTS, min_size=1, max_size=5), floats=st.lists(FLOATS, min_size=1, max_size=5))
def test_numbers_round_trip_through_d1(d1_empty, ints, floats):
    got = _select(d1_empty, [sql_literal(v) for v in ints + floats])
    assert got[: len(ints)] == ints
    assert [float(g) for g in got[len(ints) :]] == floats


@HYPO
@given(value=JSON)
def test_json_round_trips_as_text_and_parses_in_d1(d1_empty, value):
    literal = sql_literal(value if isinstance(value, list | dict) else [value])
    text, valid = _select(d1_empty, [literal, f"json_valid({literal})"])
    assert json.loads(text) == (value if isinstance(value, list | dict) else [value])
    assert valid == 1


@HYPO
@given(ts=TIMESTAMPS, flag=st.booleans(), cents=st.integers(-(10**12) + 1, 10**12 - 1))
def test_timestamps_booleans_decimals_nulls(d1_empty, ts, flag, cents):
    amount = Decimal(cents).scaleb(-2)
    got = _select(d1_empty, [sql_literal(ts), sql_literal(flag), sql_literal(amount), sql_literal(None)])
    assert got[0] == ts.strftime("%Y-%m-%d %H:%M:%S")
    assert got[1] == int(flag)
    assert Decimal(str(got[2])).quantize(Decimal("0.01")) == amount
    assert got[3] is None


def test_timestamp_is_utc_in_d1_format():
    paris = dt.timezone(dt.timedelta(hours=2))
    assert d1_timestamp(dt.datetime(2024, 6, 1, 12, 30, 5, 999999, tzinfo=paris)) == "2024-06-01 10:30:05"


def test_unencodable_values_are_refused_not_mangled():
    with pytest.raises(UnencodableValue):
        sql_literal("\ud800")
    with pytest.raises(UnencodableValue):
        sql_literal(float("nan"))
    with pytest.raises(UnencodableValue):
        sql_literal(2**64)
    assert json_text({"é": "😀"}) == '{"é":"😀"}'


@pytest.mark.parametrize(
    "value",
    [[float("inf")], {"max": float("nan")}, [1e308 * 10], {("tuple", "key"): 1}, [{1, 2}]],
    ids=["inf", "nan", "overflow", "tuple-key", "set"],
)
def test_json_no_encoder_can_write_is_unencodable_not_a_bare_error(value):
    """What reaches json_text from jsonb (`1` + 400 digits + `.5` reads back as inf) must be refusable per row."""
    with pytest.raises(UnencodableValue):
        json_text(value)
    with pytest.raises(UnencodableValue):
        sql_literal(value)


ROWS = st.lists(
    st.tuples(
        TEXT,
        # big values cheaply: a short text repeated up to ~120 KB, beyond any literal budget
        st.one_of(st.none(), TEXT, st.builds(lambda t, n: (t or "x") * n, TEXT, st.integers(500, 30_000))),
        INTS,
        st.one_of(st.none(), st.lists(JSON, max_size=4), st.dictionaries(TEXT, JSON, max_size=4)),
    ),
    min_size=1,
    max_size=60,
    unique_by=lambda r: r[0],
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=ROWS)
def test_statements_stay_within_d1_limits_and_land_exactly(d1_empty, rows):
    """Every statement is <= 100,000 UTF-8 bytes and <= 100 parameters, and D1 stores the values sent."""
    d1_empty.execute(
        [
            Statement("DROP TABLE IF EXISTS q"),
            Statement("CREATE TABLE q (id TEXT PRIMARY KEY, a TEXT, n INTEGER, j JSON)"),
        ]
    )
    builder = UpsertBuilder(table="q", columns=("id", "a", "n", "j"), key="id", budget=20_000)
    statements = list(builder.statements(prepare_row(r) for r in rows))
    for stmt in statements:
        assert stmt.size <= min(D1_MAX_STATEMENT_BYTES, 20_000)
        assert len(stmt.params) <= D1_MAX_PARAMS
    for start in range(0, len(statements), 10):
        d1_empty.execute(statements[start : start + 10])
    got = {r[0]: r[1:] for r in d1_empty.rows("SELECT id, a, n, j FROM q")}
    assert got == {r[0]: [r[1], r[2], None if r[3] is None else json_text(r[3])] for r in rows}


def test_split_sql_respects_quotes_comments_and_trigger_bodies():
    sql = (
        "-- a comment; with a semicolon\nCREATE TABLE t (a TEXT DEFAULT ';');\n"
        "CREATE TRIGGER g BEFORE INSERT ON t BEGIN SELECT RAISE(IGNORE); SELECT 1; END;\n"
        "INSERT INTO t VALUES ('it''s; fine') /* ; */;"
    )
    parts = split_sql(sql)
    assert len(parts) == 3
    assert parts[1].startswith("CREATE TRIGGER") and parts[1].endswith("END")
