"""The agent file generator: determinism, realism, validity, invalid rows, formats, command."""

import csv
import io
import json
import re
import unicodedata
from collections import Counter
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from openpyxl import load_workbook

from agents.generator import (
    AGENT_FILE_COLUMNS,
    BOOLEAN_COLUMNS,
    DECIMAL_COLUMNS,
    INTEGER_COLUMNS,
    INVALID_KIND_COLUMNS,
    INVALID_KINDS,
    JSON_COLUMNS,
    STATE_PLACES,
    agent_file_write,
    agent_rows_generate,
    industry_rules_from_seed,
    invalid_count,
    invalid_rows_expected,
)
from agents.validation import AgentValidator
from industries.constants import AGENT_STATUSES, SUBSCRIPTION_TIERS, US_STATES
from industries.seed import INDUSTRIES

SEED_INDUSTRIES = {ind["industry"]: ind for ind in INDUSTRIES}


@pytest.fixture(scope="module")
def validator():
    return AgentValidator(industry_rules_from_seed())


@pytest.fixture(scope="module")
def rows_2000():
    return list(agent_rows_generate(count=2000, seed=42))


def write(tmp_path, *, count, seed=42, invalid_rate=0.0, fmt="csv", name=None):
    path = tmp_path / (name or f"agents-{count}-{seed}-{invalid_rate}.{fmt}")
    rows = agent_rows_generate(count=count, seed=seed, invalid_rate=invalid_rate)
    summary = agent_file_write(rows=rows, out=path, fmt=fmt)
    return path, summary


def typed_from_csv(cell_row: dict[str, str]) -> dict:
    """Convert CSV/XLSX cell text back to typed values, independently of the generator's writer."""
    values = {}
    for column, text in cell_row.items():
        if text is None or text == "":
            values[column] = None
        elif column in JSON_COLUMNS:
            try:
                values[column] = json.loads(text)
            except json.JSONDecodeError:
                values[column] = text  # malformed: the validator sees a str, not a list
        elif column in INTEGER_COLUMNS:
            values[column] = int(text)
        elif column in BOOLEAN_COLUMNS:
            values[column] = {"true": True, "false": False}[text]
        elif column in DECIMAL_COLUMNS:
            values[column] = Decimal(text)
        else:
            values[column] = text
    return values


def typed_from_json(obj: dict) -> dict:
    values = dict(obj)
    for column in DECIMAL_COLUMNS:
        if values.get(column) is not None:
            values[column] = Decimal(values[column])
    return values


def read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == AGENT_FILE_COLUMNS
        return list(reader)


# --- determinism ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "json", "xlsx"])
def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path, fmt):
    first, _ = write(tmp_path, count=150, seed=7, invalid_rate=0.1, fmt=fmt, name=f"a.{fmt}")
    second, _ = write(tmp_path, count=150, seed=7, invalid_rate=0.1, fmt=fmt, name=f"b.{fmt}")
    other, _ = write(tmp_path, count=150, seed=8, invalid_rate=0.1, fmt=fmt, name=f"c.{fmt}")
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_valid_rows_do_not_depend_on_invalid_rate_or_count():
    clean = list(agent_rows_generate(count=300, seed=3))
    dirty = list(agent_rows_generate(count=300, seed=3, invalid_rate=0.3))
    longer = list(agent_rows_generate(count=400, seed=3))
    assert [r.values for r in longer[:300]] == [r.values for r in clean]
    untouched = [(c.values, d.values) for c, d in zip(clean, dirty, strict=True) if d.invalid_kind is None]
    assert len(untouched) == 300 - invalid_count(count=300, invalid_rate=0.3)
    assert all(c == d for c, d in untouched)


# --- validity ---------------------------------------------------------------------------------


def test_every_generated_row_passes_the_validator(rows_2000, validator):
    failures = [(r.index, errors) for r in rows_2000 if (errors := validator.validate(r.values))]
    assert failures == []
    assert all(r.invalid_kind is None for r in rows_2000)


