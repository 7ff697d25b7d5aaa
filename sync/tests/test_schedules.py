"""The D1 and R2 schedules staff control: the claim beat makes, the scheduler, the admin, a real beat."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from datetime import datetime, timedelta

import pytest
import redis
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent
from estateflow.celery import app as celery_app
from imports.tests import workers
from imports.tests.workers import CELERY, ROOT, RedisServer, wait_for
from sync.locks import SYNC_LOCK_KEY
from sync.models import Schedule, SyncRun
from sync.scheduler import OperatorScheduler
from sync.schedules import ASSETS_R2, SYNC_D1, schedules_due_claim, schedules_enabled_set, schedules_ensure

T0 = timezone.now().replace(microsecond=0)


def _set(key: str, **fields) -> Schedule:
    Schedule.objects.filter(pk=key).update(**fields)
    return Schedule.objects.get(pk=key)


def _pg_connect():
    import psycopg

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return psycopg.connect(**params, autocommit=True)


def _queued(broker_url: str) -> list[dict]:
    """The task messages waiting in the broker's default queue: {task, kwargs, expires}."""
    client = redis.Redis.from_url(broker_url)
    try:
        out = []
        for raw in client.lrange("default", 0, -1):
            message = json.loads(raw)
            headers = message["headers"]
            out.append(
                {"task": headers["task"], "kwargs": headers["kwargsrepr"], "expires": headers["expires"]}
            )
        return out
    finally:
        client.close()


def _tasks(broker_url: str) -> list[str]:
    return sorted(m["task"] for m in _queued(broker_url))


# --- the claim: which schedules are due ------------------------------------------------


@pytest.mark.django_db
def test_a_fresh_database_has_both_schedules_enabled_at_the_settings_default(settings):
    rows = {s.key: s for s in Schedule.objects.all()}
    assert set(rows) == {SYNC_D1, ASSETS_R2}
    assert all(r.enabled and r.interval_seconds is None and r.last_sent_at is None for r in rows.values())
    assert rows[SYNC_D1].interval_effective == settings.SYNC_D1_INTERVAL_SECONDS
    assert schedules_ensure() == 0


@pytest.mark.django_db
def test_a_never_sent_schedule_goes_at_once_then_waits_its_interval(settings):
    settings.SYNC_D1_INTERVAL_SECONDS = 300
    due = schedules_due_claim(now=T0)
    assert {(d.key, d.task, d.interval_seconds) for d in due} == {
        (SYNC_D1, "sync.d1_sync_run", 300),
        (ASSETS_R2, "assets.r2_sync_run", 300),
    }
    assert {d.key: d.kwargs for d in due} == {SYNC_D1: {"reason": "scheduled"}, ASSETS_R2: {"reason": "beat"}}
    assert all(s.last_sent_at == T0 for s in Schedule.objects.all())
    # The same instant, or any before the interval is up: nothing.
    assert schedules_due_claim(now=T0) == []
    assert schedules_due_claim(now=T0 + timedelta(seconds=299)) == []
    assert len(schedules_due_claim(now=T0 + timedelta(seconds=300))) == 2


@pytest.mark.django_db
def test_a_paused_schedule_is_never_sent_and_resuming_sends_once_not_once_per_missed_period():
    _set(SYNC_D1, enabled=False)
    assert [d.key for d in schedules_due_claim(now=T0)] == [ASSETS_R2]
    assert [d.key for d in schedules_due_claim(now=T0 + timedelta(days=1))] == [ASSETS_R2]
    assert Schedule.objects.get(pk=SYNC_D1).last_sent_at is None

    _set(SYNC_D1, enabled=True, last_sent_at=T0 - timedelta(days=3))
    later = T0 + timedelta(days=1, seconds=1)
    assert [d.key for d in schedules_due_claim(now=later)] == [SYNC_D1]
    assert schedules_due_claim(now=later) == []


