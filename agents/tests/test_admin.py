import csv
import io
import json

import pytest
from openpyxl import load_workbook

from agents.models import Agent
from agents.resources import D1_AGENT_COLUMNS

from .factories import AgentFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/agents/agent/"


def test_changelist_lists_agents(admin_client):
    AgentFactory(name="Alice Alpha")
    AgentFactory(name="Bob Beta")
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Alice Alpha" in body and "Bob Beta" in body


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=alpha", "Alice Alpha"),
        ("q=alice%40corp.example", "Alice Alpha"),
        ("q=LIC-777", "Alice Alpha"),
        ("q=Harbor", "Alice Alpha"),
        ("q=Fresno", "Alice Alpha"),
        ("industry__industry__exact=legal", "Alice Alpha"),
        ("state__exact=NY", "Alice Alpha"),
        ("subscription_tier__exact=premium", "Alice Alpha"),
        ("status__exact=pending", "Alice Alpha"),
        ("ghost_profile__exact=0", "Alice Alpha"),
    ],
)
def test_search_and_filters(admin_client, query, expected):
    AgentFactory(
        name="Alice Alpha",
        email="alice@corp.example",
        license_number="LIC-777",
        brokerage="Harbor Law",
        city="Fresno",
        industry_id="legal",
        profession="attorney",
        state="NY",
        subscription_tier="premium",
        status="pending",
        ghost_profile=False,
    )
    AgentFactory(name="Other Person", city="Austin", state="TX")
    response = admin_client.get(f"{CHANGELIST}?{query}")
    assert response.status_code == 200
    body = response.content.decode()
    assert expected in body
    assert "Other Person" not in body


def test_change_view_shows_fieldsets_and_readonly_timestamps(admin_client):
    agent = AgentFactory()
    response = admin_client.get(f"{CHANGELIST}{agent.pk}/change/")
    assert response.status_code == 200
    body = response.content.decode()
    for legend in ("Identity", "Contact", "Licensing", "Geography", "Specialty", "Tier", "Industry"):
        assert f">{legend}<" in body
    assert 'name="updated_at"' not in body and 'name="created_at"' not in body


def test_change_view_rejects_invalid_values(admin_client):
    agent = AgentFactory()
    response = admin_client.get(f"{CHANGELIST}{agent.pk}/change/")
    form = response.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "photo"}
    for key in (
        "service_regions",
        "service_zipcodes",
        "secondary_specialties",
        "property_types",
        "price_ranges",
        "language_capabilities",
        "unique_value_props",
        "features",
        "specializations",
    ):
        data[key] = json.dumps(data[key])
    data.update({"state": "CA", "industry": "mortgage", "profession": "plumber",
                 "license_number": "98765", "ghost_profile": ""})  # fmt: skip
    response = admin_client.post(f"{CHANGELIST}{agent.pk}/change/", data)
    assert response.status_code == 200
    assert "does not belong to mortgage" in response.content.decode()
    data["profession"] = "loan_officer"
    response = admin_client.post(f"{CHANGELIST}{agent.pk}/change/", data)
    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.license_number == "98765" and agent.industry_id == "mortgage"


def test_doubtful_licence_and_phone_save_with_warnings(admin_client):
    agent = AgentFactory(industry_id="mortgage", profession="loan_officer", phone="415-555-0123")
    AgentFactory(
        industry_id="mortgage", profession="loan_officer", state=agent.state, license_number="MTG34567"
    )
    response = admin_client.get(f"{CHANGELIST}{agent.pk}/change/")
    form = response.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "photo"}
    for key, value in data.items():
        if isinstance(value, list | dict):
            data[key] = json.dumps(value)
    data.update({"license_number": "MTG34567", "phone": "555-0001", "ghost_profile": ""})
    response = admin_client.post(f"{CHANGELIST}{agent.pk}/change/", data, follow=True)
    assert response.redirect_chain and response.redirect_chain[0][1] == 302
    agent.refresh_from_db()
    assert (agent.license_number, agent.phone) == ("MTG34567", "555-0001")
    shown = [(m.level_tag, m.message) for m in response.context["messages"]]
    warnings = [text for level, text in shown if level == "warning"]
    assert any("not a recognised NMLS ID" in w for w in warnings), shown
    assert any("shared by 2 agents" in w for w in warnings), shown
    assert any("phone" in w and "10-digit" in w for w in warnings), shown
    # A clean licence and phone: saved without a warning.
    data.update({"license_number": "1234567", "phone": "(415) 555-0123"})
    response = admin_client.post(f"{CHANGELIST}{agent.pk}/change/", data, follow=True)
    assert not [m for m in response.context["messages"] if m.level_tag == "warning"]


