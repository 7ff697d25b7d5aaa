from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.utils.html import format_html, format_html_join

from estateflow.admin_site import ReadOnlyAdmin

from .models import AuditEvent
from .throttle import login_unlock_user


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Audit rows are written by the admin itself, never edited."""

    list_display = ("created_at", "actor_name", "action", "object_type", "object_id", "object_repr")
    list_filter = ("action", "object_type")
    search_fields = ("=object_id", "actor_name")
    list_select_related = ()
    readonly_fields = ("created_at", "actor", "actor_name", "action", "object_type", "object_id",
                       "object_repr", "changes_table")  # fmt: skip
    exclude = ("changes",)
    show_full_result_count = False

    @admin.display(description="changes")
    def changes_table(self, obj):
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((k, v[0], v[1]) for k, v in obj.changes.items()),
        )
        return format_html("<table><tr><th>field</th><th>before</th><th>after</th></tr>{}</table>", rows)


User = get_user_model()
_BaseUserAdmin = type(admin.site._registry[User]) if admin.site.is_registered(User) else UserAdmin


class ThrottleUserAdmin(_BaseUserAdmin):
    """The stock user admin plus an action that lifts failed-login locks (accounts.throttle)."""

    actions = [*(_BaseUserAdmin.actions or ()), "unlock_login"]

    @admin.action(description="Unlock admin login of the selected users", permissions=["change"])
    def unlock_login(self, request, queryset):
        names = sorted(queryset.values_list(User.USERNAME_FIELD, flat=True))
        for name in names:
            login_unlock_user(username=name)
        self.message_user(
            request,
            f"Admin login unlocked for {', '.join(names)} from every address. An address locked for "
            "failures across many usernames stays locked until its lock expires.",
            messages.SUCCESS,
        )


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, ThrottleUserAdmin)
