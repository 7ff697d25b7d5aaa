from django.contrib import admin

from .models import AssetObject, AssetSyncRun


class _ReadOnlyAdmin(admin.ModelAdmin):
    """Records written by the push only; staff look, they do not edit."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AssetSyncRun)
class AssetSyncRunAdmin(_ReadOnlyAdmin):
    list_display = (
        "id",
        "status",
        "dry_run",
        "reason",
        "started_at",
        "duration_seconds",
        "objects_put",
        "objects_skipped",
        "objects_orphaned",
        "objects_deleted",
        "bytes_put",
        "agents_failed",
    )
    list_filter = ("status", "dry_run")
    date_hierarchy = "created_at"


@admin.register(AssetObject)
class AssetObjectAdmin(_ReadOnlyAdmin):
    list_display = (
        "key",
        "agent_id",
        "kind",
        "size",
        "content_type",
        "uploaded_at",
        "orphaned_at",
        "deleted_at",
    )
    list_filter = ("kind",)
    search_fields = ("=agent_id", "key")
