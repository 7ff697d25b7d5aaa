"""System checks (tag "estateflow"): the Agent model and the D1 `agents` table say the same.

The model is the one definition of an agent's columns; D1 gets its schema
from the SQL files in sync/d1_migrations. Nothing else would notice a field
added without its D1 migration until a sync failed against the live table,
so `manage.py check` replays those files (CREATE TABLE, ALTER TABLE ADD /
DROP / RENAME COLUMN) and compares every mirrored field with the column the
files leave behind: present (order does not matter), type affinity, NOT NULL
and default. Every difference is named.

Two kinds of column are not mirrored: back-office-only fields
(agents.resources.BACK_OFFICE_ONLY_COLUMNS: the photo file) and D1-only
bookkeeping written by the sync (D1_BOOKKEEPING_COLUMNS).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.apps import apps
from django.core import checks
from django.utils import timezone

from sync.d1_schema import top_level_parts

TAG = "estateflow"
# 004_sync_bookkeeping.sql: the digest d1_verify sums and the run that wrote the row.
D1_BOOKKEEPING_COLUMNS = frozenset({"sync_version", "sync_run"})

# Django field type -> (SQLite type affinity, accepted declared type names or None for any
# name of that affinity, the declaration to suggest). Declared names matter only where the
# affinity cannot tell types apart: BOOLEAN, TIMESTAMP, DECIMAL and JSON all have NUMERIC.
_TEXT = ("TEXT", None, "TEXT")
_INTEGER = ("INTEGER", None, "INTEGER")
D1_TYPES: dict[str, tuple[str, frozenset[str] | None, str]] = {
    "CharField": _TEXT,
    "SlugField": _TEXT,
    "TextField": _TEXT,
    "EmailField": _TEXT,
    "URLField": _TEXT,
    "UUIDField": _TEXT,
    "FileField": _TEXT,
    "ImageField": _TEXT,
    "IntegerField": _INTEGER,
    "BigIntegerField": _INTEGER,
    "SmallIntegerField": _INTEGER,
    "PositiveIntegerField": _INTEGER,
    "PositiveBigIntegerField": _INTEGER,
    "PositiveSmallIntegerField": _INTEGER,
    "AutoField": _INTEGER,
    "BigAutoField": _INTEGER,
    "FloatField": ("REAL", None, "REAL"),
    "BooleanField": ("NUMERIC", frozenset({"BOOLEAN", "BOOL"}), "BOOLEAN"),
    "DateTimeField": ("NUMERIC", frozenset({"TIMESTAMP", "DATETIME"}), "TIMESTAMP"),
    "DateField": ("NUMERIC", frozenset({"DATE"}), "DATE"),
    "DecimalField": ("NUMERIC", frozenset({"DECIMAL", "NUMERIC"}), "DECIMAL({max_digits},{decimal_places})"),
    "JSONField": ("NUMERIC", frozenset({"JSON"}), "JSON"),
}


class _Keyword(str):
    """A default that is an SQL keyword (CURRENT_TIMESTAMP), not a value."""


class _Expression(str):
    """A default written as an expression "(...)": compared as text, never equal to a value."""


NO_DEFAULT = object()
CURRENT_TIMESTAMP = _Keyword("CURRENT_TIMESTAMP")
_DEFAULT_KEYWORDS = {"CURRENT_TIMESTAMP", "CURRENT_DATE", "CURRENT_TIME"}


@dataclass(frozen=True)
class D1Column:
    name: str
    declared_type: str  # as written: "TEXT", "DECIMAL(12,2)", "" (none)
    not_null: bool = False
    primary_key: bool = False
    default: object = NO_DEFAULT  # str, int, Decimal, bool, None, _Keyword, _Expression
    source: str = ""  # the migration file that declared it

    @property
    def affinity(self) -> str:
        return sqlite_affinity(self.declared_type)

    @property
    def type_name(self) -> str:
        return re.split(r"[\s(]", self.declared_type.upper(), maxsplit=1)[0]


def sqlite_affinity(declared_type: str) -> str:
    """SQLite's rules (https://sqlite.org/datatype3.html, 3.1), in their order."""
    t = declared_type.upper()
    if "INT" in t:
        return "INTEGER"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "TEXT"
    if "BLOB" in t or not t.strip():
        return "BLOB"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "REAL"
    return "NUMERIC"


