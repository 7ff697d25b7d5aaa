from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from agents.validation import AgentValidator
from industries.models import IndustryConfig

from .factories import AgentFactory

pytestmark = pytest.mark.django_db

VALID = {
    "id": "agt-0001",
    "name": "José O'Brien, Jr.",
    "state": "CA",
    "industry": "mortgage",
    "profession": "loan_officer",
    "license_number": "123456",
    "email": "jose@example.com",
    "photo_url": "https://cdn.example.com/a.jpg",
    "video_intro_url": "https://video.example.com/v/1",
    "service_regions": ["north"],
    "service_zipcodes": ["92101"],
    "secondary_specialties": [],
    "property_types": ["condo"],
    "language_capabilities": ["English", "Español"],
    "unique_value_props": [],
    "specializations": ["fha"],
    "price_ranges": {"min": 100000},
    "features": {},
    "profile_views": 10,
    "fake_leads_count": 7,
    "service_radius_miles": 25,
    "years_experience": 12,
    "transactions_ytd": 40,
    "total_volume_sold": Decimal("1234567.89"),
    "avg_days_to_close": 30,
    "status": "active",
    "subscription_tier": "premium",
    "client_focus": "both",
    "bio_tone": "professional",
    "content_style": "informative",
}


@pytest.fixture
def validator(industry_rules):
    return AgentValidator(industry_rules)


def test_valid_record_has_no_errors(validator):
    assert validator.validate(VALID) == {}


# (column, bad value, good value): every rule fails on the bad and passes on the good.
RULES = [
    ("id", "has space", "agt_1.a:b-c"),
    ("name", "   ", "Zoë Núñez"),
    ("slug", "Not A Slug", "zoe-nunez-1a2b3c4d"),
    ("state", "ZZ", "PR"),
    ("state", "ca", "DC"),
    ("industry", "astrology", "financial"),
    ("email", "not-an-email", "a.b@example.org"),
    ("photo_url", "ftp://x/y.jpg", "http://x.example/y.jpg"),
    ("video_intro_url", "not a url", "https://youtu.example/1"),
    ("service_regions", "north", ["north"]),
    ("service_zipcodes", [92101], ["92101"]),
    ("price_ranges", ["100000"], {"max": 5}),
    ("features", "x", {"verified": True}),
    ("years_experience", -3, 0),
    ("years_experience", 81, 80),
    ("transactions_ytd", 100_001, 100_000),
    ("total_volume_sold", Decimal("-1"), Decimal("0")),
    ("avg_days_to_close", 4000, None),
    ("service_radius_miles", 501, 500),
    ("profile_views", True, 5),
    ("status", "deleted", "inactive"),
    ("subscription_tier", "platinum", "enterprise"),
    ("client_focus", "aliens", "sellers"),
    ("bio_tone", "angry", "friendly"),
    ("content_style", "shouting", "storytelling"),
    ("city", "x" * 101, "x" * 100),
]


@pytest.mark.parametrize(("column", "bad", "good"), RULES)
def test_each_rule_fails_and_passes(validator, column, bad, good):
    record = {**VALID, "industry": "financial", "profession": "advisor", "license_number": "1234"}
    if column == "industry":
        record["license_number"] = "1234"
    record[column] = bad
    assert column in validator.validate(record)
    record[column] = good
    assert validator.validate(record) == {}


@pytest.mark.parametrize(
    ("industry", "profession", "bad", "good"),
    [
        ("mortgage", "loan_officer", "0123", "1234567890"),  # NMLS: no leading zero
        ("mortgage", "loan_officer", "1234567890123", "123456789012"),  # NMLS: 1-12 digits
        ("insurance", "agent", "NPN-12", "0012345678"),  # NPN: up to 10 digits
        ("insurance", "agent", "12345678901", "1"),
        ("financial", "advisor", "123456789", "12345678"),  # CRD: up to 8 digits
    ],
)
def test_licence_pattern_per_industry(validator, industry, profession, bad, good):
    # A licence off its industry's pattern is a warning, never an error (the live D1 breaks them all).
    record = {**VALID, "industry": industry, "profession": profession, "license_number": bad}
    assert validator.validate(record) == {}
    assert "license_number" in validator.warnings(record)
    record["license_number"] = good
    assert validator.validate(record) == {}
    assert validator.warnings(record) == {}


@pytest.mark.parametrize(
    ("industry", "profession", "licence", "label"),
    [
        ("insurance", "agent", "INS45678", "NPN"),
        ("mortgage", "loan_officer", "MTG34567", "NMLS ID"),
        ("financial", "advisor", "FIN23456", "FINRA CRD"),
    ],
)
def test_live_licences_are_warnings_naming_the_licence_kind(validator, industry, profession, licence, label):
    record = {**VALID, "industry": industry, "profession": profession, "license_number": licence}
    assert validator.validate(record) == {}
    message = validator.warnings(record)["license_number"]
    assert licence in message and label in message


