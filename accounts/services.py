"""Writes for accounts: audit events with a per-field diff, users in a role."""

from __future__ import annotations

import json
from collections.abc import Iterable

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.fields.files import FieldFile

from .models import AuditEvent
from .roles import ROLES

# Bookkeeping columns every save rewrites: not a change anyone made.
AUDIT_IGNORED_FIELDS = frozenset({"updated_at"})


def _jsonable(value: object) -> object:
    if isinstance(value, FieldFile):
        return value.name or None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def audit_snapshot(obj: models.Model) -> dict[str, object]:
    """{field name: JSON-safe value} of the object's concrete fields as they are in memory."""
    return {
        field.name: _jsonable(getattr(obj, field.attname))
        for field in obj._meta.concrete_fields
        if field.name not in AUDIT_IGNORED_FIELDS
    }


def audit_snapshot_stored(model: type[models.Model], pk: object) -> dict[str, object]:
    """The snapshot of the row as stored (before an edit), or {} when there is none."""
    obj = model._default_manager.filter(pk=pk).first()
    return audit_snapshot(obj) if obj is not None else {}


def audit_diff(before: dict[str, object], after: dict[str, object]) -> dict[str, list[object]]:
    keys = list(after) + [k for k in before if k not in after]
    return {k: [before.get(k), after.get(k)] for k in keys if before.get(k) != after.get(k)}


def audit_object_type(obj_or_model) -> str:
    return obj_or_model._meta.label_lower


def audit_record(
    *, actor, action: str, obj: models.Model, changes: dict[str, list[object]], object_id: object = None
) -> AuditEvent:
    return AuditEvent.objects.create(**_event_kwargs(actor, action, obj, changes, object_id))


def audit_record_many(*, actor, action: str, items: Iterable[tuple[models.Model, dict, object]]) -> int:
    events = [AuditEvent(**_event_kwargs(actor, action, obj, changes, pk)) for obj, changes, pk in items]
    AuditEvent.objects.bulk_create(events, batch_size=500)
    return len(events)


def _event_kwargs(actor, action, obj, changes, object_id) -> dict:
    authenticated = actor is not None and getattr(actor, "is_authenticated", False)
    return {
        "actor": actor if authenticated else None,
        "actor_name": actor.get_username() if authenticated else "",
        "action": action,
        "object_type": audit_object_type(obj),
        "object_id": str(object_id if object_id is not None else obj.pk),
        "object_repr": str(obj)[:200],
        "changes": changes,
    }


def user_create_in_role(*, username: str, role: str, password: str | None, email: str = ""):
    """A staff user (not superuser) whose only permissions come from the role's group."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    group = Group.objects.filter(name=role).first()
    if group is None:
        raise LookupError(f"group {role!r} does not exist; run migrate")
    user_model = get_user_model()
    user = user_model.objects.create_user(username=username, email=email, password=password)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.groups.add(group)
    return user