# --- reading the D1 migrations -----------------------------------------------------------

_IDENT = r'(?:"(?:[^"]|"")+"|`[^`]+`|\[[^\]]+\]|[A-Za-z_][A-Za-z0-9_$]*)'
_CREATE_TABLE = re.compile(
    rf"^CREATE\s+(?:TEMP\s+|TEMPORARY\s+)?TABLE\s+(IF\s+NOT\s+EXISTS\s+)?({_IDENT})\s*\((.*)\)[^)]*$",
    re.I | re.S,
)
_DROP_TABLE = re.compile(rf"^DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?({_IDENT})\s*$", re.I | re.S)
_ALTER = re.compile(rf"^ALTER\s+TABLE\s+({_IDENT})\s+(.*)$", re.I | re.S)
_ADD = re.compile(r"^ADD\s+(?:COLUMN\s+)?(.*)$", re.I | re.S)
_DROP = re.compile(rf"^DROP\s+(?:COLUMN\s+)?({_IDENT})\s*$", re.I | re.S)
_RENAME_COLUMN = re.compile(rf"^RENAME\s+(?:COLUMN\s+)?({_IDENT})\s+TO\s+({_IDENT})\s*$", re.I | re.S)
_RENAME_TABLE = re.compile(rf"^RENAME\s+TO\s+({_IDENT})\s*$", re.I | re.S)
_TABLE_CONSTRAINT = re.compile(r"^(?:CONSTRAINT|PRIMARY|UNIQUE|CHECK|FOREIGN)\b", re.I)
_TOKEN = re.compile(
    r"""\s*(
        '(?:[^']|'')*'                                   # string literal
      | "(?:[^"]|"")*" | `[^`]*` | \[[^\]]*\]            # quoted identifier
      | [+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?    # number
      | [A-Za-z_][A-Za-z0-9_$]*                          # word
      | \S                                               # ( ) , and the rest
    )""",
    re.X | re.S,
)
# Words that end a column's type name and start its constraints.
_CONSTRAINT_WORDS = {
    "CONSTRAINT", "PRIMARY", "NOT", "NULL", "UNIQUE", "CHECK", "DEFAULT", "COLLATE", "REFERENCES",
    "GENERATED", "AS",
}  # fmt: skip


def _unquote(name: str) -> str:
    if name[:1] in '"`[':
        return name[1:-1].replace('""', '"')
    return name


def _strip_comments(sql: str) -> str:
    out, i, n = [], 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            j = i + 1
            while j < n:
                if sql[j] == c:
                    if sql.startswith(c * 2, j):  # a doubled quote is one quote character
                        j += 2
                        continue
                    break
                j += 1
            out.append(sql[i : j + 1])
            i = j + 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
            out.append(" ")
        else:
            out.append(c)
            i += 1
    return "".join(out).strip().rstrip(";").strip()


def _tokens(text: str) -> list[str]:
    return [m.group(1) for m in _TOKEN.finditer(text) if m.group(1)]


def _group_end(tokens: list[str], start: int) -> int:
    """Index of the ")" closing the "(" at `start`."""
    depth = 0
    for i in range(start, len(tokens)):
        depth += tokens[i] == "("
        depth -= tokens[i] == ")"
        if depth == 0:
            return i
    raise ValueError("unbalanced parentheses")


def _default_value(parts: list[str], i: int) -> tuple[object, int]:
    text = parts[i]
    if text == "(":
        end = _group_end(parts, i)
        return _Expression(" ".join(parts[i : end + 1])), end + 1
    if text.startswith("'"):
        return text[1:-1].replace("''", "'"), i + 1
    if text in ("+", "-") and i + 1 < len(parts):  # "- 1": a sign apart from its number
        value, after = _default_value(parts, i + 1)
        return (-value if text == "-" and isinstance(value, int | Decimal) else value), after
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text), i + 1
    try:
        return Decimal(text), i + 1
    except InvalidOperation:
        pass
    upper = text.upper()
    if upper in ("TRUE", "FALSE"):
        return upper == "TRUE", i + 1
    if upper == "NULL":
        return None, i + 1
    if upper in _DEFAULT_KEYWORDS:
        return _Keyword(upper), i + 1
    return _Expression(text), i + 1


