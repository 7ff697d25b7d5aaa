from django.db import migrations

from industries.seed import INDUSTRIES


def industries_seed(apps, schema_editor):
    IndustryConfig = apps.get_model("industries", "IndustryConfig")
    for row in INDUSTRIES:
        values = {key: value for key, value in row.items() if key != "industry"}
        IndustryConfig.objects.update_or_create(industry=row["industry"], defaults=values)


def industries_unseed(apps, schema_editor):
    IndustryConfig = apps.get_model("industries", "IndustryConfig")
    IndustryConfig.objects.filter(industry__in=[row["industry"] for row in INDUSTRIES]).delete()


class Migration(migrations.Migration):
    dependencies = [("industries", "0001_initial")]

    operations = [migrations.RunPython(industries_seed, industries_unseed)]
