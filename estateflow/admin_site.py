"""The back-office admin site and the admin building blocks every app shares."""

from django.contrib import admin

from accounts.forms import ThrottledAdminAuthenticationForm


class EstateFlowAdminSite(admin.AdminSite):
    """`admin.site` (estateflow.apps.EstateFlowAdminConfig makes it the default site).

    Its login form takes a throttle slot before checking the password, so a
    username + address is locked out after repeated failures (accounts.throttle).
    """

    login_form = ThrottledAdminAuthenticationForm


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records the application writes (runs, audit events, bucket objects): staff look, they never edit.

    Viewing still needs the model's view permission, as for any ModelAdmin.
    """

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
