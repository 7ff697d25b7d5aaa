-- Ours (EstateFlow back-office sync). Never edit 000-003; new columns go here.
--
-- sync_version: a 31-bit digest of the row's D1 columns as the back-office
--   rendered them; d1_verify sums it per id range to find drift cheaply.
-- sync_run: the back-office SyncRun that wrote the row. Writes carry it so a
--   late duplicate of an old request can neither overwrite a newer row nor
--   resurrect a deleted one.
ALTER TABLE agents ADD COLUMN sync_version INTEGER;
ALTER TABLE agents ADD COLUMN sync_run INTEGER NOT NULL DEFAULT 0;

-- Deleted agent ids and the run that deleted them.
CREATE TABLE IF NOT EXISTS sync_tombstones (
    id TEXT PRIMARY KEY,
    sync_run INTEGER NOT NULL,
    deleted_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL
);

-- An insert of a tombstoned id from the same or an older run is dropped
-- silently (RAISE(IGNORE) skips the row, the statement goes on). A genuinely
-- re-created agent comes from a newer run and passes.
CREATE TRIGGER IF NOT EXISTS agents_tombstone_guard
BEFORE INSERT ON agents
FOR EACH ROW
WHEN EXISTS (SELECT 1 FROM sync_tombstones t WHERE t.id = NEW.id AND t.sync_run >= NEW.sync_run)
BEGIN
    SELECT RAISE(IGNORE);
END;