def test_csv_round_trip_passes_the_validator(tmp_path, validator):
    path, summary = write(tmp_path, count=1000, seed=11)
    cells = read_csv(path)
    assert len(cells) == summary.rows_written == 1000
    failures = [
        (i, errors) for i, row in enumerate(cells) if (errors := validator.validate(typed_from_csv(row)))
    ]
    assert failures == []


def test_seed_rules_match_the_industry_data_migration(db):
    from industries.selectors import industry_rules_get

    from_db = industry_rules_get()
    from_seed = industry_rules_from_seed()
    assert from_seed.keys() == from_db.keys()
    for slug, rule in from_seed.items():
        db_rule = from_db[slug]
        assert rule.professions == db_rule.professions
        assert (rule.license_re and rule.license_re.pattern) == (
            db_rule.license_re and db_rule.license_re.pattern
        )


# --- invalid rows -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "rate", "expected"),
    [(1000, 0.0, 0), (1000, 0.1, 100), (999, 0.25, 250), (10, 1.0, 10), (7, 0.5, 4), (0, 0.5, 0)],
)
def test_invalid_count_is_exact(count, rate, expected):
    assert invalid_count(count=count, invalid_rate=rate) == expected
    plan = invalid_rows_expected(count=count, seed=1, invalid_rate=rate)
    assert len(plan) == expected
    assert all(0 <= index < count for index in plan)
    rows = list(agent_rows_generate(count=count, seed=1, invalid_rate=rate))
    assert {r.index: r.invalid_kind for r in rows if r.invalid_kind} == plan


def test_invalid_rate_out_of_range_is_refused():
    with pytest.raises(ValueError, match="between 0 and 1"):
        invalid_count(count=10, invalid_rate=1.5)


def test_invalid_csv_rows_fail_on_exactly_their_documented_column(tmp_path, validator):
    count, rate = 900, 0.1
    expected = invalid_rows_expected(count=count, seed=42, invalid_rate=rate)
    path, summary = write(tmp_path, count=count, seed=42, invalid_rate=rate)
    assert summary.invalid_rows == len(expected) == 90
    assert set(expected.values()) == {k.kind for k in INVALID_KINDS}

    for index, cell_row in enumerate(read_csv(path)):
        errors = validator.validate(typed_from_csv(cell_row))
        if index in expected:
            assert set(errors) == {INVALID_KIND_COLUMNS[expected[index]]}, (index, expected[index], errors)
        else:
            assert errors == {}, (index, errors)


def test_invalid_json_rows_fail_on_exactly_their_documented_column(tmp_path, validator):
    expected = invalid_rows_expected(count=270, seed=5, invalid_rate=0.2)
    path, _ = write(tmp_path, count=270, seed=5, invalid_rate=0.2, fmt="json")
    objects = json.loads(path.read_text(encoding="utf-8"))
    for index, obj in enumerate(objects):
        errors = validator.validate(typed_from_json(obj))
        if index in expected:
            assert set(errors) == {INVALID_KIND_COLUMNS[expected[index]]}, (index, expected[index], errors)
        else:
            assert errors == {}, (index, errors)
    bad_json = [objects[i] for i, kind in expected.items() if kind == "bad_json"]
    assert bad_json and all(isinstance(o["service_zipcodes"], str) for o in bad_json)


def test_invalid_kinds_carry_the_documented_values():
    rows = [r for r in agent_rows_generate(count=200, seed=9, invalid_rate=0.5) if r.invalid_kind]
    by_kind = {}
    for row in rows:
        by_kind.setdefault(row.invalid_kind, []).append(row.values)
    assert all(v["state"] == "ZZ" for v in by_kind["bad_state"])
    assert all(v["industry"] == "astrology" for v in by_kind["unknown_industry"])
    assert all(v["email"] == "not-an-email" for v in by_kind["bad_email"])
    assert all(v["years_experience"] == -3 for v in by_kind["negative_number"])
    assert all(v["subscription_tier"] == "platinum" for v in by_kind["bad_tier"])
    assert all(v["name"] == "" for v in by_kind["missing_name"])
    assert by_kind["bad_price_ranges"]
    assert all(v["price_ranges"] == ["250000-500000"] for v in by_kind["bad_price_ranges"])
    for v in by_kind["wrong_profession"]:
        assert v["profession"] not in SEED_INDUSTRIES[v["industry"]]["professions"]
    for v in by_kind["bad_json"]:
        with pytest.raises(json.JSONDecodeError):
            json.loads(v["service_zipcodes"])


