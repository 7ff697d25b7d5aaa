from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0003_trigram_indexes"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="agent",
            options={
                "ordering": ["name", "id"],
                "permissions": [
                    ("import_agent", "Can import agents"),
                    ("export_agent", "Can export agents"),
                    ("export_contacts_agent", "Can export agent contact details"),
                ],
            },
        ),
    ]
