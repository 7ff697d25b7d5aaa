"""The staff roles as groups: Viewer, Editor, Importer, Operator, as they were when this migration was written.

The permission lists are frozen here, not imported from accounts.roles:
a role that gains a permission later (from a later app migration) must not
make this migration look for a permission that does not exist yet on a
fresh database. A later change to the roles is a later data migration (or
`roles_apply`, which resets the groups to accounts.roles).

Permissions are normally created by the post_migrate signal, after every
migration has run; this migration creates them first for the apps it needs
so that the groups can be filled in the same `migrate`.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

APPS = ("auth", "contenttypes", "agents", "industries", "imports", "sync", "assets", "accounts")

_VIEWER = (
    "agents.view_agent",
    "industries.view_industryconfig",
    "imports.view_importjob",
    "sync.view_syncrun",
    "sync.view_verifyrun",
    "assets.view_assetsyncrun",
    "assets.view_assetobject",
    "accounts.view_auditevent",
)
ROLES = {
    "Viewer": _VIEWER,
    "Editor": (
        *_VIEWER,
        "agents.add_agent",
        "agents.change_agent",
        "agents.delete_agent",
        "agents.export_agent",
        "industries.add_industryconfig",
        "industries.change_industryconfig",
        "industries.delete_industryconfig",
    ),
    "Importer": (*_VIEWER, "imports.run_import", "agents.import_agent"),
    "Operator": (*_VIEWER, "sync.run_sync", "imports.rollback_import"),
}


def roles_create(apps, schema_editor):
    for label in APPS:
        app_config = apps.get_app_config(label)
        app_config.models_module = True  # historical app configs have none; create_permissions skips those
        create_permissions(app_config, verbosity=0, apps=apps, using=schema_editor.connection.alias)
        app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    wanted = {perm for perms in ROLES.values() for perm in perms}
    found = {
        f"{app_label}.{codename}": pk
        for pk, app_label, codename in permission_model.objects.values_list(
            "pk", "content_type__app_label", "codename"
        )
        if f"{app_label}.{codename}" in wanted
    }
    missing = sorted(wanted - found.keys())
    if missing:
        raise LookupError(f"permissions missing (migrate the other apps first): {', '.join(missing)}")
    for name, perms in ROLES.items():
        group, _ = group_model.objects.get_or_create(name=name)
        group.permissions.set([found[p] for p in perms])


def roles_delete(apps, schema_editor):
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
