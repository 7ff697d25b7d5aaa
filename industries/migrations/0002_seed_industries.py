from django.db import migrations

from industries.seed import INDUSTRIES, industries_upsert


def industries_seed(apps, schema_editor):
    industries_upsert(apps.get_model("industries", "IndustryConfig"))


def industries_unseed(apps, schema_editor):
    IndustryConfig = apps.get_model("industries", "IndustryConfig")
    IndustryConfig.objects.filter(industry__in=[row["industry"] for row in INDUSTRIES]).delete()


class Migration(migrations.Migration):
    dependencies = [("industries", "0001_initial")]

    operations = [migrations.RunPython(industries_seed, industries_unseed)]
