-- Migration bookkeeping, in wrangler's own format so `wrangler d1 migrations`
-- and `manage.py d1_migrate` agree on what is applied.
CREATE TABLE IF NOT EXISTS d1_migrations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT UNIQUE,
    applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL
);
