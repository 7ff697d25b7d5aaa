"""Reads over agents."""

from django.db import connection
from django.db.models import F, Q, QuerySet, Value
from django.db.models.functions import Concat

from .models import Agent


def agents_table_checksum() -> dict:
    """md5 over every row of `agents` (every column) in id order, plus the row count.

    Equal checksums mean equal tables, so a test or an operator can prove
    that a rollback put the table back exactly as it was.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), coalesce(md5(string_agg(md5(a::text), '' ORDER BY a.id)), md5('')) FROM agents a"
        )
        rows, digest = cursor.fetchone()
    return {"rows": rows, "md5": digest}


def agents_with_licence_format(queryset: QuerySet, *, recognised: bool) -> QuerySet:
    """Agents whose licence does (or does not) match their industry's official pattern, in SQL.

    PostgreSQL's `~` against '^(?:' || pattern || ')$', the full match the
    validator applies. An industry without a pattern (state-specific free text)
    recognises every licence; a missing or empty licence is in neither set.
    """
    has_licence = Q(license_number__isnull=False) & ~Q(license_number="")
    matches = Q(industry__license_pattern="") | Q(
        license_number__regex=Concat(Value("^(?:"), F("industry__license_pattern"), Value(")$"))
    )
    return queryset.filter(has_licence & (matches if recognised else ~matches))


def agent_warnings(*, agent: Agent) -> list[tuple[str, str]]:
    """(column, message) pairs: the data-quality doubts about a saved agent (they never block a save)."""
    from .validation import agent_instance_warnings

    doubts = list(agent_instance_warnings(agent).items())
    if agent.license_number:
        holders = Agent.objects.filter(
            industry_id=agent.industry_id, state=agent.state, license_number=agent.license_number
        ).count()
        if holders > 1:
            doubts.append((
                "license_number",
                f"licence {agent.license_number} is shared by {holders:,} agents in {agent.state} {agent.industry_id}",
            ))  # fmt: skip
    return doubts
