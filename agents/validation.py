"""The rules an agent record must satisfy: one place, used by the admin and by imports.

`AgentValidator.validate()` takes already-typed values (what a form or an
import widget produced) and returns {column: message}: errors, which reject
a row or block a save. `AgentValidator.warnings()` returns the data-quality
doubts that never do (a licence that does not match its industry's official
pattern, a phone that is not a NANP number): the live D1 we take over breaks
both on nearly every row, and refusing it would refuse the live data.

What one column may hold (required, max length, choices, ranges, e-mail/URL
and JSON shape) is declared on the Agent model fields and read here from
`Agent._meta`, once per validator: a new column brings its rules with it.
Only the rules a single field cannot state live in this module: the
industry must exist and be enabled, the profession must belong to it, a
tier cannot expire before it started, and the warnings.

Neither method touches the database: industry rules are loaded once by the
caller and passed in, so an import checks hundreds of thousands of rows
without a query per row.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import DecimalValidator, MaxLengthValidator, MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.text import capfirst

from industries.selectors import IndustryRule, industry_rules_get

PHONE_COLUMNS = ("phone", "cell_phone", "office_phone")
# A 10-digit NANP number: optional leading 1 or +1, punctuation and spaces allowed;
# area code and exchange start with 2-9.
NANP_PHONE_RE = re.compile(r"^(?:\+?1[\s.-]*)?\(?[2-9][0-9]{2}\)?[\s.-]*[2-9][0-9]{2}[\s.-]*[0-9]{4}$")
# Not checked column by column: the industry is checked against the industry table (a
# rule, below); the timestamps are set by the back-office; the photo is a file, checked
# by assets.validators when it is uploaded.
_NOT_COLUMN_CHECKED = frozenset({"industry", "created_at", "updated_at", "photo"})
# Validators whose limit is read as an attribute (max_length, a range) or that the
# DecimalWidget already enforces; the rest run as they are.
_READ_AS_LIMITS = (MinValueValidator, MaxValueValidator, MaxLengthValidator, DecimalValidator)
_NUMBER_FIELDS = (models.IntegerField, models.DecimalField, models.FloatField)
_DEFAULT_INVALID_CHOICE = str(models.Field.default_error_messages["invalid_choice"])


@dataclass(frozen=True, slots=True)
class ColumnRules:
    """The per-column rules of Agent, as lookup tables (built once, used per row)."""

    # (column, None allowed (nullable, or takes its default), message): also refuses "" and blanks.
    required: tuple[tuple[str, bool, str], ...]
    max_lengths: dict[str, int]
    # (column, field validators): e-mail, URL, id/slug patterns, JSON shapes.
    validators: tuple[tuple[str, tuple[Callable[[Any], None], ...]], ...]
    # (column, accepted types, lowest, highest): either bound may be None.
    numbers: tuple[tuple[str, tuple[type, ...], Any, Any], ...]
    # (column, allowed values, message template with %(value)r, or "" for the generic one).
    choices: tuple[tuple[str, frozenset, str], ...]


def agent_column_rules() -> ColumnRules:
    """Read the per-column rules from the Agent model fields."""
    from .models import Agent

    required, validators, numbers, choices = [], [], [], []
    max_lengths: dict[str, int] = {}
    for field in Agent._meta.concrete_fields:
        column = field.column
        if column in _NOT_COLUMN_CHECKED:
            continue
        text = isinstance(field, models.CharField | models.TextField)
        if field.choices:
            allowed = {value for value, _ in field.flatchoices}
            allowed |= {None} if field.null else set()
            allowed |= {""} if field.blank else set()
            template = str(field.error_messages["invalid_choice"])
            choices.append(
                (column, frozenset(allowed), "" if template == _DEFAULT_INVALID_CHOICE else template)
            )
        elif (text and not field.blank) or not (field.null or field.has_default()):
            none_allowed = field.null or field.has_default()
            required.append((column, none_allowed, f"{capfirst(field.verbose_name)} is required."))
        if text and field.max_length:
            max_lengths[column] = field.max_length
        if isinstance(field, _NUMBER_FIELDS):
            # Includes the database's own integer range for an IntegerField without explicit bounds.
            lows = [v.limit_value for v in field.validators if isinstance(v, MinValueValidator)]
            highs = [v.limit_value for v in field.validators if isinstance(v, MaxValueValidator)]
            types = (int, Decimal, float) if isinstance(field, models.FloatField) else (int, Decimal)
            numbers.append((column, types, max(lows, default=None), min(highs, default=None)))
        # field.validators less the defaults of the field class (SlugField's validate_slug:
        # the project's slug validator is stricter and says so in its own words).
        own = tuple(
            v
            for v in field.validators
            if not isinstance(v, _READ_AS_LIMITS) and v not in field.default_validators
        )
        if own:
            validators.append((column, own))
    return ColumnRules(
        required=tuple(required),
        max_lengths=max_lengths,
        validators=tuple(validators),
        numbers=tuple(numbers),
        choices=tuple(choices),
    )


def _range_message(low, high, value) -> str:
    if low is not None and high is not None:
        return f"Must be between {low} and {high} (got {value})."
    if low is not None:
        return f"Must be at least {low} (got {value})."
    return f"Must be at most {high} (got {value})."


class AgentValidator:
    def __init__(self, industry_rules: Mapping[str, IndustryRule]):
        self.industry_rules = industry_rules
        self.columns = agent_column_rules()

    def validate(self, values: Mapping[str, Any]) -> dict[str, str]:
        """Check the columns present in `values`; return {column: message} for each failure."""
        errors = self.column_errors(values)
        errors.update(self.rule_errors(values))
        return errors

    def column_errors(self, values: Mapping[str, Any]) -> dict[str, str]:
        """What each column's model field declares, for the columns present in `values`."""
        errors: dict[str, str] = {}
        rules = self.columns
        for column, none_allowed, message in rules.required:
            if column in values:
                value = values[column]
                if (value is None and not none_allowed) or (isinstance(value, str) and not value.strip()):
                    errors[column] = message

        max_lengths = rules.max_lengths
        for column, value in values.items():
            limit = max_lengths.get(column)
            if limit is not None and isinstance(value, str) and len(value) > limit and column not in errors:
                errors[column] = f"At most {limit} characters (got {len(value)})."

        for column, checks in rules.validators:
            value = values.get(column)
            if value is None or value == "" or column in errors:
                continue
            for check in checks:
                try:
                    check(value)
                except ValidationError as exc:
                    errors[column] = exc.messages[0]
                    break

        for column, types, low, high in rules.numbers:
            value = values.get(column)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, types):
                errors[column] = "Must be a number."
            elif (low is not None and value < low) or (high is not None and value > high):
                errors[column] = _range_message(low, high, value)

        for column, allowed, template in rules.choices:
            if column not in values:
                continue
            value = values[column]
            try:
                known = value in allowed
            except TypeError:  # unhashable: a list or dict where a key belongs
                known = False
            if not known:
                errors[column] = (
                    template % {"value": value}
                    if template
                    else f"{value!r} is not one of: {', '.join(sorted(v for v in allowed if v))}."
                )
        return errors

    def rule_errors(self, values: Mapping[str, Any]) -> dict[str, str]:
        """The rules no single field states: industry and profession, tier dates."""
        errors: dict[str, str] = {}
        rule = None
        if "industry" in values:
            industry = values["industry"]
            rule = self.industry_rules.get(industry)
            if rule is None:
                known = ", ".join(sorted(self.industry_rules))
                errors["industry"] = f"Unknown industry {industry!r}; known: {known}."
            elif not rule.enabled:
                errors["industry"] = f"Industry {industry!r} is disabled and accepts no agents."
                rule = None

        if rule is not None:
            profession = values.get("profession")
            if "profession" in values and profession not in rule.professions:
                allowed = ", ".join(sorted(rule.professions))
                errors["profession"] = (
                    f"Profession {profession!r} does not belong to {rule.industry}; allowed: {allowed}."
                )

        started, expires = values.get("tier_started_at"), values.get("tier_expires_at")
        if isinstance(started, datetime) and isinstance(expires, datetime) and expires < started:
            errors["tier_expires_at"] = "Tier cannot expire before it started."
        return errors

    def warnings(self, values: Mapping[str, Any]) -> dict[str, str]:
        """Doubts about the columns present in `values`, {column: message}; never a reason to reject."""
        doubts: dict[str, str] = {}
        license_number = values.get("license_number")
        rule = self.industry_rules.get(values.get("industry")) if "industry" in values else None
        if (
            license_number
            and isinstance(license_number, str)
            and rule is not None
            and rule.license_re is not None
            and not rule.license_re.fullmatch(license_number)
        ):
            doubts["license_number"] = (
                f"{license_number!r} is not a recognised {rule.license_label} "
                f"(pattern {rule.license_re.pattern})."
            )
        for column in PHONE_COLUMNS:
            phone = values.get(column)
            if phone and isinstance(phone, str) and not NANP_PHONE_RE.match(phone.strip()):
                doubts[column] = (
                    f"{phone!r} is not a 10-digit US phone number (area code and exchange start with 2-9)."
                )
        return doubts


def _instance_values(agent) -> dict[str, Any]:
    from .models import Agent

    return {
        field.name: getattr(agent, field.attname)
        for field in Agent._meta.concrete_fields
        if field.name not in ("photo", "created_at", "updated_at")
    }


def agent_instance_warnings(agent) -> dict[str, str]:
    """The data-quality warnings of an Agent instance (shown by the admin after a save)."""
    return AgentValidator(industry_rules_get()).warnings(_instance_values(agent))


def agent_instance_validate(agent) -> None:
    """Model.clean() hook: the rules across fields, raised as ValidationError per field.

    The per-column rules are the fields' own: Model.full_clean() checked them
    before clean() with the same validators and messages, so they are not
    repeated here (the admin would show each message twice).
    """
    errors = AgentValidator(industry_rules_get()).rule_errors(_instance_values(agent))
    if errors:
        # The admin form shows errors next to fields; "industry" is a form field too.
        raise ValidationError({column: [message] for column, message in errors.items()})
