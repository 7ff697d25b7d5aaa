import pytest


@pytest.fixture
def industry_rules(db):
    from industries.selectors import industry_rules_get

    return industry_rules_get()
