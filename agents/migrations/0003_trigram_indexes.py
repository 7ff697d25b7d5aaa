"""Indexes that keep the agent admin fast at 500,000 rows.

* A b-tree on (name, id): the changelist's default order (Meta.ordering), so a
  page is an index range scan, not a sort of the whole table.
* GIN trigram indexes (pg_trgm) for the admin search fields. Django's
  `icontains` on PostgreSQL compiles to `UPPER("col"::text) LIKE UPPER('%term%')`,
  so the indexes are on that exact expression; an OR over the five fields
  becomes a BitmapOr of five index scans.

The trigram indexes stay out of Django's model state (Meta.indexes): Django
cannot express an index on UPPER(col) with gin_trgm_ops.
"""

from django.db import migrations, models

TRIGRAM_FIELDS = ("name", "email", "license_number", "brokerage", "city")


def _index_name(field: str) -> str:
    return f"idx_agents_trgm_{field}"


def trigram_indexes_create(apps, schema_editor) -> None:
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for field in TRIGRAM_FIELDS:
        # Field names come from TRIGRAM_FIELDS above, never from input.
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {_index_name(field)} ON agents "
            f"USING gin ((UPPER({field}::text)) gin_trgm_ops)"
        )


def trigram_indexes_drop(apps, schema_editor) -> None:
    for field in TRIGRAM_FIELDS:
        schema_editor.execute(f"DROP INDEX IF EXISTS {_index_name(field)}")


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0002_alter_agent_options"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="agent",
            index=models.Index(fields=["name", "id"], name="idx_agents_name_id"),
        ),
        migrations.RunPython(trigram_indexes_create, trigram_indexes_drop, elidable=False),
    ]
