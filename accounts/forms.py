from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from .throttle import (
    client_ip,
    lock_minutes,
    login_failure_record,
    login_is_locked,
    login_throttle_key,
    login_throttle_reset,
)


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin login form, refusing a username + IP for a while after repeated failures."""

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "locked": "Too many failed logins. Try again in %(minutes)s minutes.",
    }

    def clean(self):
        key = login_throttle_key(username=self.cleaned_data.get("username") or "", ip=client_ip(self.request))
        if login_is_locked(key):
            # Checked before authenticating: a locked key learns nothing, right password or not.
            raise ValidationError(
                self.error_messages["locked"], code="locked", params={"minutes": lock_minutes()}
            )
        try:
            cleaned = super().clean()
        except ValidationError:
            login_failure_record(key)
            raise
        login_throttle_reset(key)
        return cleaned