@pytest.mark.django_db
def test_a_new_interval_counts_from_the_last_send(settings):
    settings.SYNC_D1_INTERVAL_SECONDS = 300
    _set(ASSETS_R2, enabled=False)
    _set(SYNC_D1, last_sent_at=T0)
    at_120 = T0 + timedelta(seconds=120)
    assert schedules_due_claim(now=at_120) == []
    # Shorter than the time already gone by: due now, once.
    _set(SYNC_D1, interval_seconds=60)
    assert [(d.key, d.interval_seconds) for d in schedules_due_claim(now=at_120)] == [(SYNC_D1, 60)]
    assert schedules_due_claim(now=at_120 + timedelta(seconds=59)) == []
    # Longer: waits for it.
    _set(SYNC_D1, interval_seconds=3600)
    assert schedules_due_claim(now=at_120 + timedelta(seconds=3599)) == []
    assert len(schedules_due_claim(now=at_120 + timedelta(seconds=3600))) == 1
    # Emptied: the settings default again, which a deploy may change.
    _set(SYNC_D1, interval_seconds=None, last_sent_at=T0)
    settings.SYNC_D1_INTERVAL_SECONDS = 900
    assert schedules_due_claim(now=T0 + timedelta(seconds=899)) == []
    assert [d.interval_seconds for d in schedules_due_claim(now=T0 + timedelta(seconds=900))] == [900]


@pytest.mark.django_db(transaction=True)
def test_a_row_another_transaction_holds_is_left_for_the_next_check():
    """An admin save in progress, or a second beat claiming: never waited for, never sent twice."""
    schedules_ensure()
    other = _pg_connect()
    try:
        with other.transaction():
            other.execute("SELECT key FROM sync_schedule WHERE key = %s FOR UPDATE", [SYNC_D1])
            assert [d.key for d in schedules_due_claim(now=T0)] == [ASSETS_R2]
        assert [d.key for d in schedules_due_claim(now=T0)] == [SYNC_D1]
    finally:
        other.close()


@pytest.mark.django_db(transaction=True)
def test_two_claims_at_once_send_each_schedule_once():
    schedules_ensure()
    results: list[list[str]] = []
    barrier = threading.Barrier(4)

    def claim():
        try:
            barrier.wait()
            results.append([d.key for d in schedules_due_claim(now=T0)])
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(k for keys in results for k in keys) == [ASSETS_R2, SYNC_D1]


@pytest.mark.django_db(transaction=True)
def test_a_shorter_interval_never_runs_two_syncs_at_once():
    """A run holds the lock; the interval shrinks so the schedule is due: the sync it sends is skipped, recorded."""
    schedules_ensure()
    _set(ASSETS_R2, enabled=False)
    _set(SYNC_D1, last_sent_at=T0)
    running = _pg_connect()
    try:
        running.execute("SELECT pg_advisory_lock(%s)", [SYNC_LOCK_KEY])
        _set(SYNC_D1, interval_seconds=60)
        (due,) = schedules_due_claim(now=T0 + timedelta(seconds=61))
        # What a worker runs for beat's message (eagerly here: tests run tasks in-process).
        celery_app.tasks[due.task].apply(kwargs=due.kwargs)
        run = SyncRun.objects.get()
        assert (run.status, run.reason) == (SyncRun.Status.SKIPPED, "scheduled")
        assert run.error == "another sync holds the lock"
    finally:
        running.close()


# --- the scheduler beat runs -----------------------------------------------------------


@pytest.fixture
def broker():
    """A private redis-server, so nothing else publishes to or consumes from the queue under test."""
    server = RedisServer()
    server.start()
    yield server.url
    server.kill()


@pytest.mark.django_db(transaction=True)
def test_the_scheduler_sends_due_schedules_and_keeps_the_fixed_entries(
    broker, tmp_path, settings, monkeypatch
):
    settings.SYNC_D1_INTERVAL_SECONDS = 300
    schedules_ensure()
    _set(ASSETS_R2, enabled=False)
    # Celery reads the environment's broker before its config (`make test` exports one).
    monkeypatch.setenv("CELERY_BROKER_URL", broker)
    monkeypatch.setattr(celery_app.conf, "broker_url", broker)
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)
    scheduler = OperatorScheduler(app=celery_app, schedule_filename=str(tmp_path / "beat"), lazy=False)
    try:
        assert "imports-recover" in scheduler.schedule  # the fixed entry, kept as Celery's own scheduler does
        assert scheduler.schedules_send_due() == [SYNC_D1]
        assert scheduler.schedules_send_due() == []
        (message,) = _queued(broker)
        assert (message["task"], message["kwargs"]) == ("sync.d1_sync_run", "{'reason': 'scheduled'}")
        # Not run at all once the next one is due, rather than two in a row.
        expires = datetime.fromisoformat(message["expires"]) - Schedule.objects.get(pk=SYNC_D1).last_sent_at
        assert timedelta(seconds=299) < expires < timedelta(seconds=310)

        # Resumed while beat runs: its next check sends it, and a tick never sleeps past that check.
        schedules_enabled_set(schedules=Schedule.objects.filter(pk=ASSETS_R2), enabled=True, actor=None)
        scheduler._next_poll = 0.0
        assert 0 <= scheduler.tick() <= 5.0
        assert _tasks(broker) == ["assets.r2_sync_run", "sync.d1_sync_run"]
    finally:
        scheduler.close()