# --- realism ----------------------------------------------------------------------------------


def test_state_table_covers_exactly_the_state_codes():
    assert set(STATE_PLACES) == set(US_STATES)


def test_industries_states_professions_and_vocabularies(rows_2000):
    values = [r.values for r in rows_2000]
    assert {v["industry"] for v in values} == set(SEED_INDUSTRIES)
    assert len({v["state"] for v in values}) >= 50
    for v in values:
        seed = SEED_INDUSTRIES[v["industry"]]
        assert v["profession"] in seed["professions"]
        assert set(v["specializations"]) <= set(seed["specializations"])
        assert len(set(v["specializations"])) == len(v["specializations"])
        assert v["status"] in AGENT_STATUSES
        assert v["subscription_tier"] in SUBSCRIPTION_TIERS
        assert re.fullmatch(r"\+1 \d{3}-555-01\d{2}", v["phone"] or "+1 000-555-0100")
        assert all(re.fullmatch(r"\d{5}", z) for z in v["service_zipcodes"])
    assert len({v["profession"] for v in values}) >= 15


def test_names_are_messy_and_repeated(rows_2000):
    names = [r.values["name"] for r in rows_2000]
    assert any(not n.isascii() for n in names)  # José, Zoë, Núñez, Østergaard
    assert any("'" in n for n in names)  # O'Brien, D'Angelo
    assert any(", " in n for n in names)  # "Smith, Jr."
    assert any("-" in n for n in names)
    most_common_count = Counter(names).most_common(1)[0][1]
    assert most_common_count >= 10


def test_emails_are_ascii_and_derived_from_the_name(rows_2000):
    def folded(text):
        text = text.translate(str.maketrans({"ø": "o", "Ø": "O", "Þ": "Th", "þ": "th", "ł": "l", "Ł": "L"}))
        return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()

    for row in rows_2000:
        email = row.values["email"]
        assert email.isascii() and email.count("@") == 1
        local = email.split("@")[0]
        without_suffix = re.sub(r",? (Jr\.|Sr\.|III|II)$", "", row.values["name"])
        last_name_word = re.sub(r"[^a-z]", "", folded(without_suffix.split(" ")[-1]))
        assert last_name_word[:3] in re.sub(r"[^a-z]", "", local), (row.values["name"], email)


def test_bios_exercise_csv_quoting(rows_2000):
    bios = [r.values["bio"] for r in rows_2000 if r.values["bio"]]
    assert any("\n" in b for b in bios)
    assert any('"' in b for b in bios)
    assert any("," in b for b in bios)
    assert any(r.values["bio"] is None for r in rows_2000)


def test_ids_and_licences_are_unique(validator):
    rows = list(agent_rows_generate(count=5000, seed=13))
    ids = [r.values["id"] for r in rows]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"agt-[0-9a-f]{16}", i) for i in ids)
    keys = [(r.values["industry"], r.values["state"], r.values["license_number"]) for r in rows]
    assert all(k[2] for k in keys)
    assert len(set(keys)) == len(keys)


# --- formats ----------------------------------------------------------------------------------


def test_csv_cells_use_text_conventions(tmp_path):
    path, _ = write(tmp_path, count=300, seed=4)
    cells = read_csv(path)
    assert {c["ghost_profile"] for c in cells} == {"true", "false"}
    assert all(re.fullmatch(r"\d+\.\d{2}", c["total_volume_sold"]) for c in cells)
    assert all(isinstance(json.loads(c["price_ranges"]), dict) for c in cells)
    assert all(isinstance(json.loads(c["service_zipcodes"]), list) for c in cells)
    assert any(c["mls_id"] == "" for c in cells)  # empty optional -> empty cell


