from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and audit"

    def ready(self) -> None:
        from django.contrib import admin

        from .forms import ThrottledAdminAuthenticationForm

        # Lock a username + IP out after repeated failed admin logins (accounts.throttle).
        admin.site.login_form = ThrottledAdminAuthenticationForm
