"""Validators for the industry configuration's own JSON columns."""

import re

from django.core.exceptions import ValidationError

SNAKE_CASE_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def validate_snake_case_list(value: object) -> None:
    if value is None:
        return
    if not isinstance(value, list):
        raise ValidationError('Must be a JSON list of snake_case keys, e.g. ["luxury", "commercial"].')
    bad = [item for item in value if not isinstance(item, str) or not SNAKE_CASE_RE.match(item)]
    if bad:
        raise ValidationError(f"Not snake_case keys: {', '.join(map(repr, bad[:5]))}.")
    if len(set(value)) != len(value):
        raise ValidationError("Keys must not repeat.")
