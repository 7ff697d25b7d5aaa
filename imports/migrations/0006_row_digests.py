"""import_row_digests: per agent, the digest of the last file row an import applied (imports.digests);
import_chunks.record_index: where each record of a chunk starts, so a chunk reads rows one by one.

Written as SQL: Django would add a varchar_pattern_ops index to a CharField
primary key (for LIKE queries this table never runs), which every import
write would have to maintain. PostgreSQL only: no sync trigger is created
for this table (sync.migrations.0002 tracks agents and industry_config).
"""

from django.db import migrations, models

CREATE = """
CREATE TABLE import_row_digests (
    agent_id varchar(64) NOT NULL PRIMARY KEY,
    digest bytea NOT NULL,
    agent_xmin bigint NOT NULL,
    agent_updated_at timestamp with time zone NOT NULL,
    by_licence boolean NOT NULL DEFAULT false,
    warnings jsonb NULL
);
CREATE INDEX import_row_digests_digest ON import_row_digests (digest);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("imports", "0005_shared_storage"),
    ]

    operations = [
        migrations.AddField(
            model_name="importchunk",
            name="record_index",
            field=models.BinaryField(blank=True, default=b""),
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(CREATE, reverse_sql="DROP TABLE import_row_digests")],
            state_operations=[
                migrations.CreateModel(
                    name="ImportRowDigest",
                    fields=[
                        ("agent_id", models.CharField(max_length=64, primary_key=True, serialize=False)),
                        ("digest", models.BinaryField(db_index=True, max_length=16)),
                        ("agent_xmin", models.BigIntegerField()),
                        ("agent_updated_at", models.DateTimeField()),
                        ("by_licence", models.BooleanField(default=False)),
                        ("warnings", models.JSONField(blank=True, null=True)),
                    ],
                    options={"db_table": "import_row_digests"},
                ),
            ],
        ),
    ]
