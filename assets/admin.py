"""Records written by the asset push only: staff look, they do not edit."""

from django.contrib import admin

from estateflow.admin_site import ReadOnlyAdmin

from .models import AssetObject, AssetSyncRun


@admin.register(AssetSyncRun)
class AssetSyncRunAdmin(ReadOnlyAdmin):
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
class AssetObjectAdmin(ReadOnlyAdmin):
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
