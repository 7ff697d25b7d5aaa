"""SyncRun.kind loses "compare": it named the SQLite fallback's sync, gone with PostgreSQL-only."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0003_adoption_safety"),
    ]

    operations = [
        migrations.AlterField(
            model_name="syncrun",
            name="kind",
            field=models.CharField(
                choices=[
                    ("incremental", "Incremental"),
                    ("full", "Full"),
                    ("repair", "Repair"),
                    ("benchmark", "benchmark (scratch engine)"),
                    ("pull", "D1 pull (adopt D1 rows)"),
                ],
                default="incremental",
                max_length=16,
            ),
        ),
    ]
