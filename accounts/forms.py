from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from .throttle import client_ip, lock_minutes, login_attempt_begin, login_attempt_succeeded


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin login form: an attempt takes its throttle slot before the password is checked."""

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "locked": "Too many failed logins. Try again in %(minutes)s minutes.",
    }

    def clean(self):
        username = self.cleaned_data.get("username")
        if not username or not self.cleaned_data.get("password"):
            return super().clean()  # a missing field: nothing is authenticated, nothing to count
        attempt = login_attempt_begin(username=username, ip=client_ip(self.request))
        if attempt is None:
            # Refused unevaluated: a locked user or address learns nothing, right password or not.
            raise ValidationError(
                self.error_messages["locked"], code="locked", params={"minutes": lock_minutes()}
            )
        cleaned = super().clean()  # a failure keeps the slot it took: it was counted up front
        login_attempt_succeeded(attempt)
        return cleaned
