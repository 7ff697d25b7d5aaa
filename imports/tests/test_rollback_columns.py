"""A rollback restores the columns its journal holds and leaves the columns added since alone.

Between an import and its rollback a migration may add a column. The journal's
rows (`before`) were written without it, so the rollback has no prior value
for it: the column keeps what it holds now (a re-inserted row gets the default).
Both kinds of later column are covered: one PostgreSQL gains outside the
model (ALTER TABLE here, as a migration would run it), and model columns the
journal predates (their keys taken out of the journal's rows, which is what
a journal written before the column existed looks like).
"""

import pytest
from django.db import connection

from agents.models import Agent
from agents.tests.factories import AgentFactory
from imports.models import ImportRollback

from .conftest import csv_text, run_import
from .test_rollback import run_rollback

pytestmark = pytest.mark.django_db

COLUMNS = [f.attname for f in Agent._meta.concrete_fields]


def _agents() -> dict[str, dict]:
    return {row["id"]: row for row in Agent.objects.order_by("id").values(*COLUMNS)}


def _extra_col() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, extra_col FROM agents ORDER BY id")
        return dict(cursor.fetchall())


def _import_then_add_columns(*, journal_predates: tuple[str, ...]):
    for i in range(3):
        AgentFactory(id=f"c-{i}", name=f"Before {i}", state="CA", city="Fresno",
                     primary_county="Fresno County", service_radius_miles=10)  # fmt: skip
    before = _agents()
    job = run_import(
        csv_text(
            "id,name,state,city",
            "c-0,After 0,CA,Napa",
            "c-1,After 1,CA,Napa",
            "c-2,After 2,CA,Napa",
            "c-new,New,TX,Austin",
        )  # fmt: skip
    )
    assert (job.created_rows, job.updated_rows) == (1, 3)
    with connection.cursor() as cursor:
        # The test runs in one transaction: fire the deferred foreign-key checks the import
        # queued, which ALTER TABLE refuses to run over.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE agents ADD COLUMN extra_col text DEFAULT 'kept'")
        cursor.execute("UPDATE agents SET extra_col = 'set after the import: ' || id")
        removed = " - ".join(f"'{column}'" for column in journal_predates)
        cursor.execute(
            f"UPDATE import_journal SET before = before - {removed} WHERE job_id = %s AND before IS NOT NULL",  # noqa: S608
            [job.pk],
        )
    return job, before


def test_rollback_keeps_the_values_of_columns_its_journal_does_not_hold():
    job, before = _import_then_add_columns(journal_predates=("primary_county",))
    with connection.cursor() as cursor:  # written after the import, as a data migration would
        cursor.execute("UPDATE agents SET primary_county = 'Set later ' || id")

    rollback = run_rollback(job)

    assert rollback.status == ImportRollback.Status.COMPLETED
    assert (rollback.deleted_rows, rollback.restored_rows) == (1, 3)
    assert _extra_col() == {f"c-{i}": f"set after the import: c-{i}" for i in range(3)}
    after = _agents()
    assert {i: row["primary_county"] for i, row in after.items()} == {
        f"c-{i}": f"Set later c-{i}" for i in range(3)
    }
    # Every column the journal holds came back exactly.
    for row in (*before.values(), *after.values()):
        row.pop("primary_county")
    assert after == before


def test_forced_rollback_reinserts_a_deleted_row_with_defaults_for_later_columns():
    job, before = _import_then_add_columns(journal_predates=("service_radius_miles", "primary_county"))
    Agent.objects.filter(pk="c-1").delete()

    rollback = run_rollback(job, force=True)

    assert rollback.status == ImportRollback.Status.COMPLETED
    after = _agents()
    assert set(after) == {"c-0", "c-1", "c-2"}
    # Back as the journal holds it; a NOT NULL column it predates takes the model default
    # (NULL would refuse the row), a column outside the model the table's default.
    reinserted = after["c-1"]
    assert reinserted["name"] == "Before 1" and reinserted["city"] == "Fresno"
    assert reinserted["service_radius_miles"] == Agent._meta.get_field("service_radius_miles").default == 25
    assert reinserted["primary_county"] is None
    assert _extra_col()["c-1"] == "kept"
    # The rows that stayed kept their values for both columns; the rest came back.
    assert after["c-0"]["service_radius_miles"] == 10 and after["c-0"]["primary_county"] == "Fresno County"
    for row in (*before.values(), *after.values()):
        del row["service_radius_miles"], row["primary_county"]
    assert after == before