def test_licence_format_filter(admin_client):
    recognised = [
        AgentFactory(name="Npn Digits", industry_id="insurance", license_number="12345"),
        AgentFactory(name="Free Text Realtor", industry_id="real_estate", license_number="RE123456"),
    ]
    unrecognised = [
        AgentFactory(name="Npn Letters", industry_id="insurance", license_number="INS45678"),
        AgentFactory(name="Nmls Leading Zero", industry_id="mortgage", license_number="0123"),
        # The pattern must match the whole licence, not a part of it.
        AgentFactory(name="Crd Too Long", industry_id="financial", license_number="123456789"),
    ]
    AgentFactory(name="No Licence", industry_id="insurance", license_number=None)
    AgentFactory(name="Empty Licence", industry_id="insurance", license_number="")
    for value, expected in (("recognised", recognised), ("unrecognised", unrecognised)):
        response = admin_client.get(f"{CHANGELIST}?licence_format={value}")
        assert response.status_code == 200
        listed = {a.pk for a in response.context["cl"].result_list}
        assert listed == {a.pk for a in expected}, value
    assert "licence format" in response.content.decode()


def _export(admin_client, file_format: int) -> bytes:
    # django-import-export's export form: format index in export_formats (CSV, XLSX, JSON).
    data = {"format": str(file_format), "export_items": []}
    data.update({f"agentresource_{c}": "on" for c in D1_AGENT_COLUMNS})
    response = admin_client.post(f"{CHANGELIST}export/", data)
    assert response.status_code == 200, response.content[:500]
    return response.content


DANGEROUS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]


def test_export_csv_has_d1_columns_and_escapes_formulae(admin_client):
    for i, value in enumerate(DANGEROUS):
        AgentFactory(name=f"Agent {i}", brokerage=value)
    rows = list(csv.DictReader(io.StringIO(_export(admin_client, 0).decode("utf-8-sig"))))
    assert list(rows[0].keys()) == list(D1_AGENT_COLUMNS)
    brokerages = sorted(r["brokerage"] for r in rows)
    assert brokerages == sorted("'" + v for v in DANGEROUS)


def test_export_xlsx_escapes_formulae(admin_client):
    AgentFactory(brokerage="=1+1", city="@evil")
    workbook = load_workbook(io.BytesIO(_export(admin_client, 1)))
    sheet = workbook.active
    header = [c.value for c in sheet[1]]
    row = dict(zip(header, [c.value for c in sheet[2]], strict=True))
    assert row["brokerage"] == "'=1+1"
    assert row["city"] == "'@evil"


def test_export_json(admin_client):
    AgentFactory(name="Json Person", brokerage="-minus")
    data = json.loads(_export(admin_client, 2))
    assert data[0]["name"] == "Json Person"
    assert data[0]["brokerage"] == "'-minus"
    assert data[0]["industry"] == "real_estate"
    assert set(data[0]) == set(D1_AGENT_COLUMNS)


def test_models_hold_every_d1_column():
    # D1's columns are what sync/d1_migrations builds (replayed by agents.checks, whose system
    # check also compares types, NOT NULL and defaults); only the sync's bookkeeping is D1's own.
    from agents.checks import D1_BOOKKEEPING_COLUMNS, d1_agent_columns
    from agents.resources import BACK_OFFICE_ONLY_COLUMNS

    d1_columns = set(d1_agent_columns()) - D1_BOOKKEEPING_COLUMNS
    assert "name" in d1_columns and "specializations" in d1_columns
    assert set(D1_AGENT_COLUMNS) == d1_columns
    assert {f.column for f in Agent._meta.concrete_fields} == d1_columns | BACK_OFFICE_ONLY_COLUMNS
