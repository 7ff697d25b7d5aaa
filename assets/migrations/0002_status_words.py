"""AssetSyncRun's "queued" and "succeeded" become "pending" and "completed", the project's words for them."""

from django.db import migrations, models

RENAMED = {"queued": "pending", "succeeded": "completed"}


def _rename(mapping: dict[str, str]):
    def run(apps, schema_editor):
        runs = apps.get_model("assets", "AssetSyncRun").objects
        for old, new in mapping.items():
            runs.filter(status=old).update(status=new)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("assets", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="assetsyncrun",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("running", "Running"),
                    ("completed", "Completed"),
                    ("partial", "Partial"),
                    ("failed", "Failed"),
                    ("skipped", "Skipped"),
                ],
                default="pending",
                max_length=10,
            ),
        ),
        migrations.RunPython(_rename(RENAMED), _rename({new: old for old, new in RENAMED.items()})),
    ]
