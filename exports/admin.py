from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponseRedirect, JsonResponse, QueryDict
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html

from accounts.roles import CONTACTS_EXPORT_PERMISSION
from estateflow.admin_site import ReadOnlyAdmin
from estateflow.storage import shared_storage

from .formats import FORMATS
from .models import ExportJob
from .selectors import export_download_name, export_job_progress
from .services import EXPORT_PERMISSION, export_download_record

# A signed link to a bucket's file stays valid this long: enough to start the download.
SIGNED_URL_SECONDS = 300


@admin.register(ExportJob)
class ExportJobAdmin(ReadOnlyAdmin):
    list_display = ("id", "format", "status_badge", "direct", "total_rows", "exported_rows", "file_size",
                    "created_by", "created_at")  # fmt: skip
    list_filter = ("status", "format", "direct")
    list_select_related = ("created_by",)

    # Who may export agents follows exports, theirs and their colleagues' (no role holds
    # exports.view_exportjob); the file itself needs the contacts permission when it holds contacts.
    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(EXPORT_PERMISSION) or super().has_view_permission(request, obj)

    def has_module_permission(self, request) -> bool:
        return self.has_view_permission(request)

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return format_html(
            '<span class="ef-status ef-status-{}">{}</span>', obj.status, obj.get_status_display()
        )

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:job_id>/progress.json", wrap(self.progress_view), name="exports_exportjob_progress"),
            path("<int:job_id>/download/", wrap(self.download_view), name="exports_exportjob_download"),
            *super().get_urls(),
        ]

    def _job_or_404(self, request, job_id: int | str) -> ExportJob:
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            pk = int(job_id)
        except (TypeError, ValueError):
            raise Http404("No export job with that id.") from None
        return get_object_or_404(ExportJob, pk=pk)

    def _may_download(self, request, job: ExportJob) -> bool:
        return not job.contains_contacts or request.user.has_perm(CONTACTS_EXPORT_PERMISSION)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self._job_or_404(request, object_id)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "job": job,
            "title": f"Export #{job.pk}: agents as {job.get_format_display()}",
            "progress": export_job_progress(job=job),
            "filters": _query_pairs(job.query_string),
            "may_download": self._may_download(request, job),
            "retention_days": settings.EXPORT_RETENTION_DAYS,
            "chunks": job.chunks.order_by("index")[:500],
        }
        return TemplateResponse(request, "admin/exports/exportjob/job.html", context)

    def progress_view(self, request, job_id: int):
        job = self._job_or_404(request, job_id)
        return JsonResponse(export_job_progress(job=job).as_dict())

    def download_view(self, request, job_id: int):
        """The export's file: streamed from the shared storage, or a short-lived signed link to the bucket."""
        job = self._job_or_404(request, job_id)
        if not self._may_download(request, job):
            raise PermissionDenied
        if job.status != ExportJob.Status.COMPLETED or not job.file:
            raise Http404("This export has no file to download.")
        export_download_record(user=request.user, job=job)
        storage = shared_storage()
        filename = export_download_name(job=job)
        if getattr(storage, "bucket", None) is not None:
            # A bucket serves the bytes itself (private object, signed and expiring link).
            url = storage.url(
                job.file,
                parameters={"ResponseContentDisposition": f'attachment; filename="{filename}"'},
                expire=SIGNED_URL_SECONDS,
            )
            return HttpResponseRedirect(url)
        return FileResponse(
            storage.open(job.file, "rb"),
            as_attachment=True,
            filename=filename,
            content_type=FORMATS[job.format].content_type,
        )


def _query_pairs(query_string: str) -> list[tuple[str, str]]:
    return [(key, value) for key, values in QueryDict(query_string).lists() for value in values]