def test_json_output_is_an_array_of_typed_objects(tmp_path):
    path, summary = write(tmp_path, count=200, seed=4, fmt="json")
    objects = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(objects, list) and len(objects) == summary.rows_written == 200
    for obj in objects:
        assert tuple(obj) == AGENT_FILE_COLUMNS
        assert isinstance(obj["ghost_profile"], bool)
        assert isinstance(obj["years_experience"], int) and not isinstance(obj["years_experience"], bool)
        assert isinstance(obj["service_zipcodes"], list)
        assert isinstance(obj["price_ranges"], dict)
        assert re.fullmatch(r"\d+\.\d{2}", obj["total_volume_sold"])
    assert any(obj["mls_id"] is None for obj in objects)


def test_json_output_of_zero_rows_is_an_empty_array(tmp_path):
    path, _ = write(tmp_path, count=0, fmt="json")
    assert json.loads(path.read_text(encoding="utf-8")) == []


def test_xlsx_opens_with_header_and_rows(tmp_path, validator):
    path, _ = write(tmp_path, count=120, seed=6, fmt="xlsx")
    workbook = load_workbook(path, read_only=True)
    sheet = workbook.active
    rows = list(sheet.iter_rows(values_only=True))
    workbook.close()
    assert rows[0] == AGENT_FILE_COLUMNS
    assert len(rows) == 121
    for row in rows[1:]:
        cells = {c: ("" if v is None else str(v)) for c, v in zip(AGENT_FILE_COLUMNS, row, strict=True)}
        assert validator.validate(typed_from_csv(cells)) == {}


def test_stream_output_and_xlsx_refuses_a_stream():
    buffer = io.StringIO()
    summary = agent_file_write(rows=agent_rows_generate(count=5, seed=1), out=buffer, fmt="csv")
    assert summary.rows_written == 5
    assert len(list(csv.reader(io.StringIO(buffer.getvalue())))) == 6
    with pytest.raises(ValueError, match="XLSX"):
        agent_file_write(rows=agent_rows_generate(count=1, seed=1), out=io.BytesIO(), fmt="xlsx")


# --- management command -----------------------------------------------------------------------


def test_command_writes_file_and_reports_summary(tmp_path):
    out = tmp_path / "agents.csv"
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command(
        "generate_agents", "450", "--out", str(out), "--seed", "5", "--invalid-rate", "0.2",
        stdout=stdout, stderr=stderr,
    )  # fmt: skip
    cells = read_csv(out)
    assert len(cells) == 450
    expected_invalid = len(invalid_rows_expected(count=450, seed=5, invalid_rate=0.2))
    assert expected_invalid == 90
    report = stderr.getvalue()
    assert "wrote 450 rows (90 invalid" in report and str(out) in report
    assert stdout.getvalue() == ""
    assert not (tmp_path / "agents.csv.part").exists()

    # Same arguments through the library give the same bytes.
    again, _ = write(tmp_path, count=450, seed=5, invalid_rate=0.2, name="again.csv")
    assert again.read_bytes() == out.read_bytes()


def test_command_infers_format_from_extension_and_writes_stdout(tmp_path):
    out = tmp_path / "agents.json"
    call_command("generate_agents", "12", "--out", str(out), stderr=io.StringIO())
    assert len(json.loads(out.read_text(encoding="utf-8"))) == 12

    stdout = io.StringIO()
    call_command(
        "generate_agents", "7", "--out", "-", "--format", "json", stdout=stdout, stderr=io.StringIO()
    )
    assert json.loads(stdout.getvalue()) == json.loads(out.read_text(encoding="utf-8"))[:7]


def test_command_rejects_bad_arguments(tmp_path):
    with pytest.raises(CommandError, match="stdout"):
        call_command("generate_agents", "3", "--out", "-", "--format", "xlsx", stderr=io.StringIO())
    with pytest.raises(CommandError):
        call_command("generate_agents", "3", "--out", str(tmp_path / "x.csv"), "--invalid-rate", "1.5")
    with pytest.raises(CommandError):
        call_command("generate_agents", "-1", "--out", str(tmp_path / "x.csv"))
