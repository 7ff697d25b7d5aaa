import factory
from factory.django import DjangoModelFactory

from industries.models import IndustryConfig


class IndustryConfigFactory(DjangoModelFactory):
    class Meta:
        model = IndustryConfig
        django_get_or_create = ("industry",)

    industry = factory.Sequence(lambda n: f"industry_{n}")
    display_name = factory.Sequence(lambda n: f"Industry {n}")
    professions = factory.LazyFunction(lambda: ["specialist"])
    specializations = factory.LazyFunction(lambda: ["general"])
    tools = factory.LazyFunction(list)
    lead_types = factory.LazyFunction(list)
