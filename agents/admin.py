from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from import_export.admin import ExportMixin
from import_export.formats.base_formats import CSV, JSON, XLSX

from accounts.admin_mixins import AuditedAdminMixin
from assets.forms import AgentPhotoAdminForm
from exports.formats import FORMATS
from exports.selectors import export_download_name
from exports.services import ExportRequestError, export_request

from .changelist import LargeTableAdminMixin
from .models import Agent
from .resources import AgentResource, agent_export_resource_for
from .selectors import agent_warnings, agents_with_licence_format


class LicenceFormatFilter(admin.SimpleListFilter):
    """Licences that do or do not match their industry's official pattern (computed in SQL)."""

    title = "licence format"
    parameter_name = "licence_format"

    def lookups(self, request, model_admin):
        return [("recognised", "Recognised"), ("unrecognised", "Not recognised")]

    def queryset(self, request, queryset):
        if self.value() in ("recognised", "unrecognised"):
            return agents_with_licence_format(queryset, recognised=self.value() == "recognised")
        return queryset


@admin.register(Agent)
class AgentAdmin(AuditedAdminMixin, LargeTableAdminMixin, ExportMixin, admin.ModelAdmin):
    form = AgentPhotoAdminForm  # validates photo uploads with Pillow (assets.validators)
    resource_classes = [AgentResource]
    change_list_template = "admin/agents/agent/change_list.html"
    export_formats = [CSV, XLSX, JSON]
    list_display = (
        "name",
        "industry",
        "profession",
        "state",
        "city",
        "subscription_tier",
        "status",
        "ghost_profile",
        "updated_at",
    )
    list_filter = ("industry", "state", "subscription_tier", "status", "ghost_profile", LicenceFormatFilter)
    search_fields = ("name", "email", "license_number", "brokerage", "city")
    list_select_related = ("industry",)
    list_per_page = 50
    readonly_fields = ("id", "created_at", "updated_at", "enriched_at")
    fieldsets = (
        ("Identity", {"fields": ("id", "name", "slug")}),
        ("Industry", {"fields": ("industry", "profession", "specializations")}),
        ("Contact", {"fields": ("email", "phone", "cell_phone", "office_phone")}),
        ("Licensing", {"fields": ("license_number", "mls_id", "state", "city")}),
        ("Brokerage", {"fields": ("brokerage", "brokerage_license")}),
        ("Profile", {"fields": ("bio", "photo", "photo_url", "video_intro_url")}),
        (
            "Status",
            {
                "fields": (
                    "status",
                    "ghost_profile",
                    "claimed_at",
                    "claimed_by",
                    "profile_views",
                    "fake_leads_count",
                )
            },
        ),
        (
            "Geography",
            {
                "fields": (
                    "primary_region",
                    "primary_county",
                    "service_regions",
                    "service_zipcodes",
                    "service_radius_miles",
                )
            },
        ),
        (
            "Specialty",
            {
                "fields": (
                    "primary_specialty",
                    "secondary_specialties",
                    "property_types",
                    "price_ranges",
                    "client_focus",
                    "language_capabilities",
                )
            },
        ),
        (
            "Experience",
            {"fields": ("years_experience", "transactions_ytd", "total_volume_sold", "avg_days_to_close")},
        ),
        ("Tier", {"fields": ("subscription_tier", "tier_started_at", "tier_expires_at")}),
        ("Content", {"fields": ("bio_tone", "content_style", "unique_value_props", "features")}),
        ("Metadata", {"fields": ("source", "created_at", "updated_at", "enriched_at")}),
    )

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        # Saved all the same: the live data breaks these rules on nearly every row.
        for column, message in agent_warnings(agent=obj):
            messages.warning(request, f"Warning ({column}): {message}")

    def get_export_resource_classes(self, request):
        # Emails and phones only with agents.export_contacts_agent.
        return [agent_export_resource_for(request.user)]

    def export_action(self, request):
        """django-import-export's export form; what it exports is the changelist's rows (exports app).

        A small selection comes back as the file; a larger one starts a
        background job and the user follows it on the job's page.
        """
        if not self.has_export_permission(request):
            raise PermissionDenied
        formats = self.get_export_formats()
        form = self.get_export_form_class()(
            formats, self.get_export_resource_classes(request), data=request.POST or None
        )
        if form.is_valid():
            file_format = formats[int(form.cleaned_data["format"])]().get_extension()
            try:
                started = export_request(
                    user=request.user,
                    file_format=file_format,
                    query_string=request.GET.urlencode(),
                    columns=self.get_export_resource_fields_from_form(form),
                )
            except ExportRequestError as exc:
                messages.error(request, str(exc))
            else:
                job = started.job
                if started.content is None:
                    messages.success(
                        request, f"Export {job.pk} started; the file is ready here when it ends."
                    )
                    return redirect("admin:exports_exportjob_change", job.pk)
                response = HttpResponse(started.content, content_type=FORMATS[job.format].content_type)
                response["Content-Disposition"] = f'attachment; filename="{export_download_name(job=job)}"'
                return response
        context = self.init_request_context_data(request, form)
        request.current_app = self.admin_site.name
        return TemplateResponse(request, [self.export_template_name], context=context)
