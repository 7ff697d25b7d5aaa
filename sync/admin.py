"""Admin for the D1 sync: run history with a status panel, "Sync now" and "Verify now"; the beat schedules."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.timesince import timeuntil
from django.views.decorators.http import require_POST

from accounts.admin_mixins import AuditedAdminMixin
from estateflow.admin_site import ReadOnlyAdmin

from .d1_client import d1_target_describe
from .models import Schedule, SyncRun, VerifyRun
from .scheduler import SCHEDULE_POLL_SECONDS
from .selectors import (
    sync_pending_changes_count,
    sync_run_last,
    sync_run_last_restore_point,
    sync_state_get,
    verify_run_last,
)
from .services import schedules_enabled_set
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


class _FormFieldsOnlyAdmin(admin.ModelAdmin):
    def save_model(self, request, obj, form, change):
        if not change:
            return super().save_model(request, obj, form, change)
        # Beat writes last_sent_at at any moment: saving the whole row could put back an older one,
        # and the schedule would be sent again.
        obj.save(update_fields=[*form.changed_data, "updated_at"])


@admin.register(Schedule)
class ScheduleAdmin(AuditedAdminMixin, _FormFieldsOnlyAdmin):
    """Pause, resume and re-time the D1 and R2 schedules: needs sync.change_schedule; audited.

    The rows are fixed (one per sync.schedules.SCHEDULES entry), so nobody adds or deletes them.
    """

    list_display = ("__str__", "enabled", "interval", "last_sent_at", "next_due")
    list_display_links = ("__str__",)
    fields = ("task", "enabled", "interval_seconds", "interval_default_shown", "last_sent_at", "next_due")
    readonly_fields = ("task", "interval_default_shown", "last_sent_at", "next_due")
    actions = ("schedules_pause", "schedules_resume")

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description="task")
    def task(self, obj: Schedule) -> str:
        return obj.spec.task if obj.spec else "-"

    @admin.display(description="interval")
    def interval(self, obj: Schedule) -> str:
        seconds = obj.interval_effective
        if seconds is None:
            return "-"
        return f"{seconds} s" + (" (default)" if obj.interval_seconds is None else "")

    @admin.display(description="default interval")
    def interval_default_shown(self, obj: Schedule) -> str:
        if obj.spec is None:
            return "-"
        return f"{obj.interval_default} s ({obj.spec.interval_setting})"

    @admin.display(description="next due")
    def next_due(self, obj: Schedule) -> str:
        if not obj.enabled:
            return "paused"
        due = obj.next_due_at
        if due is None or due <= timezone.now():
            return f"at beat's next check (every {SCHEDULE_POLL_SECONDS:g} s)"
        return f"in {timeuntil(due)}"

    @admin.action(description="Pause selected schedules", permissions=["change"])
    def schedules_pause(self, request: HttpRequest, queryset) -> None:
        changed = schedules_enabled_set(schedules=queryset, enabled=False, actor=request.user)
        messages.success(
            request,
            f"{changed} schedule(s) paused: beat stops sending within {SCHEDULE_POLL_SECONDS:g} s; "
            "a run already going finishes.",
        )

    @admin.action(description="Resume selected schedules", permissions=["change"])
    def schedules_resume(self, request: HttpRequest, queryset) -> None:
        changed = schedules_enabled_set(schedules=queryset, enabled=True, actor=request.user)
        messages.success(
            request,
            f"{changed} schedule(s) resumed: a schedule past its time runs within {SCHEDULE_POLL_SECONDS:g} s.",
        )
