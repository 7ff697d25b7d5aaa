"""D1 schema baseline: what a migration creates, and whether a target already has it.

The live D1 got its schema from `wrangler d1 execute --file` (no `d1_migrations`
rows) and a column added by hand, so applying 002 again would fail with
"duplicate column name". Before writing anything, `d1_migrate` reads the
target's schema (`sqlite_master`, `pragma_table_info`) and plans each
unrecorded migration against it, statement by statement:

- every object it creates is present  -> record it as applied, run nothing;
- some are present                    -> run only the missing statements;
- something conflicts (a column on a table that does not exist, an index of
  the same name on another table, a table lacking columns the migration
  declares, DML whose effect cannot be checked) -> stop, name the objects.

The plan is simulated migration after migration, so 003 sees what 002 will add.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .d1_client import D1Client
from .sqlite_sql import Statement, sql_literal

_IDENT = r'(?:"(?:[^"]|"")+"|`[^`]+`|\[[^\]]+\]|[A-Za-z_][A-Za-z0-9_]*)'
_IF_NOT_EXISTS = r"(?:IF\s+NOT\s+EXISTS\s+)?"
_CREATE_TABLE = re.compile(rf"^CREATE\s+TABLE\s+{_IF_NOT_EXISTS}({_IDENT})\s*\((.*)\)\s*$", re.I | re.S)
_ADD_COLUMN = re.compile(rf"^ALTER\s+TABLE\s+({_IDENT})\s+ADD\s+(?:COLUMN\s+)?({_IDENT})", re.I | re.S)
_CREATE_INDEX = re.compile(
    rf"^CREATE\s+(?:UNIQUE\s+)?INDEX\s+{_IF_NOT_EXISTS}({_IDENT})\s+ON\s+({_IDENT})", re.I | re.S
)
_CREATE_NAMED = re.compile(
    rf"^CREATE\s+(?:TEMP\s+|TEMPORARY\s+)?(TRIGGER|VIEW)\s+{_IF_NOT_EXISTS}({_IDENT})", re.I | re.S
)
_INSERT_OR_IGNORE = re.compile(r"^INSERT\s+OR\s+IGNORE\s+INTO\b", re.I)
_TABLE_CONSTRAINT = re.compile(r"^(?:CONSTRAINT|PRIMARY|UNIQUE|CHECK|FOREIGN)\b", re.I)


def _unquote(name: str) -> str:
    if name[:1] in '"`[':
        return name[1:-1].replace('""', '"')
    return name


def _strip_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.S).strip()


def top_level_parts(body: str) -> list[str]:
    """The comma-separated parts of a SQL parenthesis body, ignoring commas inside quotes or parentheses."""
    parts, depth, start, quote = [], 0, 0, ""
    for i, c in enumerate(body):
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"`":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(body[start:i].strip())
            start = i + 1
    parts.append(body[start:].strip())
    return [p for p in parts if p]


@dataclass
class SchemaState:
    """Tables with their columns, and index/trigger/view names with their table."""

    tables: dict[str, set[str]] = field(default_factory=dict)
    objects: dict[tuple[str, str], str] = field(default_factory=dict)  # (type, name) -> table

    def copy(self) -> SchemaState:
        return SchemaState({t: set(c) for t, c in self.tables.items()}, dict(self.objects))


def d1_schema_read(*, client: D1Client) -> SchemaState:
    """The target's tables, columns, indexes, triggers and views (two requests)."""
    rows = client.rows(
        "SELECT type, name, tbl_name FROM sqlite_master "
        "WHERE type IN ('table', 'index', 'trigger', 'view') "
        "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'"
    )
    state = SchemaState()
    for kind, name, table in rows:
        if kind == "table":
            state.tables[name.lower()] = set()
        else:
            state.objects[(kind, name.lower())] = table.lower()
    tables = sorted(state.tables)
    for start in range(0, len(tables), 50):
        batch = tables[start : start + 50]
        results = client.execute(
            [Statement(f"SELECT name FROM pragma_table_info({sql_literal(t)})") for t in batch],  # noqa: S608
            raw=True,
        )
        for table, result in zip(batch, results, strict=True):
            state.tables[table] = {r[0].lower() for r in result["results"]["rows"]}
    return state


@dataclass
class StatementCheck:
    sql: str
    obj: str  # what it creates, for messages: "column agents.industry"
    present: bool = False
    conflict: str = ""
    always_run: bool = False  # idempotent DML (INSERT OR IGNORE): safe whether or not it ran


