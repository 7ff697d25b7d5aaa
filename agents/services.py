"""Writes to agents. Callers pass keyword arguments; reads live in selectors.py."""

import hashlib

from django.utils.text import slugify

from .models import Agent

SLUG_BASE_MAX = 100


def agent_slug_base(name: str) -> str:
    # slugify() folds accents (José -> jose) and drops apostrophes and commas.
    return slugify(name)[:SLUG_BASE_MAX].strip("-") or "agent"


def agent_slug_candidate(*, name: str, agent_id: str, digest_length: int = 8) -> str:
    """Slug derived from the name plus a digest of the id.

    The id makes it deterministic (a re-import yields the same slug) and
    unique without a lookup even across parallel import chunks, where
    thousands of "John Smith" rows are normal.
    """
    digest = hashlib.sha1(agent_id.encode(), usedforsecurity=False).hexdigest()[:digest_length]
    return f"{agent_slug_base(name)}-{digest}"


def agent_slug_assign(*, agent: Agent) -> str:
    """Give `agent` a unique slug; lengthens the digest on the rare collision."""
    for length in (8, 12, 16, 40):
        candidate = agent_slug_candidate(name=agent.name, agent_id=agent.id, digest_length=length)
        if not Agent.objects.filter(slug=candidate).exclude(pk=agent.pk).exists():
            agent.slug = candidate
            return candidate
    raise RuntimeError(f"Could not find a free slug for agent {agent.id}")
