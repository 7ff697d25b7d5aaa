# ZIP imports: a data file (.csv/.xlsx/.json) plus the photos its `photo` column names.
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("imports", "0001_initial")]

    operations = [
        migrations.AlterField(
            model_name="importjob",
            name="format",
            field=models.CharField(
                choices=[
                    ("csv", "CSV"),
                    ("xlsx", "Excel (XLSX)"),
                    ("json", "JSON (array of objects)"),
                    ("zip", "ZIP (a data file plus photos)"),
                ],
                max_length=10,
            ),
        ),
    ]
