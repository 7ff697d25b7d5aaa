"""The "estateflow" system checks: the Agent model against the D1 migrations, and the admin."""

from decimal import Decimal

import pytest
from django.core import checks
from django.db import models

from agents.admin import AgentAdmin
from agents.checks import (
    D1_BOOKKEEPING_COLUMNS,
    NO_DEFAULT,
    agent_admin_fieldset_gaps,
    agent_d1_differences,
    d1_agent_columns,
    d1_column_parse,
    d1_migration_sources,
    d1_tables_replay,
)
from agents.models import Agent
from agents.resources import BACK_OFFICE_ONLY_COLUMNS, D1_AGENT_COLUMNS

MIRRORED = [f for f in Agent._meta.concrete_fields if f.column not in BACK_OFFICE_ONLY_COLUMNS]


def _field(name: str, field: models.Field) -> models.Field:
    """A field as if declared on Agent (not added to the model)."""
    field.set_attributes_from_name(name)
    return field


def _d1_with(*sql: str) -> dict:
    """The D1 agents columns of the real migrations plus one more migration file."""
    return d1_agent_columns([*d1_migration_sources(), ("006_test.sql", ";\n".join(sql))])


def _ids(messages) -> list[tuple[str, str]]:
    return [(m.id, m.msg.split(":")[0].split(" ")[0]) for m in messages]


def test_the_real_tree_passes():
    assert checks.run_checks(tags=["estateflow"]) == []


def test_the_migrations_give_every_mirrored_column_and_the_bookkeeping():
    d1 = d1_agent_columns()
    assert set(d1) == set(D1_AGENT_COLUMNS) | D1_BOOKKEEPING_COLUMNS
    assert "photo" not in d1
    assert d1["total_volume_sold"].declared_type == "DECIMAL(12,2)"
    assert d1["total_volume_sold"].affinity == "NUMERIC" and d1["profile_views"].affinity == "INTEGER"
    assert d1["property_types"].default == '["single_family","condo"]'
    assert (d1["slug"].not_null, d1["id"].primary_key, d1["ghost_profile"].default) == (True, True, True)


def test_a_field_without_its_d1_migration_is_an_error_that_says_what_to_add():
    nickname = _field("nickname", models.CharField(max_length=40, default="none"))
    messages = agent_d1_differences([*MIRRORED, nickname], d1_agent_columns(), next_migration="006")
    assert _ids(messages) == [("estateflow.E001", "agents.nickname")]
    assert isinstance(messages[0], checks.Error) and "'nickname' has no D1 column" in messages[0].msg
    assert "006_" in messages[0].hint
    assert "ALTER TABLE agents ADD COLUMN nickname TEXT DEFAULT 'none';" in messages[0].hint
    # The migration the hint names makes the check pass.
    d1 = _d1_with("ALTER TABLE agents ADD COLUMN nickname TEXT DEFAULT 'none'")
    assert agent_d1_differences([*MIRRORED, nickname], d1) == []


@pytest.mark.parametrize(
    ("field", "declaration", "expected"),
    [
        (models.CharField(max_length=5, null=True), "INTEGER", "INTEGER (INTEGER affinity)"),
        (models.IntegerField(null=True), "TEXT", "TEXT (TEXT affinity)"),
        # Same affinity (NUMERIC), other type: the declared name tells them apart.
        (models.DateTimeField(null=True), "BOOLEAN", "BOOLEAN (NUMERIC affinity)"),
        (models.JSONField(null=True), "TEXT", "TEXT (TEXT affinity)"),
    ],
)
def test_a_type_that_differs_is_an_error(field, declaration, expected):
    field = _field("extra", field)
    messages = agent_d1_differences(
        [*MIRRORED, field], _d1_with(f"ALTER TABLE agents ADD COLUMN extra {declaration}")
    )
    assert _ids(messages) == [("estateflow.E003", "agents.extra")]
    assert f"is a {field.get_internal_type()} but 006_test.sql declares {expected}" in messages[0].msg


def test_a_d1_column_without_a_field_is_an_error_but_bookkeeping_is_not():
    messages = agent_d1_differences(MIRRORED, _d1_with("ALTER TABLE agents ADD COLUMN legacy_rank INTEGER"))
    assert _ids(messages) == [("estateflow.E002", "agents.legacy_rank")]
    assert "006_test.sql" in messages[0].msg
    assert {"sync_version", "sync_run"} <= set(d1_agent_columns())  # present, and not reported above


