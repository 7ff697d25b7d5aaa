-- Multi-industry platform (simple variant): an industry and profession per
-- agent, and one configuration row per industry. No foreign key from agents:
-- SQLite cannot add a referencing column with a non-NULL default.
ALTER TABLE agents ADD COLUMN industry TEXT DEFAULT 'real_estate';
ALTER TABLE agents ADD COLUMN profession TEXT DEFAULT 'agent';
ALTER TABLE agents ADD COLUMN specializations JSON DEFAULT '[]';
CREATE INDEX IF NOT EXISTS idx_agents_industry_profession ON agents(industry, profession);
CREATE TABLE IF NOT EXISTS industry_config (
    industry TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    professions JSON NOT NULL,
    required_licenses BOOLEAN DEFAULT true,
    specializations JSON,
    tools JSON,
    lead_types JSON,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
INSERT OR IGNORE INTO industry_config (industry, display_name, professions, required_licenses, specializations, tools, lead_types) VALUES
    ('real_estate', 'Real Estate', '["agent","broker","appraiser"]', 1, '["luxury","commercial","first_time","investment","foreclosure"]', '["mls","crm","virtual_tours","transaction_management"]', '["buyer","seller","renter","investor"]'),
    ('legal', 'Legal Services', '["attorney","paralegal","mediator"]', 1, '["family","criminal","estate_planning","real_estate_law","business","immigration"]', '["case_management","e_filing","legal_research"]', '["consultation","representation","document_review"]'),
    ('insurance', 'Insurance', '["agent","broker","adjuster"]', 1, '["home","auto","life","health","commercial","flood"]', '["quoting","policy_management","claims_portal"]', '["quote","policy_review","claim"]'),
    ('mortgage', 'Mortgage Services', '["loan_officer","broker","processor"]', 1, '["conventional","fha","va","jumbo","refinance","reverse"]', '["rate_calculator","loan_origination","pre_approval"]', '["purchase","refinance","pre_approval"]'),
    ('financial', 'Financial Advisory', '["advisor","planner","cpa","tax_pro"]', 1, '["retirement","wealth_management","tax_planning","estate","college_savings"]', '["portfolio_analysis","financial_planning","tax_software"]', '["consultation","portfolio_review","tax_preparation"]'),
    ('contractor', 'Home Services', '["plumber","electrician","hvac","roofer","general","handyman"]', 1, '["residential","commercial","emergency","remodeling","new_construction"]', '["estimating","scheduling","invoicing"]', '["estimate","repair","installation","emergency"]');
