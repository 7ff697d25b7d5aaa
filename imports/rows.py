"""Turning one file row into typed agent values, or into row errors.

Built once per chunk from the job's header: the widgets come from
AgentResource, the rules from AgentValidator, so an import checks exactly
what the admin checks.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from agents.models import Agent
from agents.resources import AgentResource
from agents.validation import AgentValidator
from agents.widgets import JSONWidget, unstorable_text
from industries.selectors import IndustryRule

from .formats import RejectedCells

VALUE_EXCERPT = 120
DEFAULT_INDUSTRY = Agent._meta.get_field("industry").get_default()


@dataclass(slots=True)
class RowError:
    line: int
    column: str
    value: str
    message: str


@dataclass(slots=True)
class ParsedRow:
    line: int
    values: dict
    cells: list[str]
    errors: list[RowError] = field(default_factory=list)
    # Doubts about a row that is imported all the same (licence format, phone, shared licence).
    warnings: list[RowError] = field(default_factory=list)
    # JSON cells as written in the file: staged as they are instead of re-encoded.
    json_text: dict = field(default_factory=dict)
    exists: bool = False  # set by identity resolution
    current_slug: str | None = None


def excerpt(value: object) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= VALUE_EXCERPT else text[: VALUE_EXCERPT - 1] + "…"


def natural_key(industry: str | None, state: str | None, license_number: str | None) -> tuple | None:
    """(industry, state, licence) the way rows are matched when they carry no id."""
    if not license_number or not license_number.strip():
        return None
    return (
        (industry or "").strip().lower() or DEFAULT_INDUSTRY,
        (state or "").strip().upper(),
        license_number.strip(),
    )


def key_digest(kind: str, key: object) -> int:
    """Signed 64-bit digest of a row key (a PostgreSQL bigint) for finding repeated keys in one planning.

    Python's hash (SipHash, 64-bit on the platforms we run): a fraction of a
    BLAKE2b's cost per row, and its per-process key is fine because the
    digests live only in the planning's temp table.
    """
    return hash((kind, key))


def _unstorable_cells(cells: list[str]) -> dict[int, str]:
    """{position: why} of the cells PostgreSQL cannot store (NUL, unpaired surrogates)."""
    if unstorable_text("".join(cells)) is None:  # one scan for the usual row: nothing to find
        return {}
    return {i: problem for i, cell in enumerate(cells) if (problem := unstorable_text(cell))}


class RowParser:
    def __init__(
        self,
        columns: list[str | None],
        industry_rules: Mapping[str, IndustryRule],
        photo_resolver: Callable[[str], str | None] | None = None,
    ):
        widgets = AgentResource().column_widgets()
        self.columns = columns
        self.width = len(columns)
        # (position, column, widget) for the columns this file carries.
        self.plan = [(i, c, widgets[c]) for i, c in enumerate(columns) if c is not None and c in widgets]
        self.json_columns = frozenset(c for _, c, w in self.plan if isinstance(w, JSONWidget))
        self.validator = AgentValidator(industry_rules)
        # A `photo` cell names a file; the resolver (zip imports) gives its storage name or
        # raises ValueError. Without a resolver the column is not parsed (nor written).
        self.photo = (
            (columns.index("photo"), photo_resolver) if photo_resolver and "photo" in columns else None
        )

    def parse(self, line: int, cells: list[str]) -> ParsedRow:
        row = ParsedRow(line=line, values={}, cells=cells)
        if isinstance(cells, RejectedCells):  # refused by the reader: too long, too many fields
            row.errors.append(RowError(line, "", "", cells.reason))
            return row
        if len(cells) > self.width:
            extra = [c for c in cells[self.width :] if c.strip()]
            if extra:
                row.errors.append(
                    RowError(
                        line, "", excerpt(extra[0]), f"row has {len(cells)} cells; header has {self.width}"
                    )
                )
                return row
        values = row.values
        unstorable = _unstorable_cells(cells)
        for position, column, widget in self.plan:
            raw = cells[position] if position < len(cells) else ""
            if position in unstorable:
                row.errors.append(RowError(line, column, excerpt(raw), unstorable[position]))
                continue
            try:
                values[column] = widget.clean(raw)
            except ValueError as exc:
                row.errors.append(RowError(line, column, excerpt(raw), str(exc)))
            else:
                if column in self.json_columns and values[column] is not None and isinstance(raw, str):
                    row.json_text[column] = raw
        # Validate what parsed; a NOT NULL column left blank takes its default later.
        checked = {k: v for k, v in values.items() if v is not None}
        for column in ("name", "state"):
            if column in values and values[column] is None:
                checked[column] = ""
        if "profession" in checked and "industry" not in checked:
            checked["industry"] = DEFAULT_INDUSTRY
        failed = {e.column for e in row.errors}
        for column, message in self.validator.validate(checked).items():
            if column not in failed:
                row.errors.append(RowError(line, column, excerpt(values.get(column, "")), message))
        if self.photo and not row.errors:  # photos are read only for rows that are otherwise valid
            position, resolve = self.photo
            raw = cells[position] if position < len(cells) else ""
            try:
                values["photo"] = resolve(raw)
            except ValueError as exc:
                row.errors.append(RowError(line, "photo", excerpt(raw), str(exc)))
        if not row.errors:  # a rejected row is reported for its errors only
            for column, message in self.validator.warnings(checked).items():
                row.warnings.append(RowError(line, column, excerpt(values.get(column, "")), message))
        return row
