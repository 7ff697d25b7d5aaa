"""The staff roles as groups: Viewer, Editor, Importer, Operator (accounts.roles).

Permissions are normally created by the post_migrate signal, after every
migration has run; this migration creates them first for the apps it needs
so that the groups can be filled in the same `migrate`.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

APPS = ("auth", "contenttypes", "agents", "industries", "imports", "sync", "assets", "accounts")


def roles_create(apps, schema_editor):
    from accounts.roles import roles_apply

    for label in APPS:
        app_config = apps.get_app_config(label)
        app_config.models_module = True  # historical app configs have none; create_permissions skips those
        create_permissions(app_config, verbosity=0, apps=apps, using=schema_editor.connection.alias)
        app_config.models_module = None
    roles_apply(
        group_model=apps.get_model("auth", "Group"), permission_model=apps.get_model("auth", "Permission")
    )


def roles_delete(apps, schema_editor):
    from accounts.roles import ROLES

    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLES)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("agents", "0004_export_contacts_permission"),
        ("industries", "0002_seed_industries"),
        ("imports", "0001_initial"),
        ("sync", "0002_change_tracking_triggers"),
        ("assets", "0001_initial"),
    ]

    operations = [migrations.RunPython(roles_create, roles_delete)]
