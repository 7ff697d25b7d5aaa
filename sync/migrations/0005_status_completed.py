"""SyncRun's "success" becomes "completed", the word imports and the asset push use for the same idea."""

from django.db import migrations, models


def _rename(old: str, new: str):
    def run(apps, schema_editor):
        apps.get_model("sync", "SyncRun").objects.filter(status=old).update(status=new)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0004_drop_compare_kind"),
    ]

    operations = [
        migrations.AlterField(
            model_name="syncrun",
            name="status",
            field=models.CharField(
                choices=[
                    ("running", "Running"),
                    ("completed", "Completed"),
                    ("partial", "partial (rows skipped)"),
                    ("failed", "Failed"),
                    ("dry_run", "dry run"),
                    ("skipped", "skipped (another sync running)"),
                    ("refused", "refused (would lose D1 data)"),
                ],
                default="running",
                max_length=16,
            ),
        ),
        migrations.RunPython(_rename("success", "completed"), _rename("completed", "success")),
    ]
