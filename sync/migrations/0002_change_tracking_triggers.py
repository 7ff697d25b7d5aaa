"""Change tracking for the D1 sync: statement-level triggers with transition tables.

Every write path ends up in `sync_change`: admin saves, Django bulk paths and
the import pipeline's COPY + INSERT ... ON CONFLICT / DELETE. One set-based
INSERT per statement keeps a 500,000-row import from paying a trigger call
per row. Updates that leave the whole row unchanged are not logged.

TRUNCATE is not tracked (transition tables do not exist for it); after a
TRUNCATE run `manage.py sync_d1 --full`.
"""

from django.db import migrations

TABLES = {"agents": "id", "industry_config": "industry"}


def _sql_create(table: str, key: str) -> str:
    xid = "pg_current_xact_id()::text::bigint"
    # Table and key names come from TABLES above, never from input.
    return f"""
CREATE OR REPLACE FUNCTION sync_track_{table}_ins() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO sync_change (table_name, row_id, op, xid, created_at)
    SELECT '{table}', n.{key}, 'U', {xid}, now() FROM sync_new n;
    RETURN NULL;
END $fn$;

CREATE OR REPLACE FUNCTION sync_track_{table}_upd() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO sync_change (table_name, row_id, op, xid, created_at)
    SELECT '{table}', n.{key}, 'U', {xid}, now()
      FROM sync_new n LEFT JOIN sync_old o ON o.{key} = n.{key}
     WHERE o.{key} IS NULL OR ROW(n.*) IS DISTINCT FROM ROW(o.*)
    UNION ALL
    -- a changed primary key: the old key is gone
    SELECT '{table}', o.{key}, 'D', {xid}, now()
      FROM sync_old o
     WHERE NOT EXISTS (SELECT 1 FROM sync_new n WHERE n.{key} = o.{key});
    RETURN NULL;
END $fn$;

CREATE OR REPLACE FUNCTION sync_track_{table}_del() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO sync_change (table_name, row_id, op, xid, created_at)
    SELECT '{table}', o.{key}, 'D', {xid}, now() FROM sync_old o;
    RETURN NULL;
END $fn$;

DROP TRIGGER IF EXISTS sync_track_ins ON {table};
DROP TRIGGER IF EXISTS sync_track_upd ON {table};
DROP TRIGGER IF EXISTS sync_track_del ON {table};
CREATE TRIGGER sync_track_ins AFTER INSERT ON {table}
    REFERENCING NEW TABLE AS sync_new
    FOR EACH STATEMENT EXECUTE FUNCTION sync_track_{table}_ins();
CREATE TRIGGER sync_track_upd AFTER UPDATE ON {table}
    REFERENCING OLD TABLE AS sync_old NEW TABLE AS sync_new
    FOR EACH STATEMENT EXECUTE FUNCTION sync_track_{table}_upd();
CREATE TRIGGER sync_track_del AFTER DELETE ON {table}
    REFERENCING OLD TABLE AS sync_old
    FOR EACH STATEMENT EXECUTE FUNCTION sync_track_{table}_del();
"""  # noqa: S608


def _sql_drop(table: str) -> str:
    # Table and key names come from TABLES above, never from input.
    return f"""
DROP TRIGGER IF EXISTS sync_track_ins ON {table};
DROP TRIGGER IF EXISTS sync_track_upd ON {table};
DROP TRIGGER IF EXISTS sync_track_del ON {table};
DROP FUNCTION IF EXISTS sync_track_{table}_ins();
DROP FUNCTION IF EXISTS sync_track_{table}_upd();
DROP FUNCTION IF EXISTS sync_track_{table}_del();
"""


def triggers_create(apps, schema_editor):
    for table, key in TABLES.items():
        schema_editor.execute(_sql_create(table, key))


def triggers_drop(apps, schema_editor):
    for table in TABLES:
        schema_editor.execute(_sql_drop(table))


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0001_initial"),
        ("agents", "0001_initial"),
        ("industries", "0002_seed_industries"),
    ]

    operations = [migrations.RunPython(triggers_create, triggers_drop)]