@pytest.mark.parametrize(
    "phone",
    ["555-0001", "+1 555-010-0000", "123-456-7890", "415-155-0123", "415-555-012", "+44 20 7946 0958",
     "415-555-0123 x12", "call me"],
)  # fmt: skip
@pytest.mark.parametrize("column", ["phone", "cell_phone", "office_phone"])
def test_phone_that_is_not_nanp_is_a_warning(validator, column, phone):
    record = {**VALID, column: phone}
    assert validator.validate(record) == {}
    assert "10-digit" in validator.warnings(record)[column]


@pytest.mark.parametrize(
    "phone", ["4155550123", "415-555-0123", "(415) 555-0123", "+1 415 555 0123", "1-415-555-0123",
              "+1 (415) 555.0123", "+14155550123"],
)  # fmt: skip
def test_nanp_phones_carry_no_warning(validator, phone):
    record = {**VALID, "phone": phone, "cell_phone": phone, "office_phone": phone}
    assert validator.warnings(record) == {}


def test_free_text_licence_for_industries_without_pattern(validator):
    record = {**VALID, "industry": "real_estate", "profession": "broker", "license_number": "CA-RE #0192"}
    assert validator.validate(record) == {}
    assert validator.warnings(record) == {}


def test_profession_must_belong_to_industry(validator):
    record = {**VALID, "industry": "legal", "profession": "plumber", "license_number": "BAR-1"}
    errors = validator.validate(record)
    assert "plumber" in errors["profession"] and "attorney" in errors["profession"]
    record["profession"] = "mediator"
    assert validator.validate(record) == {}


def test_disabled_industry_is_rejected(industry_rules):
    IndustryConfig.objects.filter(industry="legal").update(enabled=False)
    from industries.selectors import industry_rules_get

    validator = AgentValidator(industry_rules_get())
    record = {**VALID, "industry": "legal", "profession": "attorney", "license_number": "BAR-1"}
    assert "disabled" in validator.validate(record)["industry"]


def test_tier_cannot_expire_before_it_starts(validator):
    now = timezone.now()
    record = {**VALID, "tier_started_at": now, "tier_expires_at": now - timezone.timedelta(days=1)}
    assert "tier_expires_at" in validator.validate(record)
    record["tier_expires_at"] = now + timezone.timedelta(days=1)
    assert validator.validate(record) == {}


def test_model_full_clean_uses_the_same_rules():
    agent = AgentFactory.build(
        state="ZZ", industry_id="mortgage", profession="loan_officer", license_number="ABC", email="nope"
    )
    with pytest.raises(ValidationError) as exc:
        agent.full_clean()
    assert {"state", "email"} <= set(exc.value.message_dict)
    # A licence off the NMLS pattern is only a warning: it does not block a save.
    assert "license_number" not in exc.value.message_dict


# The admin (Model.full_clean) and imports (AgentValidator) read the same field declarations.
# A bool in a number column is the import's own concern: Django's IntegerField takes True as 1.
@pytest.mark.parametrize(("column", "bad", "good"), [r for r in RULES if r[0] != "profile_views"])
def test_model_full_clean_refuses_what_the_validator_refuses(column, bad, good):
    record = {**VALID, "industry": "financial", "profession": "advisor", "license_number": "1234"}
    fields = {("industry_id" if c == "industry" else c): v for c, v in record.items()}
    AgentFactory.build(**{**fields, column if column != "industry" else "industry_id": good}).full_clean()
    agent = AgentFactory.build(**{**fields, column if column != "industry" else "industry_id": bad})
    with pytest.raises(ValidationError) as exc:
        agent.full_clean()
    assert set(exc.value.message_dict) == {column}


def test_the_validator_reads_its_limits_from_the_model_fields(validator):
    from agents.models import Agent

    years = Agent._meta.get_field("years_experience")
    highest = max(v.limit_value for v in years.validators if type(v).__name__ == "MaxValueValidator")
    message = validator.validate({**VALID, "years_experience": highest + 1})["years_experience"]
    assert message == f"Must be between 0 and {highest} (got {highest + 1})."
    city = Agent._meta.get_field("city")
    assert validator.validate({**VALID, "city": "x" * (city.max_length + 1)})["city"].startswith(
        f"At most {city.max_length} characters"
    )
    allowed = sorted(value for value, _ in Agent._meta.get_field("bio_tone").choices)
    assert (
        validator.validate({**VALID, "bio_tone": "angry"})["bio_tone"]
        == f"'angry' is not one of: {', '.join(allowed)}."
    )
    assert validator.validate({**VALID, "state": "ZZ"})["state"].startswith("Unknown state code 'ZZ'")
    assert validator.validate({**VALID, "name": None})["name"] == "Name is required."
