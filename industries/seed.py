"""The six industries of the directory, as the data migration loads them.

Kept as plain data (no model imports) so migrations and the generator can
both read it without depending on model state.
"""

INDUSTRIES: list[dict] = [
    {
        "industry": "real_estate",
        "display_name": "Real Estate",
        "professions": ["agent", "broker", "appraiser"],
        "specializations": ["luxury", "commercial", "first_time", "investment", "foreclosure"],
        "tools": ["mls", "crm", "virtual_tours", "transaction_management"],
        "lead_types": ["buyer", "seller", "renter", "investor"],
        "license_label": "Real estate license",
        "license_pattern": "",
    },
    {
        "industry": "legal",
        "display_name": "Legal Services",
        "professions": ["attorney", "paralegal", "mediator"],
        "specializations": ["family", "criminal", "estate_planning", "real_estate_law", "business", "immigration"],
        "tools": ["case_management", "e_filing", "legal_research"],
        "lead_types": ["consultation", "representation", "document_review"],
        "license_label": "Bar number",
        "license_pattern": "",
    },
    {
        "industry": "insurance",
        "display_name": "Insurance",
        "professions": ["agent", "broker", "adjuster"],
        "specializations": ["home", "auto", "life", "health", "commercial", "flood"],
        "tools": ["quoting", "policy_management", "claims_portal"],
        "lead_types": ["quote", "policy_review", "claim"],
        "license_label": "NPN",
        "license_pattern": r"[0-9]{1,10}",
    },
    {
        "industry": "mortgage",
        "display_name": "Mortgage Services",
        "professions": ["loan_officer", "broker", "processor"],
        "specializations": ["conventional", "fha", "va", "jumbo", "refinance", "reverse"],
        "tools": ["rate_calculator", "loan_origination", "pre_approval"],
        "lead_types": ["purchase", "refinance", "pre_approval"],
        "license_label": "NMLS ID",
        "license_pattern": r"[1-9][0-9]{0,11}",
    },
    {
        "industry": "financial",
        "display_name": "Financial Advisory",
        "professions": ["advisor", "planner", "cpa", "tax_pro"],
        "specializations": ["retirement", "wealth_management", "tax_planning", "estate", "college_savings"],
        "tools": ["portfolio_analysis", "financial_planning", "tax_software"],
        "lead_types": ["consultation", "portfolio_review", "tax_preparation"],
        "license_label": "FINRA CRD",
        "license_pattern": r"[0-9]{1,8}",
    },
    {
        "industry": "contractor",
        "display_name": "Home Services",
        "professions": ["plumber", "electrician", "hvac", "roofer", "general", "handyman"],
        "specializations": ["residential", "commercial", "emergency", "remodeling", "new_construction"],
        "tools": ["estimating", "scheduling", "invoicing"],
        "lead_types": ["estimate", "repair", "installation", "emergency"],
        "license_label": "Contractor license",
        "license_pattern": "",
    },
]  # fmt: skip


def industries_upsert(model) -> int:
    """Create or refresh the rows above in `model` (the real model, or a migration's historical one)."""
    for row in INDUSTRIES:
        values = {key: value for key, value in row.items() if key != "industry"}
        model.objects.update_or_create(industry=row["industry"], defaults=values)
    return len(INDUSTRIES)
