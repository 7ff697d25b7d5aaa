import factory
from factory.django import DjangoModelFactory

from agents.models import Agent


class AgentFactory(DjangoModelFactory):
    class Meta:
        model = Agent

    name = factory.Sequence(lambda n: f"Agent Number {n}")
    email = factory.Sequence(lambda n: f"agent{n}@example.com")
    phone = "+1 555-010-0000"
    license_number = factory.Sequence(lambda n: f"RE-{n:08d}")
    state = "CA"
    city = "San Diego"
    brokerage = "Coastal Realty"
    industry_id = "real_estate"
    profession = "agent"
