import pytest
from django.core.cache import cache

ROLE_NAMES = ("Viewer", "Editor", "Importer", "Operator")


@pytest.fixture
def roles(db):
    """The role groups as the migration made them (re-applied: a transactional test may have flushed them)."""
    from accounts.roles import roles_apply

    roles_apply()


@pytest.fixture
def role_user(roles):
    from accounts.services import user_create_in_role

    made = {}

    def make(role: str):
        if role not in made:
            made[role] = user_create_in_role(
                username=f"u-{role.lower()}", role=role, password="pw-Secret-123"
            )
        return made[role]

    return make


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Dashboard figures and login counters live in the cache: start each test clean."""
    from estateflow.admin_dashboard import AGENT_STATS_CACHE_KEY

    cache.delete(AGENT_STATS_CACHE_KEY)
    yield
    cache.delete(AGENT_STATS_CACHE_KEY)
