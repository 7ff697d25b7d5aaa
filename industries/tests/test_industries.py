import pytest
from django.core.exceptions import ValidationError

from industries.models import IndustryConfig
from industries.seed import INDUSTRIES

from .factories import IndustryConfigFactory

pytestmark = pytest.mark.django_db


def test_data_migration_loads_the_six_industries():
    rows = {cfg.industry: cfg for cfg in IndustryConfig.objects.all()}
    assert set(rows) == {"real_estate", "legal", "insurance", "mortgage", "financial", "contractor"}
    assert rows["contractor"].display_name == "Home Services"
    assert rows["financial"].professions == ["advisor", "planner", "cpa", "tax_pro"]
    assert rows["mortgage"].license_label == "NMLS ID"
    assert rows["insurance"].license_label == "NPN"
    assert rows["financial"].license_label == "FINRA CRD"
    assert rows["real_estate"].license_pattern == ""
    assert len(rows) == len(INDUSTRIES)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("professions", "agent"),
        ("professions", ["Not Snake"]),
        ("specializations", {"luxury": True}),
        ("tools", ["ok", "ok"]),
    ],
)
def test_json_columns_must_be_lists_of_snake_case_keys(field, value):
    industry = IndustryConfigFactory.build(**{field: value})
    with pytest.raises(ValidationError) as exc:
        industry.full_clean()
    assert field in exc.value.message_dict


def test_valid_industry_passes_full_clean():
    IndustryConfigFactory.build(industry="pets", professions=["groomer"]).full_clean()


def test_bad_license_pattern_is_rejected():
    industry = IndustryConfigFactory.build(industry="pets", license_pattern="[0-9")
    with pytest.raises(ValidationError) as exc:
        industry.full_clean()
    assert "license_pattern" in exc.value.message_dict


def test_admin_rejects_invalid_json(admin_client):
    response = admin_client.post(
        "/admin/industries/industryconfig/add/",
        {
            "industry": "pets",
            "display_name": "Pets",
            "enabled": "on",
            "professions": "[not json",
            "specializations": "[]",
            "tools": "[]",
            "lead_types": "[]",
            "required_licenses": "on",
            "license_label": "License",
            "license_pattern": "",
        },
    )
    assert response.status_code == 200
    assert "Enter a valid JSON" in response.content.decode()
    assert not IndustryConfig.objects.filter(industry="pets").exists()


def test_admin_creates_valid_industry(admin_client):
    response = admin_client.post(
        "/admin/industries/industryconfig/add/",
        {
            "industry": "pets",
            "display_name": "Pet Services",
            "enabled": "on",
            "professions": '["groomer", "walker"]',
            "specializations": '["dogs"]',
            "tools": "[]",
            "lead_types": "[]",
            "required_licenses": "",
            "license_label": "License",
            "license_pattern": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert IndustryConfig.objects.get(industry="pets").professions == ["groomer", "walker"]