@dataclass
class MigrationPlan:
    name: str
    action: str  # "applied" (recorded already), "record", "apply", "partial", "conflict"
    checks: list[StatementCheck] = field(default_factory=list)

    @property
    def missing(self) -> list[StatementCheck]:
        return [c for c in self.checks if not c.present and not c.conflict]

    @property
    def conflicts(self) -> list[StatementCheck]:
        return [c for c in self.checks if c.conflict]

    def statements_to_run(self) -> list[str]:
        if self.action == "apply":
            return [c.sql for c in self.checks]
        if self.action == "partial":
            return [c.sql for c in self.checks if c.always_run or not c.present]
        return []


def statement_check(sql: str, state: SchemaState) -> StatementCheck:
    """Classify one statement against `state` and apply its effect to `state`."""
    text = _strip_comments(sql)
    if m := _CREATE_TABLE.match(text):
        table = _unquote(m.group(1)).lower()
        declared = {
            _unquote(p.split(None, 1)[0]).lower()
            for p in top_level_parts(m.group(2))
            if not _TABLE_CONSTRAINT.match(p)
        }
        check = StatementCheck(sql, f"table {table}")
        if table in state.tables:
            check.present = True
            lacking = sorted(declared - state.tables[table])
            if lacking:
                check.conflict = f"table {table} exists without column(s) {', '.join(lacking)}"
        else:
            state.tables[table] = declared
        return check
    if m := _ADD_COLUMN.match(text):
        table, column = _unquote(m.group(1)).lower(), _unquote(m.group(2)).lower()
        check = StatementCheck(sql, f"column {table}.{column}")
        if table not in state.tables:
            check.conflict = f"column {table}.{column} is added to a table that does not exist"
        elif column in state.tables[table]:
            check.present = True
        else:
            state.tables[table].add(column)
        return check
    if m := _CREATE_INDEX.match(text):
        return _named_check(sql, state, "index", _unquote(m.group(1)), _unquote(m.group(2)))
    if m := _CREATE_NAMED.match(text):
        kind, name = m.group(1).lower(), _unquote(m.group(2))
        on = re.search(rf"\bON\s+({_IDENT})", text, re.I) if kind == "trigger" else None
        return _named_check(sql, state, kind, name, _unquote(on.group(1)) if on else name)
    if _INSERT_OR_IGNORE.match(text):
        return StatementCheck(sql, "rows (INSERT OR IGNORE)", present=True, always_run=True)
    return StatementCheck(sql, f"statement {text[:60]!r}", conflict="its effect cannot be checked")


def _named_check(sql: str, state: SchemaState, kind: str, name: str, table: str) -> StatementCheck:
    key, table = (kind, name.lower()), table.lower()
    check = StatementCheck(sql, f"{kind} {name}")
    if key in state.objects:
        check.present = True
        if kind != "view" and state.objects[key] != table:
            check.conflict = f"{kind} {name} exists on table {state.objects[key]}, not {table}"
    elif kind != "view" and table not in state.tables:
        check.conflict = f"{kind} {name} is on table {table}, which does not exist"
    else:
        state.objects[key] = table
    return check


def migrations_plan(
    *, files: list[tuple[str, list[str]]], recorded: set[str], state: SchemaState
) -> list[MigrationPlan]:
    """Plan each (name, statements) in order; `state` is not modified."""
    state = state.copy()
    plans: list[MigrationPlan] = []
    for name, statements in files:
        checks = [statement_check(s, state) for s in statements]
        if name in recorded:
            plans.append(MigrationPlan(name, "applied", checks))
            continue
        plan = MigrationPlan(name, "apply", checks)
        schema = [c for c in checks if not c.always_run]
        if plan.conflicts:
            # DML that cannot be checked is only a conflict when part of the migration already ran.
            unknown_dml = all(c.conflict == "its effect cannot be checked" for c in plan.conflicts)
            if unknown_dml and not any(c.present for c in schema):
                for c in checks:
                    c.conflict = ""
            else:
                plan.action = "conflict"
        if plan.action != "conflict" and schema and all(c.present for c in schema):
            plan.action = "record"
        elif plan.action != "conflict" and any(c.present for c in schema):
            plan.action = "partial"
        plans.append(plan)
    return plans


def migration_conflict_message(plans: list[MigrationPlan]) -> str:
    lines = []
    for plan in plans:
        if plan.action == "conflict":
            for c in plan.conflicts:
                lines.append(f"{plan.name}: {c.conflict}")
    return "D1 schema cannot be reconciled, nothing was written: " + "; ".join(lines)
