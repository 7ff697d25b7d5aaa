"""Mixins for ModelAdmins: audit every admin write with a per-field diff."""

from __future__ import annotations

from .models import AuditEvent
from .services import audit_diff, audit_record, audit_record_many, audit_snapshot, audit_snapshot_stored


class AuditedAdminMixin:
    """Put before admin.ModelAdmin: save_model / delete_model / delete_queryset write AuditEvents.

    The admin runs these inside its transaction, so an edit and its audit row
    commit or roll back together.
    """

    def save_model(self, request, obj, form, change):
        before = audit_snapshot_stored(type(obj), obj.pk) if change else {}
        super().save_model(request, obj, form, change)
        changes = audit_diff(before, audit_snapshot(obj))
        if change and not changes:
            return
        action = AuditEvent.Action.UPDATE if change else AuditEvent.Action.CREATE
        audit_record(actor=request.user, action=action, obj=obj, changes=changes)

    def delete_model(self, request, obj):
        pk, before = obj.pk, audit_snapshot(obj)
        super().delete_model(request, obj)
        audit_record(
            actor=request.user,
            action=AuditEvent.Action.DELETE,
            obj=obj,
            changes=audit_diff(before, {}),
            object_id=pk,
        )

    def delete_queryset(self, request, queryset):
        items = [(obj, audit_diff(audit_snapshot(obj), {}), obj.pk) for obj in queryset]
        super().delete_queryset(request, queryset)
        audit_record_many(actor=request.user, action=AuditEvent.Action.DELETE, items=items)