def d1_column_parse(definition: str, *, source: str = "") -> D1Column:
    """One column definition of CREATE TABLE or ADD COLUMN: name, type, NOT NULL, key, default."""
    tokens = _tokens(definition)
    name, i = _unquote(tokens[0]), 1
    type_parts: list[str] = []
    while i < len(tokens) and tokens[i].upper() not in _CONSTRAINT_WORDS:
        if tokens[i] == "(":
            end = _group_end(tokens, i)
            type_parts[-1:] = [
                (type_parts[-1] if type_parts else "") + "(" + "".join(tokens[i + 1 : end]) + ")"
            ]
            i = end + 1
        else:
            type_parts.append(tokens[i])
            i += 1
    not_null = primary_key = False
    default: object = NO_DEFAULT
    while i < len(tokens):
        word = tokens[i].upper()
        if word == "NOT" and i + 1 < len(tokens) and tokens[i + 1].upper() == "NULL":
            not_null, i = True, i + 2
        elif word == "PRIMARY":
            primary_key, i = True, i + 2
        elif word == "DEFAULT" and i + 1 < len(tokens):
            default, i = _default_value(tokens, i + 1)
        elif tokens[i] == "(":  # CHECK (...), REFERENCES t (...), GENERATED ... AS (...)
            i = _group_end(tokens, i) + 1
        else:
            i += 1
    return D1Column(name, " ".join(type_parts), not_null, primary_key, default, source)


def d1_tables_replay(files: Iterable[tuple[str, str]]) -> dict[str, dict[str, D1Column]]:
    """{table: {column: D1Column}} after running `files` ((name, SQL text), in order) on nothing.

    Only what changes columns is replayed; indexes, triggers and rows do not.
    """
    from sync.sqlite_sql import split_sql

    tables: dict[str, dict[str, D1Column]] = {}
    for source, sql in files:
        for statement in split_sql(sql):
            text = _strip_comments(statement)
            if m := _CREATE_TABLE.match(text):
                table = _unquote(m.group(2)).lower()
                if table in tables and m.group(1):
                    continue  # IF NOT EXISTS on a table that exists: a no-op
                columns = [
                    d1_column_parse(part, source=source)
                    for part in top_level_parts(m.group(3))
                    if not _TABLE_CONSTRAINT.match(part)
                ]
                tables[table] = {c.name.lower(): c for c in columns}
            elif m := _DROP_TABLE.match(text):
                tables.pop(_unquote(m.group(1)).lower(), None)
            elif (m := _ALTER.match(text)) and _unquote(m.group(1)).lower() in tables:
                table, action = _unquote(m.group(1)).lower(), m.group(2).strip()
                columns = tables[table]
                if a := _RENAME_COLUMN.match(action):
                    old, new = _unquote(a.group(1)), _unquote(a.group(2))
                    columns[new.lower()] = replace(columns.pop(old.lower()), name=new)
                elif a := _RENAME_TABLE.match(action):
                    tables[_unquote(a.group(1)).lower()] = tables.pop(table)
                elif a := _ADD.match(action):
                    column = d1_column_parse(a.group(1), source=source)
                    columns[column.name.lower()] = column
                elif a := _DROP.match(action):
                    columns.pop(_unquote(a.group(1)).lower(), None)
    return tables


def d1_migration_sources(directory: Path | None = None) -> list[tuple[str, str]]:
    """(file name, SQL) of sync/d1_migrations/NNN_*.sql, in the order d1_migrate applies them."""
    if directory is None:
        directory = Path(apps.get_app_config("sync").path) / "d1_migrations"
    paths = sorted(p for p in directory.glob("*.sql") if p.name[:3].isdigit())
    return [(p.name, p.read_text(encoding="utf-8")) for p in paths]


def d1_agent_columns(files: Iterable[tuple[str, str]] | None = None) -> dict[str, D1Column]:
    """The D1 `agents` columns the migrations produce, in the order SQLite lists them."""
    tables = d1_tables_replay(d1_migration_sources() if files is None else files)
    return tables.get("agents", {})


