"""D1 schema migrations: bring a target up to date without ever failing on what it already has."""

from __future__ import annotations

import logging

from .d1_client import D1Client
from .d1_schema import migration_conflict_message
from .models import D1MigrationRecord
from .selectors import d1_migrations_plan
from .sqlite_sql import Statement

logger = logging.getLogger(__name__)

_RECORD_ACTIONS = {
    "apply": D1MigrationRecord.Action.APPLIED,
    "partial": D1MigrationRecord.Action.PARTIAL,
    "record": D1MigrationRecord.Action.RECORDED,
}


class D1SchemaConflict(Exception):
    """The target's schema contradicts a migration; nothing was written."""


def d1_migrate(*, client: D1Client, target: str = "") -> list[str]:
    """Bring the target's schema up to date without ever failing on what it already has.

    Each unrecorded migration is applied whole, applied in part (only the
    statements whose objects are missing) or recorded as present; every
    one goes with its `d1_migrations` row in one request (one D1
    transaction). An unreconcilable schema stops the run before anything is
    written. Returns the names of the migrations it applied or recorded.
    """
    plans = d1_migrations_plan(client=client)
    if any(p.action == "conflict" for p in plans):
        raise D1SchemaConflict(migration_conflict_message(plans))
    target = target or client.transport.name
    done: list[str] = []
    for plan in plans:
        if plan.action == "applied":
            continue
        statements = [Statement(sql) for sql in plan.statements_to_run()]
        statements.append(Statement("INSERT INTO d1_migrations (name) VALUES (?)", (plan.name,)))
        client.execute(statements)
        action = _RECORD_ACTIONS[plan.action]
        D1MigrationRecord.objects.create(
            target=target[:300],
            name=plan.name,
            action=action,
            statements_run=len(statements) - 1,
            detail=", ".join(c.obj for c in plan.missing)[:4000] if plan.action == "partial" else "",
        )
        logger.info("D1 migration %s: %s", plan.name, action.label)
        done.append(plan.name)
    return done
