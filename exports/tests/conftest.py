import pytest
from django.contrib.auth.models import Permission

# Shared fixtures: role users (accounts), a private Redis and real worker processes (imports).
from accounts.tests.conftest import role_user, roles  # noqa: F401
from imports.tests.conftest import private_redis, workers  # noqa: F401


@pytest.fixture
def editor(role_user):  # noqa: F811
    """An Editor (may export agents, not their contact details)."""
    return role_user("Editor")


@pytest.fixture
def contacts_editor(roles):  # noqa: F811
    """Another Editor, who may also export emails and phones."""
    from accounts.services import user_create_in_role

    user = user_create_in_role(username="u-contacts", role="Editor", password="pw-Secret-123")
    user.user_permissions.add(Permission.objects.get(codename="export_contacts_agent"))
    return user
