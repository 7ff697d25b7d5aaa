"""The rules an agent record must satisfy: one place, used by the admin and by imports.

`AgentValidator.validate()` takes already-typed values (what a form or an
import widget produced) and returns {column: message}: errors, which reject
a row or block a save. `AgentValidator.warnings()` returns the data-quality
doubts that never do (a licence that does not match its industry's official
pattern, a phone that is not a NANP number): the live D1 we take over breaks
both on nearly every row, and refusing it would refuse the live data.
Neither touches the database: industry rules are loaded once by the caller
and passed in, so an import checks hundreds of thousands of rows without a
query per row.
"""

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator

from industries.constants import (
    AGENT_STATUSES,
    BIO_TONES,
    CLIENT_FOCUSES,
    CONTENT_STYLES,
    SUBSCRIPTION_TIERS,
    US_STATES,
)
from industries.selectors import IndustryRule, industry_rules_get

JSON_LIST_COLUMNS = (
    "service_regions",
    "service_zipcodes",
    "secondary_specialties",
    "property_types",
    "language_capabilities",
    "unique_value_props",
    "specializations",
)
JSON_OBJECT_COLUMNS = ("price_ranges", "features")
URL_COLUMNS = ("photo_url", "video_intro_url")

# Inclusive ranges; the upper bounds are generous but catch unit and typo errors.
NUMBER_RANGES: dict[str, tuple[int | Decimal, int | Decimal]] = {
    "profile_views": (0, 2_147_483_647),
    "fake_leads_count": (0, 10_000),
    "service_radius_miles": (0, 500),
    "years_experience": (0, 80),
    "transactions_ytd": (0, 100_000),
    "total_volume_sold": (Decimal("0"), Decimal("9999999999.99")),
    "avg_days_to_close": (0, 3_650),
}
CHOICE_SETS: dict[str, frozenset[str]] = {
    "status": frozenset(AGENT_STATUSES),
    "subscription_tier": frozenset(SUBSCRIPTION_TIERS),
    "client_focus": frozenset(CLIENT_FOCUSES),
    "bio_tone": frozenset(BIO_TONES),
    "content_style": frozenset(CONTENT_STYLES),
}
ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
PHONE_COLUMNS = ("phone", "cell_phone", "office_phone")
# A 10-digit NANP number: optional leading 1 or +1, punctuation and spaces allowed;
# area code and exchange start with 2-9.
NANP_PHONE_RE = re.compile(r"^(?:\+?1[\s.-]*)?\(?[2-9][0-9]{2}\)?[\s.-]*[2-9][0-9]{2}[\s.-]*[0-9]{4}$")
_email_validator = EmailValidator()
_url_validator = URLValidator(schemes=["http", "https"])


def _max_lengths() -> dict[str, int]:
    from .models import Agent

    return {
        f.name: f.max_length
        for f in Agent._meta.concrete_fields
        if f.get_internal_type() in ("CharField", "SlugField")
    }


class AgentValidator:
    def __init__(self, industry_rules: Mapping[str, IndustryRule]):
        self.industry_rules = industry_rules
        self.max_lengths = _max_lengths()

    def validate(self, values: Mapping[str, Any]) -> dict[str, str]:
        """Check the columns present in `values`; return {column: message} for each failure."""
        errors: dict[str, str] = {}

        agent_id = values.get("id")
        if agent_id is not None and not ID_RE.match(str(agent_id)):
            errors["id"] = "Must be 1-64 characters: letters, digits, '_', '.', ':' or '-'."
        if "name" in values and not (values["name"] or "").strip():
            errors["name"] = "Name is required."
        slug = values.get("slug")
        if slug and not SLUG_RE.match(slug):
            errors["slug"] = "Slug may hold only lowercase letters, digits and single hyphens."

        max_lengths = self.max_lengths
        for column, value in values.items():
            limit = max_lengths.get(column)
            if limit is not None and isinstance(value, str) and len(value) > limit:
                errors[column] = f"At most {limit} characters (got {len(value)})."

        if "state" in values:
            state = values["state"]
            if state not in US_STATES:
                errors["state"] = (
                    f"Unknown state code {state!r}: use a 2-letter code of the 50 states, "
                    "DC, AS, GU, MP, PR or VI."
                )

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

        email = values.get("email")
        if email and "email" not in errors:
            try:
                _email_validator(email)
            except ValidationError:
                errors["email"] = f"{email!r} is not a valid e-mail address."
        for column in URL_COLUMNS:
            url = values.get(column)
            if url and column not in errors:
                try:
                    _url_validator(url)
                except ValidationError:
                    errors[column] = f"{url!r} is not a valid http(s) URL."

        for column in JSON_LIST_COLUMNS:
            if column in values:
                value = values[column]
                if not isinstance(value, list):
                    errors[column] = f"Must be a JSON list, got {type(value).__name__}."
                elif not all(isinstance(item, str) for item in value):
                    errors[column] = "Must be a JSON list of strings."
        for column in JSON_OBJECT_COLUMNS:
            if column in values and not isinstance(values[column], dict):
                errors[column] = f"Must be a JSON object, got {type(values[column]).__name__}."

        for column, (low, high) in NUMBER_RANGES.items():
            value = values.get(column)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | Decimal):
                errors[column] = "Must be a number."
            elif not low <= value <= high:
                errors[column] = f"Must be between {low} and {high} (got {value})."

        for column, allowed in CHOICE_SETS.items():
            if column in values and values[column] not in allowed:
                errors[column] = f"{values[column]!r} is not one of: {', '.join(sorted(allowed))}."

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
    """Model.clean() hook: validate an Agent instance, raise ValidationError per field."""
    values = _instance_values(agent)
    errors = AgentValidator(industry_rules_get()).validate(values)
    if errors:
        # The admin form shows errors next to fields; "industry" is a form field too.
        raise ValidationError({column: [message] for column, message in errors.items()})
