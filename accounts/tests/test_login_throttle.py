"""Admin login throttling: counted before the password check, per user+address and per address,
the client address behind trusted proxies only, and an admin action to unlock a user."""

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client, RequestFactory
from django.urls import reverse

from accounts.tests.hashers import CountingMD5PasswordHasher
from accounts.throttle import client_ip, login_throttle_reset

PASSWORD = "Right-Password-1"
LOCKED = b"Too many failed logins"


def _login(client, password, *, username="throttled", ip="127.0.0.1", **extra):
    return client.post(
        reverse("admin:login"), {"username": username, "password": password}, REMOTE_ADDR=ip, **extra
    )


@pytest.fixture
def throttled_user(db):
    user = get_user_model().objects.create_user("throttled", password=PASSWORD, is_staff=True)
    yield user
    for ip in ("127.0.0.1", "10.9.0.2", "198.51.100.7", "198.51.100.8", "203.0.113.5", "203.0.113.6"):
        login_throttle_reset(username="throttled", ip=ip)


@pytest.mark.django_db(transaction=True)
def test_parallel_wrong_guesses_evaluate_at_most_the_limit(settings):
    """20 guesses at once: only LOGIN_THROTTLE_FAILURES of them reach the password hasher."""
    settings.PASSWORD_HASHERS = ["accounts.tests.hashers.CountingMD5PasswordHasher"]
    settings.LOGIN_THROTTLE_FAILURES = 5
    get_user_model().objects.create_user("racer", password=PASSWORD, is_staff=True)
    CountingMD5PasswordHasher.calls = 0
    start = threading.Barrier(20)
    statuses: list[int] = []

    def guess(n: int) -> None:
        try:
            client = Client()
            start.wait()
            response = _login(client, f"wrong-{n}", username="racer", ip="198.51.100.99")
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert statuses == [200] * 20  # nobody got in
        assert 1 <= CountingMD5PasswordHasher.calls <= 5, CountingMD5PasswordHasher.calls
        # Locked now: the right password is refused without being evaluated.
        before = CountingMD5PasswordHasher.calls
        assert LOCKED in _login(Client(), PASSWORD, username="racer", ip="198.51.100.99").content
        assert CountingMD5PasswordHasher.calls == before
    finally:
        login_throttle_reset(username="racer", ip="198.51.100.99")


def test_a_lock_from_one_address_never_blocks_the_right_password_from_another(client, throttled_user):
    for _ in range(5):
        _login(client, "wrong", ip="203.0.113.5")
    assert LOCKED in _login(client, PASSWORD, ip="203.0.113.5").content
    assert _login(Client(), PASSWORD, ip="203.0.113.6").status_code == 302


def test_one_address_spraying_many_usernames_is_locked(client, throttled_user, settings):
    settings.LOGIN_THROTTLE_IP_FAILURES = 6
    for name in ("spray-a", "spray-b", "spray-c"):  # two each: no single user reaches its limit
        for _ in range(2):
            assert LOCKED not in _login(client, "guess", username=name, ip="198.51.100.7").content
    response = _login(client, PASSWORD, ip="198.51.100.7")
    assert response.status_code == 200 and LOCKED in response.content
    assert _login(Client(), PASSWORD, ip="198.51.100.8").status_code == 302
    for name in ("spray-a", "spray-b", "spray-c"):
        login_throttle_reset(username=name, ip="198.51.100.7")


def test_client_address_comes_from_forwarded_for_only_behind_a_trusted_proxy(settings):
    factory = RequestFactory()

    def ip(remote: str, forwarded: str | None = None) -> str:
        extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
        return client_ip(factory.get("/", REMOTE_ADDR=remote, **extra))

    settings.TRUSTED_PROXIES = []
    assert ip("10.9.0.2", "203.0.113.9") == "10.9.0.2"
    settings.TRUSTED_PROXIES = ["10.9.0.0/16", "2001:db8::1"]
    assert ip("10.9.0.2", "203.0.113.9") == "203.0.113.9"
    # A forged left-hand entry is ignored; trusted hops on the right are skipped.
    assert ip("10.9.0.2", "1.2.3.4, 203.0.113.9, 10.9.0.3") == "203.0.113.9"
    assert ip("2001:db8::1", "2001:db8::77") == "2001:db8::77"
    # An untrusted peer's header is client-controlled: ignored.
    assert ip("198.51.100.1", "203.0.113.9") == "198.51.100.1"
    # Garbage where the proxy writes: fall back to the proxy's own address.
    assert ip("10.9.0.2", "203.0.113.9, not-an-ip") == "10.9.0.2"
    assert ip("10.9.0.2") == "10.9.0.2"


def test_behind_a_trusted_proxy_one_attacker_cannot_lock_out_everyone(client, throttled_user, settings):
    settings.TRUSTED_PROXIES = ["10.9.0.0/16"]
    for _ in range(5):
        _login(client, "wrong", ip="10.9.0.2", HTTP_X_FORWARDED_FOR="203.0.113.5")
    assert LOCKED in _login(client, PASSWORD, ip="10.9.0.2", HTTP_X_FORWARDED_FOR="203.0.113.5").content
    # The real user, behind the same proxy, from their own address.
    response = _login(Client(), PASSWORD, ip="10.9.0.2", HTTP_X_FORWARDED_FOR="203.0.113.6")
    assert response.status_code == 302


def test_admin_action_unlocks_a_user(client, throttled_user, admin_user):
    for _ in range(5):
        _login(client, "wrong", ip="203.0.113.5")
    assert LOCKED in _login(client, PASSWORD, ip="203.0.113.5").content

    admin = Client()
    admin.force_login(admin_user)
    response = admin.post(
        reverse("admin:auth_user_changelist"),
        {"action": "unlock_login", "_selected_action": [throttled_user.pk]},
        follow=True,
    )
    assert b"Admin login unlocked for throttled" in response.content
    assert _login(client, PASSWORD, ip="203.0.113.5").status_code == 302


def test_unlock_action_needs_change_user_permission(db):
    from django.contrib.auth.models import Permission

    staff = get_user_model().objects.create_user("looker", password=PASSWORD, is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_user"))
    looker = Client()
    looker.force_login(staff)

    def actions() -> list[str]:
        form = looker.get(reverse("admin:auth_user_changelist")).context["action_form"]
        return [value for value, _ in form.fields["action"].choices if value] if form else []

    assert "unlock_login" not in actions()
    staff.user_permissions.add(Permission.objects.get(codename="change_user"))
    looker.force_login(get_user_model().objects.get(pk=staff.pk))
    assert "unlock_login" in actions()
