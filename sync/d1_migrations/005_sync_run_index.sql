-- Ours. Finds the agents the back-office has not written yet (sync_run = 0:
-- rows of the system we took over) without scanning the table on every sync.
CREATE INDEX IF NOT EXISTS idx_agents_sync_run ON agents(sync_run);
