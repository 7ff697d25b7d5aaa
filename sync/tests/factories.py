import datetime as dt
from decimal import Decimal

import factory
from factory.django import DjangoModelFactory

from agents.models import Agent
from industries.models import IndustryConfig
from industries.seed import INDUSTRIES


def industries_ensure() -> None:
    """transactional_db flushes the seeded industries; put them back."""
    for row in INDUSTRIES:
        values = {k: v for k, v in row.items() if k != "industry"}
        IndustryConfig.objects.update_or_create(industry=row["industry"], defaults=values)


class SyncAgentFactory(DjangoModelFactory):
    """An agent exercising every D1 type: text with quotes/newlines/Unicode, JSON, decimals, timestamps."""

    class Meta:
        model = Agent

    name = factory.Sequence(lambda n: f'O\'Brien Agent {n} — Zoë "Z"')
    email = factory.Sequence(lambda n: f"agent{n}@example.com")
    license_number = factory.Sequence(lambda n: f"RE-{n:08d}")
    state = factory.Iterator(["CA", "NY", "TX", "PR"])
    city = "San José"
    bio = "Line one\nLine 'two'\r\n\ttabbed 🏠 — 東京"
    industry_id = factory.Iterator(["real_estate", "legal", "mortgage"])
    profession = "agent"
    service_zipcodes = ["92101", "92102"]
    price_ranges = {"min": 100000, "max": 2500000, "note": 'it\'s "fine"'}
    total_volume_sold = Decimal("1234567.89")
    claimed_at = dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=dt.UTC)
    ghost_profile = False


def agents_bulk(n: int, *, prefix: str = "a") -> list[Agent]:
    """n agents via bulk_create (one INSERT statement: the statement-level trigger path)."""
    built = SyncAgentFactory.build_batch(n)
    for i, agent in enumerate(built):
        agent.id = f"{prefix}{i:07d}"
        agent.slug = f"{prefix}-slug-{i:07d}"
    return Agent.objects.bulk_create(built, batch_size=2000)
