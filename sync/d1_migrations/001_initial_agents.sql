-- The public directory's first schema: one agents table.
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    slug TEXT UNIQUE NOT NULL,
    name TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    cell_phone TEXT,
    office_phone TEXT,
    license_number TEXT,
    mls_id TEXT,
    state TEXT NOT NULL,
    city TEXT,
    brokerage TEXT,
    brokerage_license TEXT,
    bio TEXT,
    photo_url TEXT,
    video_intro_url TEXT,
    status TEXT DEFAULT 'active',
    ghost_profile BOOLEAN DEFAULT true,
    claimed_at TIMESTAMP,
    claimed_by TEXT,
    profile_views INTEGER DEFAULT 0,
    fake_leads_count INTEGER DEFAULT 7,
    source TEXT,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    enriched_at TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_agents_state_city ON agents(state, city);
CREATE INDEX IF NOT EXISTS idx_agents_slug ON agents(slug);
CREATE INDEX IF NOT EXISTS idx_agents_license ON agents(license_number);
CREATE INDEX IF NOT EXISTS idx_agents_mls ON agents(mls_id);
CREATE INDEX IF NOT EXISTS idx_agents_brokerage ON agents(brokerage);
CREATE INDEX IF NOT EXISTS idx_agents_status ON agents(status);
CREATE INDEX IF NOT EXISTS idx_agents_ghost_claimed ON agents(ghost_profile, claimed_at);