# --- the admin -------------------------------------------------------------------------


@pytest.fixture
def staff(db, client):
    def make(*codenames: str) -> User:
        user = User.objects.create_user(
            f"staff-{'-'.join(codenames) or 'none'}", password="pw-x-123", is_staff=True
        )
        user.user_permissions.add(
            *Permission.objects.filter(content_type__app_label="sync", codename__in=codenames)
        )
        client.force_login(user)
        return user

    return make


def _action(client, action: str, *keys: str):
    return client.post(
        reverse("admin:sync_schedule_changelist"), {"action": action, "_selected_action": list(keys)}
    )


def _change(client, key: str, **data):
    return client.post(reverse("admin:sync_schedule_change", args=[key]), {"enabled": "on", **data})


@pytest.mark.django_db
def test_a_viewer_sees_the_schedules_but_cannot_pause_or_retime_them(client, staff):
    staff("view_schedule")
    page = client.get(reverse("admin:sync_schedule_changelist"))
    assert page.status_code == 200
    content = page.content.decode()
    assert "D1 sync" in content and "R2 asset push" in content and "Pause selected" not in content
    _action(client, "schedules_pause", SYNC_D1)
    assert _change(client, SYNC_D1, interval_seconds="600").status_code == 403
    assert client.get(reverse("admin:sync_schedule_add")).status_code == 403
    assert (
        client.post(reverse("admin:sync_schedule_delete", args=[SYNC_D1]), {"post": "yes"}).status_code == 403
    )
    row = Schedule.objects.get(pk=SYNC_D1)
    assert row.enabled and row.interval_seconds is None
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_pause_resume_and_interval_from_the_admin_are_audited(client, staff):
    user = staff("view_schedule", "change_schedule")
    changelist = client.get(reverse("admin:sync_schedule_changelist")).content.decode()
    assert "Pause selected" in changelist and "Delete selected" not in changelist

    assert _action(client, "schedules_pause", SYNC_D1, ASSETS_R2).status_code == 302
    assert not Schedule.objects.filter(enabled=True).exists()
    assert "paused" in client.get(reverse("admin:sync_schedule_changelist")).content.decode()
    _action(client, "schedules_resume", ASSETS_R2)
    assert set(Schedule.objects.filter(enabled=True).values_list("key", flat=True)) == {ASSETS_R2}

    assert _change(client, SYNC_D1, interval_seconds="600").status_code == 302
    row = Schedule.objects.get(pk=SYNC_D1)
    assert (row.enabled, row.interval_seconds) == (True, 600)
    # Below the minute: refused by the form, nothing saved.
    page = _change(client, SYNC_D1, interval_seconds="30")
    assert page.status_code == 200 and "greater than or equal to 60" in page.content.decode()
    assert Schedule.objects.get(pk=SYNC_D1).interval_seconds == 600

    events = [
        (e.object_id, e.changes, e.actor_id)
        for e in AuditEvent.objects.filter(object_type="sync.schedule").order_by("id")
    ]
    assert events == [
        (ASSETS_R2, {"enabled": [True, False]}, user.pk),
        (SYNC_D1, {"enabled": [True, False]}, user.pk),
        (ASSETS_R2, {"enabled": [False, True]}, user.pk),
        (SYNC_D1, {"enabled": [False, True], "interval_seconds": [None, 600]}, user.pk),
    ]