# --- comparing --------------------------------------------------------------------------


def _field_type(field) -> str:
    while field.is_relation:  # a foreign key is stored as its target's type
        field = field.target_field
    return field.get_internal_type()


def _model_default(field) -> object:
    """The field's default as D1 would write it; NO_DEFAULT when it has none or it varies per row."""
    if not field.has_default() or field.primary_key:  # the key is always given
        return NO_DEFAULT
    default = field.default
    if default is timezone.now:
        return CURRENT_TIMESTAMP
    if callable(default):
        first, second = default(), default()
        if first != second:  # a per-row value (a uuid): no D1 default can say it
            return NO_DEFAULT
        default = first
    return NO_DEFAULT if default is None else default


def _same_default(field_type: str, model: object, d1: object) -> bool:
    if d1 is None:
        d1 = NO_DEFAULT
    if model is NO_DEFAULT or d1 is NO_DEFAULT:
        return model is d1
    if isinstance(model, _Keyword) or isinstance(d1, _Keyword | _Expression):
        return isinstance(model, _Keyword) and isinstance(d1, _Keyword) and model == d1
    if field_type == "JSONField":
        try:
            return isinstance(d1, str) and json.loads(d1) == model
        except ValueError:
            return False
    if field_type == "BooleanField":
        return d1 in (True, False, 0, 1) and bool(d1) is bool(model)
    if isinstance(model, int | float | Decimal):
        return (
            isinstance(d1, int | Decimal)
            and not isinstance(d1, bool)
            and Decimal(str(d1)) == Decimal(str(model))
        )
    return d1 == model


def sql_literal(value: object) -> str:
    if value is NO_DEFAULT or value is None:
        return "NULL"
    if isinstance(value, _Keyword | _Expression):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, list | dict):
        value = json.dumps(value, separators=(",", ":"))
    return "'" + str(value).replace("'", "''") + "'"


def d1_column_suggest(field) -> str:
    """The ADD COLUMN clause a D1 migration would need for `field`."""
    affinity, _, declared = D1_TYPES.get(_field_type(field), ("", None, "TEXT"))
    declared = (
        declared.format(max_digits=field.max_digits, decimal_places=field.decimal_places)
        if "{" in declared
        else declared
    )
    default = _model_default(field)
    # D1's own columns are nullable with a default; NOT NULL needs a non-NULL default in SQLite.
    return f"{field.column} {declared}" + (
        "" if default is NO_DEFAULT else f" DEFAULT {sql_literal(default)}"
    )