def test_not_null_in_d1_for_a_nullable_field_is_an_error():
    field = _field("extra", models.CharField(max_length=5, null=True))
    d1 = _d1_with("ALTER TABLE agents ADD COLUMN extra TEXT NOT NULL DEFAULT ''")
    messages = agent_d1_differences([*MIRRORED, field], d1)
    assert ("estateflow.E004", "agents.extra") in _ids(messages)
    # The other way round is how the live schema is: NOT NULL here, nullable with a default in D1.
    assert not d1_agent_columns()["status"].not_null and not Agent._meta.get_field("status").null


@pytest.mark.parametrize(
    ("field", "d1_default"),
    [
        (models.CharField(max_length=5, default="a"), "'b'"),
        (models.CharField(max_length=5, default="a"), None),
        (models.IntegerField(default=3), "4"),
        (models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("1.50")), "1.25"),
        (models.BooleanField(default=False), "true"),
        (models.JSONField(default=list), "'{}'"),
        (models.JSONField(default=dict, null=True), "'not json'"),
    ],
)
def test_a_default_that_differs_is_an_error(field, d1_default):
    field = _field("extra", field)
    declaration = {"CharField": "TEXT", "IntegerField": "INTEGER", "DecimalField": "DECIMAL(5,2)",
                   "BooleanField": "BOOLEAN", "JSONField": "JSON"}[field.get_internal_type()]  # fmt: skip
    d1 = _d1_with(
        f"ALTER TABLE agents ADD COLUMN extra {declaration}"
        + (f" DEFAULT {d1_default}" if d1_default else "")
    )
    messages = agent_d1_differences([*MIRRORED, field], d1)
    assert _ids(messages) == [("estateflow.E005", "agents.extra")]
    assert "the defaults differ" in messages[0].msg
    # The same default written the D1 way passes (0/1 for booleans, JSON text, numbers).
    same = {"CharField": "'a'", "IntegerField": "3", "DecimalField": "1.5", "BooleanField": "0",
            "JSONField": "'[]'" if field.default is list else "'{}'"}[field.get_internal_type()]  # fmt: skip
    d1 = _d1_with(f"ALTER TABLE agents ADD COLUMN extra {declaration} DEFAULT {same}")
    assert agent_d1_differences([*MIRRORED, field], d1) == []


def test_the_replay_follows_renames_drops_quotes_and_constraints():
    tables = d1_tables_replay(
        [
            (
                "001.sql",
                """-- a comment; with a semicolon
                CREATE TABLE IF NOT EXISTS agents (
                    id TEXT PRIMARY KEY,
                    "odd, name" VARCHAR(10) NOT NULL DEFAULT 'it''s, here' CHECK (length("odd, name") > 0),
                    price DECIMAL(12, 2) DEFAULT -1.5 REFERENCES prices(id),
                    seen TIMESTAMP DEFAULT (datetime('now')),
                    UNIQUE (price)
                );
                CREATE TABLE IF NOT EXISTS agents (ignored TEXT);
                CREATE INDEX idx ON agents(price);""",
            ),
            (
                "002.sql",
                """ALTER TABLE agents RENAME COLUMN price TO cost;
                ALTER TABLE agents ADD flag BOOLEAN DEFAULT FALSE;
                ALTER TABLE agents DROP COLUMN seen;
                ALTER TABLE other ADD COLUMN nowhere TEXT;""",
            ),
        ]
    )
    agents = tables["agents"]
    assert list(agents) == ["id", "odd, name", "cost", "flag"]
    odd = agents["odd, name"]
    assert (odd.declared_type, odd.affinity, odd.not_null, odd.default) == (
        "VARCHAR(10)",
        "TEXT",
        True,
        "it's, here",
    )
    assert (agents["cost"].declared_type, agents["cost"].default) == ("DECIMAL(12,2)", Decimal("-1.5"))
    assert (agents["flag"].default, agents["flag"].source) == (False, "002.sql")
    assert d1_column_parse("bare").default is NO_DEFAULT and d1_column_parse("bare").affinity == "BLOB"


def test_a_field_in_no_admin_fieldset_is_a_warning():
    assert agent_admin_fieldset_gaps(AgentAdmin) == []

    class Lacking(AgentAdmin):
        fieldsets = tuple(
            (title, {**options, "fields": tuple(f for f in options["fields"] if f != "mls_id")})
            for title, options in AgentAdmin.fieldsets
        )

    messages = agent_admin_fieldset_gaps(Lacking)
    assert [(m.id, m.level) for m in messages] == [("estateflow.W001", checks.WARNING)]
    assert "'mls_id' is in no fieldset of Lacking" in messages[0].msg
