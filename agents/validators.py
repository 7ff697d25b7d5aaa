"""Field validators of the Agent model: one column's shape, whatever writes it.

They sit on the model fields (agents/models.py), so the admin form, full_clean()
and AgentValidator (which reads them from Agent._meta for imports) apply the
same rule with the same message. Rules that need two columns or the industry
table stay in agents/validation.py.

Module-level, and referenced by Django migrations: rename one only together
with a migration that points at the new name.
"""

import re

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator

ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


# Functions with compiled patterns rather than RegexValidator: an import runs them on every
# row, and RegexValidator reaches its pattern through a lazy object on each call.
def validate_agent_id(value) -> None:
    if not ID_RE.match(str(value)):
        raise ValidationError(
            "Must be 1-64 characters: letters, digits, '_', '.', ':' or '-'.", code="invalid_id"
        )


def validate_agent_slug(value) -> None:
    if not SLUG_RE.match(str(value)):
        raise ValidationError(
            "Slug may hold only lowercase letters, digits and single hyphens.", code="invalid_slug"
        )


def validate_not_blank(value) -> None:
    """Spaces alone are no value: Django's own blank check stops at the empty string."""
    if isinstance(value, str) and not value.strip():
        raise ValidationError("Must not be blank.", code="blank")


validate_agent_email = EmailValidator("%(value)r is not a valid e-mail address.")
validate_http_url = URLValidator(schemes=["http", "https"], message="%(value)r is not a valid http(s) URL.")


def validate_json_string_list(value) -> None:
    """A JSON list of strings (regions, zip codes, languages...): what the public site iterates."""
    if not isinstance(value, list):
        raise ValidationError(
            "Must be a JSON list, got %(type)s.", code="json_list", params={"type": type(value).__name__}
        )
    if not all(isinstance(item, str) for item in value):
        raise ValidationError("Must be a JSON list of strings.", code="json_list")


def validate_json_object(value) -> None:
    """A JSON object (price ranges, features): the public site reads its keys."""
    if not isinstance(value, dict):
        raise ValidationError(
            "Must be a JSON object, got %(type)s.", code="json_object", params={"type": type(value).__name__}
        )
