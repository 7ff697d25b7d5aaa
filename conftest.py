import pytest


@pytest.fixture(autouse=True)
def _industries_after_flush(request):
    """Transactional tests flush every table, the seeded industries too: put them back."""
    marker = request.node.get_closest_marker("django_db")
    if marker and marker.kwargs.get("transaction") or "transactional_db" in request.fixturenames:
        from industries.services import industries_seed

        request.getfixturevalue("transactional_db")
        industries_seed()


@pytest.fixture
def industry_rules(db):
    from industries.selectors import industry_rules_get

    return industry_rules_get()