def agent_d1_differences(
    fields: Iterable, d1_columns: Mapping[str, D1Column], *, next_migration: str = "NNN"
) -> list[checks.CheckMessage]:
    """Compare mirrored Agent fields with D1 columns; one message per difference."""
    from .models import Agent

    messages: list[checks.CheckMessage] = []
    fields = list(fields)
    d1 = {name.lower(): column for name, column in d1_columns.items()}
    model_columns = {f.column.lower() for f in fields}
    for field in fields:
        column = d1.get(field.column.lower())
        name = f"agents.{field.column}"
        if column is None:
            messages.append(
                checks.Error(
                    f"{name}: the Agent field '{field.name}' has no D1 column; no sync/d1_migrations/*.sql adds it.",
                    hint=(
                        f"Add sync/d1_migrations/{next_migration}_<what>.sql with "
                        f'"ALTER TABLE agents ADD COLUMN {d1_column_suggest(field)};", '
                        "or list the field in agents.resources.BACK_OFFICE_ONLY_COLUMNS if D1 must not have it."
                    ),
                    obj=Agent,
                    id="estateflow.E001",
                )
            )
            continue
        field_type = _field_type(field)
        expected = D1_TYPES.get(field_type)
        if expected is None:
            messages.append(
                checks.Warning(
                    f"{name}: no D1 type is known for a {field_type}; its type is not compared.",
                    hint="Add the field type to agents.checks.D1_TYPES.",
                    obj=Agent,
                    id="estateflow.W002",
                )
            )
        else:
            affinity, names, suggested = expected
            if column.affinity != affinity or (names is not None and column.type_name not in names):
                want = " or ".join(sorted(names)) if names else suggested
                messages.append(
                    checks.Error(
                        f"{name}: the Agent field is a {field_type} but {column.source} declares "
                        f"{column.declared_type or 'no type'} ({column.affinity} affinity); "
                        f"a {field_type} is {want} ({affinity} affinity) in D1.",
                        obj=Agent,
                        id="estateflow.E003",
                    )
                )
        if column.not_null and field.null:
            messages.append(
                checks.Error(
                    f"{name} is NOT NULL in D1 ({column.source}) but the Agent field allows NULL: "
                    "pushing an agent without a value would fail.",
                    obj=Agent,
                    id="estateflow.E004",
                )
            )
        if column.primary_key != field.primary_key:
            messages.append(
                checks.Error(
                    f"{name} is {'' if column.primary_key else 'not '}the primary key in D1 ({column.source}) "
                    f"but {'is' if field.primary_key else 'is not'} the Agent model's.",
                    obj=Agent,
                    id="estateflow.E006",
                )
            )
        model_default = _model_default(field)
        if not _same_default(field_type, model_default, column.default):
            messages.append(
                checks.Error(
                    f"{name}: the defaults differ: the Agent field's is {sql_literal(model_default)}, "
                    f"D1's ({column.source}) is {sql_literal(column.default)}.",
                    hint="Rows D1 creates on its own would not match the rows the back-office creates.",
                    obj=Agent,
                    id="estateflow.E005",
                )
            )
    for key, column in d1.items():
        if key not in model_columns and key not in D1_BOOKKEEPING_COLUMNS:
            messages.append(
                checks.Error(
                    f"agents.{column.name}: D1 has the column ({column.source}) but the Agent model has no field for it.",
                    hint="Add the field to agents.models.Agent (and a Django migration), or drop the column in a D1 migration.",
                    obj=Agent,
                    id="estateflow.E002",
                )
            )
    return messages


@checks.register(TAG)
def check_agent_d1_schema(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from .models import Agent
    from .resources import BACK_OFFICE_ONLY_COLUMNS

    if app_configs is not None and apps.get_app_config("agents") not in app_configs:
        return []
    try:
        sources = d1_migration_sources()
        d1_columns = d1_agent_columns(sources)
    except (OSError, ValueError, IndexError, KeyError) as exc:
        return [
            checks.Error(f"The D1 migrations could not be read: {exc!r}.", obj=Agent, id="estateflow.E007")
        ]
    if not d1_columns:
        return [checks.Error("No D1 migration creates the agents table.", obj=Agent, id="estateflow.E007")]
    numbers = [int(name[:3]) for name, _ in sources]
    fields = [f for f in Agent._meta.concrete_fields if f.column not in BACK_OFFICE_ONLY_COLUMNS]
    return agent_d1_differences(fields, d1_columns, next_migration=f"{max(numbers, default=-1) + 1:03d}")


def agent_admin_fieldset_gaps(model_admin_class) -> list[checks.CheckMessage]:
    """Agent fields the admin class shows in no fieldset (with fieldsets, Django shows only those listed)."""
    from .models import Agent

    listed = {
        name for _, options in model_admin_class.fieldsets or () for name in _flat(options.get("fields", ()))
    }
    return [
        checks.Warning(
            f"Agent field '{field.name}' is in no fieldset of {model_admin_class.__name__}: the admin does not show it.",
            hint=f"Add '{field.name}' to a fieldset in agents/admin.py (and to readonly_fields if it is not editable).",
            obj=model_admin_class,
            id="estateflow.W001",
        )
        for field in Agent._meta.concrete_fields
        if field.name not in listed
    ]


def _flat(names) -> Iterable[str]:
    for name in names:
        if isinstance(name, list | tuple):  # ("a", "b") on one line
            yield from name
        else:
            yield name


@checks.register(TAG, checks.Tags.admin)
def check_agent_admin_fieldsets(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    if app_configs is not None and apps.get_app_config("agents") not in app_configs:
        return []
    from .admin import AgentAdmin

    return agent_admin_fieldset_gaps(AgentAdmin)
