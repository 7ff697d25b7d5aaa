"""The roles gain the schedules: every role may see them, the Operator may pause, resume and re-time them.

Frozen here, like accounts/0002_roles (accounts.roles has the same lists for `roles_apply`);
a group that no longer exists is left alone.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ADDED = {
    "Viewer": ("view_schedule",),
    "Editor": ("view_schedule",),
    "Importer": ("view_schedule",),
    "Operator": ("view_schedule", "change_schedule"),
}


def _permissions(apps, schema_editor) -> dict:
    # Permissions are normally created after the whole migrate; the groups need them now.
    app_config = apps.get_app_config("sync")
    app_config.models_module = True
    create_permissions(app_config, verbosity=0, apps=apps, using=schema_editor.connection.alias)
    app_config.models_module = None
    permission_model = apps.get_model("auth", "Permission")
    codenames = {c for perms in ADDED.values() for c in perms}
    return {
        p.codename: p
        for p in permission_model.objects.filter(content_type__app_label="sync", codename__in=codenames)
    }


def roles_grant(apps, schema_editor):
    perms = _permissions(apps, schema_editor)
    for group in apps.get_model("auth", "Group").objects.filter(name__in=list(ADDED)):
        group.permissions.add(*(perms[c] for c in ADDED[group.name]))


def roles_revoke(apps, schema_editor):
    perms = _permissions(apps, schema_editor)
    for group in apps.get_model("auth", "Group").objects.filter(name__in=list(ADDED)):
        group.permissions.remove(*(perms[c] for c in ADDED[group.name]))


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0006_schedule"),
        ("accounts", "0002_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(roles_grant, roles_revoke)]
