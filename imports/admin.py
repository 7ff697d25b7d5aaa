from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from estateflow.admin_site import ReadOnlyAdmin

from .forms import ImportStartForm
from .models import ImportJob, ImportRowError
from .rollback import ROLLBACKABLE, RollbackRefused, import_rollback_request, import_rollback_resume
from .selectors import (
    import_job_error_count,
    import_job_errors,
    import_job_progress,
    import_rejected_rows_csv,
    import_rollback_latest,
    import_rollback_preview,
)
from .services import ImportRequestError, import_job_cancel, import_job_create, import_job_resume

RUN_IMPORT = "imports.run_import"
ROLLBACK_IMPORT = "imports.rollback_import"


@admin.register(ImportJob)
class ImportJobAdmin(ReadOnlyAdmin):
    list_display = ("id", "original_name", "source", "status_badge", "mode", "dry_run", "total_rows",
                    "created_rows", "updated_rows", "unchanged_rows", "failed_rows", "warned_rows",
                    "created_by", "created_at")  # fmt: skip
    list_filter = ("status", "source", "mode", "dry_run", "format")
    search_fields = ("original_name",)
    list_select_related = ("created_by",)
    change_list_template = "admin/imports/importjob/change_list.html"
    # Read only: jobs start from the import page, and deleting one would drop the journal its
    # rollback needs (the permission matrix gives nobody delete).
    actions = ["rollback_selected"]

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return format_html(
            '<span class="ef-status ef-status-{}">{}</span>', obj.status, obj.get_status_display()
        )

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("start/", wrap(self.start_view), name="imports_importjob_start"),
            path("<int:job_id>/progress.json", wrap(self.progress_view), name="imports_importjob_progress"),
            path(
                "<int:job_id>/cancel/", wrap(require_POST(self.cancel_view)), name="imports_importjob_cancel"
            ),
            path(
                "<int:job_id>/resume/", wrap(require_POST(self.resume_view)), name="imports_importjob_resume"
            ),
            path("<int:job_id>/rejected.csv", wrap(self.rejected_view), name="imports_importjob_rejected"),
            path("<int:job_id>/warnings.csv", wrap(self.warnings_view), name="imports_importjob_warnings"),
            path("<int:job_id>/rollback/", wrap(self.rollback_view), name="imports_importjob_rollback"),
            *super().get_urls(),
        ]

    def _job_or_404(self, request, job_id: int | str) -> ImportJob:
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            pk = int(job_id)
        except (TypeError, ValueError):
            # change_view gets the raw URL text (admin's catch-all redirects "abc/progress.json/" here).
            raise Http404("No import job with that id.") from None
        return get_object_or_404(ImportJob, pk=pk)

    def start_view(self, request):
        if not request.user.has_perm(RUN_IMPORT):
            raise PermissionDenied
        form = ImportStartForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                job = import_job_create(
                    file=data["file"],
                    original_name=data["file"].name,
                    file_format=data["file_format"] or None,
                    mode=data["mode"],
                    dry_run=data["dry_run"],
                    chunk_size=data["chunk_size"],
                    encoding=data["encoding"],
                    user=request.user,
                )
            except ImportRequestError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Import job {job.pk} started for {job.original_name}.")
                return redirect("admin:imports_importjob_change", job.pk)
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "form": form,
                   "title": "Import agents"}  # fmt: skip
        return TemplateResponse(request, "admin/imports/importjob/start.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self._job_or_404(request, object_id)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "job": job,
            "title": f"Import #{job.pk}: {job.original_name}",
            "progress": import_job_progress(job=job),
            "errors": import_job_errors(job=job, limit=100),
            "error_count": import_job_error_count(job=job),
            "row_warnings": import_job_errors(job=job, limit=100, severity=ImportRowError.Severity.WARNING),
            "warning_count": import_job_error_count(job=job, severity=ImportRowError.Severity.WARNING),
            "can_run": request.user.has_perm(RUN_IMPORT),
            "can_rollback": request.user.has_perm(ROLLBACK_IMPORT)
            and job.status in ROLLBACKABLE
            and not job.dry_run,
            "rollback": import_rollback_latest(job=job),
            "chunks": job.chunks.order_by("index")[:500],
        }
        return TemplateResponse(request, "admin/imports/importjob/job.html", context)

    def progress_view(self, request, job_id: int):
        job = self._job_or_404(request, job_id)
        return JsonResponse(
            {**import_job_progress(job=job).as_dict(), "rollback": import_rollback_latest(job=job)}
        )

    def cancel_view(self, request, job_id: int):
        if not request.user.has_perm(RUN_IMPORT):
            raise PermissionDenied
        self._job_or_404(request, job_id)
        if import_job_cancel(job_id=job_id):
            messages.success(request, f"Import job {job_id} cancelled.")
        else:
            messages.warning(request, f"Import job {job_id} has already ended.")
        return redirect("admin:imports_importjob_change", job_id)

    def resume_view(self, request, job_id: int):
        if not request.user.has_perm(RUN_IMPORT):
            raise PermissionDenied
        job = self._job_or_404(request, job_id)
        if job.status not in (ImportJob.Status.CANCELLED, ImportJob.Status.FAILED, ImportJob.Status.RUNNING):
            messages.warning(request, f"Import job {job_id} is {job.status}; nothing to resume.")
        else:
            indexes = import_job_resume(job_id=job_id)
            messages.success(request, f"Import job {job_id} resumed ({len(indexes)} chunk(s) queued).")
        return redirect("admin:imports_importjob_change", job_id)

    def rejected_view(self, request, job_id: int):
        return self._rows_csv_response(request, job_id, severity=ImportRowError.Severity.ERROR)

    def warnings_view(self, request, job_id: int):
        return self._rows_csv_response(request, job_id, severity=ImportRowError.Severity.WARNING)

    def _rows_csv_response(self, request, job_id: int, *, severity: str):
        """The rejected rows (severity error) or the warned rows (warning) as CSV: one path for both."""
        job = self._job_or_404(request, job_id)
        if not job.header:
            raise Http404("This job has no rows.")
        response = StreamingHttpResponse(
            import_rejected_rows_csv(job=job, severity=severity), content_type="text/csv; charset=utf-8"
        )
        name = "rejected" if severity == ImportRowError.Severity.ERROR else "warnings"
        response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-{name}.csv"'
        return response

    def rollback_view(self, request, job_id: int):
        """GET: what a rollback would do and the rows changed since; POST: start it (force to overwrite)."""
        if not request.user.has_perm(ROLLBACK_IMPORT):
            raise PermissionDenied
        job = self._job_or_404(request, job_id)
        if request.method == "POST":
            latest = job.rollbacks.order_by("-created_at").first()
            if request.POST.get("resume") and latest:
                import_rollback_resume(rollback_id=latest.pk)
                messages.success(request, f"Rollback of import {job.pk} resumed.")
                return redirect("admin:imports_importjob_change", job.pk)
            try:
                rollback = import_rollback_request(
                    job_id=job.pk, force=bool(request.POST.get("force")), user=request.user
                )
            except RollbackRefused as exc:
                messages.error(request, str(exc))
                return redirect("admin:imports_importjob_change", job.pk)
            if rollback.status == "refused":
                messages.error(request, rollback.error_message)
                return redirect("admin:imports_importjob_rollback", job.pk)
            messages.success(request, f"Rollback of import {job.pk} started.")
            return redirect("admin:imports_importjob_change", job.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "job": job,
            "title": f"Roll back import #{job.pk}?",
            "rollbackable": job.status in ROLLBACKABLE and not job.dry_run,
            "preview": import_rollback_preview(job=job),
        }
        return TemplateResponse(request, "admin/imports/importjob/rollback.html", context)

    @admin.action(description="Roll back the selected import", permissions=["rollback"])
    def rollback_selected(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one import to roll back.", messages.WARNING)
            return None
        return redirect("admin:imports_importjob_rollback", queryset.get().pk)

    def has_rollback_permission(self, request):
        return request.user.has_perm(ROLLBACK_IMPORT)

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_run": request.user.has_perm(RUN_IMPORT),
                         "start_url": reverse("admin:imports_importjob_start")}  # fmt: skip
        return super().changelist_view(request, extra_context)
