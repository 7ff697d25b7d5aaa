import pytest

from agents.models import Agent
from agents.services import agent_slug_candidate

from .factories import AgentFactory

pytestmark = pytest.mark.django_db


def test_slug_is_generated_from_name_folding_accents():
    agent = AgentFactory(name="José Núñez-O'Brien, Jr.")
    assert agent.slug.startswith("jose-nunez-obrien-jr-")


def test_many_agents_with_the_same_name_get_unique_slugs():
    agents = [AgentFactory(name="John Smith") for _ in range(200)]
    slugs = {a.slug for a in agents}
    assert len(slugs) == 200
    assert all(s.startswith("john-smith-") for s in slugs)


def test_slug_is_deterministic_for_an_id():
    assert agent_slug_candidate(name="Ann Lee", agent_id="x1") == agent_slug_candidate(
        name="Ann Lee", agent_id="x1"
    )
    assert agent_slug_candidate(name="Ann Lee", agent_id="x1") != agent_slug_candidate(
        name="Ann Lee", agent_id="x2"
    )


def test_slug_collision_lengthens_the_digest():
    first = AgentFactory(name="Ann Lee")
    # Another agent already holds the slug this one would get.
    taken = agent_slug_candidate(name="Ann Lee", agent_id="clash")
    Agent.objects.filter(pk=first.pk).update(slug=taken)
    second = AgentFactory(id="clash", name="Ann Lee")
    assert second.slug != taken and second.slug.startswith("ann-lee-")


def test_given_slug_is_kept():
    assert AgentFactory(slug="custom-slug").slug == "custom-slug"


def test_name_without_letters_still_gets_a_slug():
    assert AgentFactory(name="!!!").slug.startswith("agent-")
