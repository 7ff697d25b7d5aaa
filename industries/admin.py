from django.contrib import admin

from accounts.admin_mixins import AuditedAdminMixin

from .models import IndustryConfig


@admin.register(IndustryConfig)
class IndustryConfigAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ("industry", "display_name", "enabled", "license_label", "required_licenses")
    list_filter = ("enabled",)
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("industry", "display_name", "enabled")}),
        ("Catalogue (JSON lists of snake_case keys)", {
            "fields": ("professions", "specializations", "tools", "lead_types"),
        }),
        ("Licensing", {"fields": ("required_licenses", "license_label", "license_pattern")}),
        ("Metadata", {"fields": ("created_at", "updated_at")}),
    )  # fmt: skip

    def get_readonly_fields(self, request, obj=None):
        # The slug is the D1 primary key and every agent's foreign key: fixed once created.
        if obj is not None:
            return (*self.readonly_fields, "industry")
        return self.readonly_fields
