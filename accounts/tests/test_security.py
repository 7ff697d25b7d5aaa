import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from accounts.throttle import login_throttle_reset
from agents.resources import CONTACT_COLUMNS, D1_AGENT_COLUMNS
from agents.tests.factories import AgentFactory

pytestmark = pytest.mark.django_db
BASE_DIR = Path(settings.BASE_DIR)


def _export_csv(client, extra=None) -> list[list[str]]:
    # The export form's field checkboxes, all ticked (both resources' names: only the user's counts).
    data = {"format": "0", "resource": "0", **(extra or {})}
    data |= {
        f"{res}_{c}": "on"
        for c in D1_AGENT_COLUMNS
        for res in ("agentresource", "agentresourcewithoutcontacts")
    }
    response = client.post(reverse("admin:agents_agent_export"), data)
    assert response.status_code == 200, response.status_code
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


def test_export_without_contacts_permission_has_no_contact_columns(client, role_user):
    AgentFactory(email="secret@corp.example", phone="+1 555-111-2222", cell_phone="+1 555-333-4444")
    client.force_login(role_user("Editor"))
    # Even asking for them by name (the other resource's checkbox names) gives nothing.
    extra = {f"agentresource_{c}": "on" for c in CONTACT_COLUMNS}
    extra |= {f"agentresourcewithoutcontacts_{c}": "on" for c in CONTACT_COLUMNS}
    rows = _export_csv(client, extra)
    header, body = rows[0], "\n".join(",".join(r) for r in rows)
    assert "name" in header and "license_number" in header
    assert not set(CONTACT_COLUMNS) & set(header)
    assert "secret@corp.example" not in body and "555-111-2222" not in body and "555-333-4444" not in body


def test_export_with_contacts_permission_has_contact_columns(client, role_user):
    AgentFactory(email="secret@corp.example", phone="+1 555-111-2222")
    user = role_user("Editor")
    user.user_permissions.add(Permission.objects.get(codename="export_contacts_agent"))
    client.force_login(get_user_model().objects.get(pk=user.pk))
    rows = _export_csv(client)
    assert set(CONTACT_COLUMNS) <= set(rows[0])
    assert "secret@corp.example" in "\n".join(",".join(r) for r in rows)


def test_export_escapes_formulae(client, admin_user):
    AgentFactory(name="=HYPERLINK(1)", brokerage="+cmd|x")
    client.force_login(admin_user)
    body = "\n".join(",".join(r) for r in _export_csv(client))
    assert "'=HYPERLINK(1)" in body and "'+cmd|x" in body


# --- login throttling ----------------------------------------------------------------------


@pytest.fixture
def staff_user(db):
    user = get_user_model().objects.create_user("staffer", password="Right-Password-1", is_staff=True)
    for ip in ("127.0.0.1", "10.0.0.9"):
        login_throttle_reset(username="staffer", ip=ip)
    yield user
    for ip in ("127.0.0.1", "10.0.0.9"):
        login_throttle_reset(username="staffer", ip=ip)


def _login(client, password, username="staffer", ip="127.0.0.1"):
    return client.post(reverse("admin:login"), {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_five_failures_lock_the_username_from_that_ip(client, staff_user):
    for _ in range(4):
        response = _login(client, "wrong")
        assert response.status_code == 200 and b"Too many failed logins" not in response.content
    response = _login(client, "wrong")  # the fifth failure locks
    assert response.status_code == 200
    response = _login(client, "Right-Password-1")  # even the right password is refused now
    assert response.status_code == 200
    assert b"Too many failed logins" in response.content
    assert "_auth_user_id" not in client.session
    # Another IP is not locked.
    assert _login(client, "Right-Password-1", ip="10.0.0.9").status_code == 302


def test_a_success_resets_the_counter(client, staff_user):
    for _ in range(4):
        _login(client, "wrong")
    assert _login(client, "Right-Password-1").status_code == 302
    client.logout()
    for _ in range(4):
        _login(client, "wrong")
    assert _login(client, "Right-Password-1").status_code == 302


def test_lock_expires(client, staff_user, settings):
    settings.LOGIN_THROTTLE_LOCK_SECONDS = 1
    for _ in range(5):
        _login(client, "wrong")
    assert b"Too many failed logins" in _login(client, "Right-Password-1").content
    import time

    time.sleep(1.2)
    assert _login(client, "Right-Password-1").status_code == 302


def test_cache_is_redis_in_tests():
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"


# --- deploy settings --------------------------------------------------------------------------


def test_check_deploy_is_clean_on_production_settings():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "estateflow.settings.production",
        "DJANGO_SECRET_KEY": "x" * 20 + "-Not-Real-But-Long-Enough-For-The-Deploy-Check-0123456789",
        "DATABASE_URL": os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/estateflow"),
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15"),
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"),
        # Production refuses the local D1/R2 stand-ins unless asked for (estateflow.settings.production).
        "D1_TARGET": "local",
        "R2_TARGET": "local",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_cookies_hsts_and_upload_limits(monkeypatch):
    from importlib import import_module

    monkeypatch.setenv("DJANGO_SECRET_KEY", "not-used-only-imported")
    # Production has no local defaults for these.
    monkeypatch.setenv("DATABASE_URL", "postgres://app@db.example:5432/estateflow")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://redis.example:6379/0")
    monkeypatch.setenv("REDIS_URL", "redis://redis.example:6379/1")
    monkeypatch.setenv("D1_TARGET", "local")
    monkeypatch.setenv("R2_TARGET", "local")
    prod = import_module("estateflow.settings.production")
    assert prod.SESSION_COOKIE_SECURE and prod.CSRF_COOKIE_SECURE and prod.SESSION_COOKIE_HTTPONLY
    assert prod.SECURE_HSTS_SECONDS >= 31_536_000 and prod.SECURE_SSL_REDIRECT
    assert prod.DATA_UPLOAD_MAX_MEMORY_SIZE <= 10 * 1024 * 1024
    assert "django.middleware.csrf.CsrfViewMiddleware" in prod.MIDDLEWARE