@pytest.mark.django_db
def test_an_admin_save_keeps_the_send_beat_made_meanwhile(rf, staff):
    """Beat claims the row between the admin loading and saving it: its last_sent_at must stay."""
    from django.contrib import admin

    request = rf.post("/")
    request.user = staff("view_schedule", "change_schedule")
    model_admin = admin.site._registry[Schedule]
    loaded = Schedule.objects.get(pk=SYNC_D1)
    schedules_due_claim(now=T0)
    form = model_admin.get_form(request, loaded)(
        {"enabled": "on", "interval_seconds": "600"}, instance=loaded
    )
    assert form.is_valid(), form.errors
    model_admin.save_model(request, form.save(commit=False), form, change=True)
    row = Schedule.objects.get(pk=SYNC_D1)
    assert (row.interval_seconds, row.last_sent_at) == (600, T0)


@pytest.mark.django_db
def test_the_dashboard_shows_each_schedule_state(client, staff, settings):
    settings.SYNC_D1_INTERVAL_SECONDS = 300
    staff("view_schedule")
    _set(ASSETS_R2, enabled=False)
    _set(SYNC_D1, last_sent_at=timezone.now())
    page = client.get(reverse("admin:index")).content.decode()
    panel = page[page.index('id="ef-schedules"') :]
    panel = panel[: panel.index("</section>")]
    assert "D1 sync" in panel and "R2 asset push" in panel
    assert panel.count("enabled") == 1 and panel.count("paused") == 1
    assert "every 5 min" in panel and "next " in panel


# --- a real beat process ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_running_beat_follows_pause_resume_and_interval_changes_without_a_restart(broker, tmp_path):
    """`celery beat` against a private Redis: every change below is made while it runs.

    Absences are checked causally, never by waiting: beat decides for both
    schedules in one transaction, so once the other schedule's send is seen,
    the decision on the paused or not-yet-due one has been made too.
    """
    schedules_ensure()
    _set(ASSETS_R2, enabled=False)
    log_path = tmp_path / "beat.log"
    with open(log_path, "wb") as log:
        beat = subprocess.Popen(
            [CELERY, "-A", "estateflow", "beat", "-s", str(tmp_path / "beat-schedule"), "-l", "INFO"],
            cwd=ROOT,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "estateflow.settings.test",
                "DATABASE_URL": workers.test_database_url(),
                "CELERY_BROKER_URL": broker,
                "CELERY_TASK_ALWAYS_EAGER": "false",
                "SYNC_D1_INTERVAL_SECONDS": "3600",
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def sent(task: str, count: int):
            def check():
                assert beat.poll() is None, log_path.read_text(errors="replace")[-3000:]
                return _tasks(broker).count(task) >= count

            wait_for(check, timeout=60, message=f"{count} x {task}")

        # Enabled and never sent: at once. Paused: not in the same decision.
        sent("sync.d1_sync_run", 1)
        assert Schedule.objects.get(pk=ASSETS_R2).last_sent_at is None
        first = Schedule.objects.get(pk=SYNC_D1).last_sent_at
        assert first is not None

        # Pause the D1 sync although it is due, resume the R2 push (the marker).
        _set(SYNC_D1, enabled=False, last_sent_at=first - timedelta(days=1))
        schedules_enabled_set(schedules=Schedule.objects.filter(pk=ASSETS_R2), enabled=True, actor=None)
        sent("assets.r2_sync_run", 1)
        assert _tasks(broker).count("sync.d1_sync_run") == 1

        # Resume the D1 sync at an interval that has not run out (the marker goes again): nothing.
        _set(
            SYNC_D1, enabled=True, interval_seconds=7200, last_sent_at=timezone.now() - timedelta(seconds=600)
        )
        _set(ASSETS_R2, last_sent_at=timezone.now() - timedelta(days=1))
        sent("assets.r2_sync_run", 2)
        assert _tasks(broker).count("sync.d1_sync_run") == 1
        # An interval shorter than the time gone by: sent at beat's next check.
        _set(SYNC_D1, interval_seconds=300)
        sent("sync.d1_sync_run", 2)
        assert [m["expires"] is not None for m in _queued(broker)] == [True] * 4
    finally:
        if beat.poll() is None:
            os.killpg(beat.pid, signal.SIGTERM)
            beat.wait(timeout=15)
    assert _tasks(broker) == ["assets.r2_sync_run"] * 2 + ["sync.d1_sync_run"] * 2
