"""Admin for the D1 sync: run history with a status panel, "Sync now" and "Verify now"."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from estateflow.admin_site import ReadOnlyAdmin

from .d1_client import d1_target_describe
from .models import SyncRun, VerifyRun
from .selectors import (
    sync_pending_changes_count,
    sync_run_last,
    sync_run_last_restore_point,
    sync_state_get,
    verify_run_last,
)
from .tasks import d1_sync_run_task, d1_verify_task

RUN_PERMISSION = "sync.run_sync"


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    change_list_template = "admin/sync/syncrun/change_list.html"
    list_display = (
        "id",
        "kind",
        "status",
        "started_at",
        "duration_seconds",
        "rows_upserted",
        "rows_deleted",
        "rows_failed",
        "requests",
        "retries",
        "bytes_sent",
        "restore_point",
        "reason",
    )
    list_filter = ("status", "kind")
    readonly_fields = [f.name for f in SyncRun._meta.fields]

    @admin.display(description="restore point")
    def restore_point(self, obj: SyncRun) -> str:
        return obj.bookmark or "-"

    def get_urls(self):
        urls = [
            path("sync-now/", self.admin_site.admin_view(self.sync_now_view), name="sync_syncrun_sync_now"),
            path(
                "verify-now/",
                self.admin_site.admin_view(self.verify_now_view),
                name="sync_syncrun_verify_now",
            ),
        ]
        return urls + super().get_urls()

    def changelist_view(self, request: HttpRequest, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "sync_target": d1_target_describe(),
            "sync_last_run": sync_run_last(),
            "sync_state": sync_state_get(),
            "sync_pending": sync_pending_changes_count(),
            "sync_last_verify": verify_run_last(),
            "sync_last_restore_point": sync_run_last_restore_point(),
            "sync_can_run": request.user.has_perm(RUN_PERMISSION),
        }
        return super().changelist_view(request, extra_context)

    @staticmethod
    def _require(request: HttpRequest) -> None:
        if not request.user.has_perm(RUN_PERMISSION):
            raise PermissionDenied

    @staticmethod
    def _back() -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:sync_syncrun_changelist"))

    @staticmethod
    def _enqueue(request: HttpRequest, task, label: str, **kwargs) -> None:
        # A worker takes it (tests run tasks eagerly, right here).
        task.delay(**kwargs)
        messages.success(request, f"{label} requested. Refresh this page to follow it.")

    def sync_now_view(self, request: HttpRequest):
        return require_POST(self._sync_now)(request)

    def _sync_now(self, request: HttpRequest):
        self._require(request)
        self._enqueue(request, d1_sync_run_task, "Sync", reason=f"admin: {request.user.get_username()}"[:200])
        return self._back()

    def verify_now_view(self, request: HttpRequest):
        return require_POST(self._verify_now)(request)

    def _verify_now(self, request: HttpRequest):
        self._require(request)
        self._enqueue(request, d1_verify_task, "Verification")
        return self._back()


@admin.register(VerifyRun)
class VerifyRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "started_at", "clean", "repaired", "ranges_checked", "rows_repaired", "error")
    list_filter = ("clean",)
    readonly_fields = [f.name for f in VerifyRun._meta.fields]
