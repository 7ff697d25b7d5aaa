"""The staff roles, as Django groups of permissions.

A role is a group; a user gets a role by joining the group (`manage.py
create_role_user`). The data migration accounts/0002_roles created the
groups from its own frozen copy of these lists; a change here needs a new
data migration (with its own frozen list) so existing databases follow.
`roles_apply` is idempotent and resets each group to exactly these permissions.
"""

from __future__ import annotations

VIEWER: tuple[str, ...] = (
    "agents.view_agent",
    "industries.view_industryconfig",
    "imports.view_importjob",
    "sync.view_syncrun",
    "sync.view_verifyrun",
    "sync.view_schedule",
    "assets.view_assetsyncrun",
    "assets.view_assetobject",
    "accounts.view_auditevent",
)

ROLES: dict[str, tuple[str, ...]] = {
    # Read only: every list and page, no change, no export, no job.
    "Viewer": VIEWER,
    # Agents and industries.
    "Editor": (
        *VIEWER,
        "agents.add_agent",
        "agents.change_agent",
        "agents.delete_agent",
        "agents.export_agent",
        "industries.add_industryconfig",
        "industries.change_industryconfig",
        "industries.delete_industryconfig",
    ),
    # Imports.
    "Importer": (*VIEWER, "imports.run_import", "agents.import_agent"),
    # Sync (runs and their schedules: sync/migrations/0007_schedule_roles) and rollback.
    "Operator": (*VIEWER, "sync.run_sync", "sync.change_schedule", "imports.rollback_import"),
}
# Granted to no role on purpose: give it to named users (emails and phones in exports).
CONTACTS_EXPORT_PERMISSION = "agents.export_contacts_agent"


def roles_apply(*, group_model=None, permission_model=None) -> dict[str, int]:
    """Create or reset every role group; returns {role: number of permissions}.

    Takes the models so a data migration can pass its historical ones.
    """
    if group_model is None or permission_model is None:
        from django.contrib.auth.models import Group, Permission

        group_model, permission_model = Group, Permission
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
    out = {}
    for name, perms in ROLES.items():
        group, _ = group_model.objects.get_or_create(name=name)
        group.permissions.set([found[p] for p in perms])
        out[name] = len(perms)
    return out
