"""/healthz and /readyz against real PostgreSQL, Redis and a real Celery worker; then with each one down."""

import json

import pytest
from django.db import connections
from django.utils import timezone

from imports.tests.workers import RedisServer, WorkerProcess, free_port, use_broker


@pytest.fixture
def worker(tmp_path, settings):
    """A private Redis broker with one real worker on it; the settings point /readyz at it."""
    from estateflow.celery import app as celery_app

    eager = celery_app.conf.task_always_eager
    original_broker = settings.CELERY_BROKER_URL
    redis = RedisServer()
    redis.start()
    use_broker(redis.url)
    settings.CELERY_BROKER_URL = redis.url
    process = WorkerProcess(broker_url=redis.url, log_dir=tmp_path, name="health")
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()
        redis.kill()
        use_broker(original_broker)
        celery_app.conf.task_always_eager = eager


@pytest.fixture
def synced():
    from sync.models import SyncRun

    return SyncRun.objects.create(
        kind=SyncRun.Kind.INCREMENTAL, status=SyncRun.Status.COMPLETED, started_at=timezone.now()
    )


def _ready(client):
    response = client.get("/readyz")
    return response.status_code, json.loads(response.content)


def test_healthz_answers_without_the_database(client):
    # No django_db mark: any query would raise here.
    response = client.get("/healthz")
    assert response.status_code == 200 and json.loads(response.content) == {"status": "ok"}


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_readyz_healthy_then_broker_down_then_healthy_again(client, settings, worker, synced):
    status, body = _ready(client)
    assert status == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "cache", "broker", "workers", "sync"}
    assert body["checks"]["workers"]["count"] == 1 and body["checks"]["sync"]["age_seconds"] < 60

    good = settings.CELERY_BROKER_URL
    settings.CELERY_BROKER_URL = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    status, body = _ready(client)
    assert status == 503 and body["status"] == "unavailable"
    assert body["checks"]["broker"]["ok"] is False and body["checks"]["workers"]["ok"] is False
    assert body["checks"]["database"]["ok"] and body["checks"]["cache"]["ok"]
    raw = json.dumps(body)
    assert "hunter2" not in raw and "127.0.0.1" not in raw and "redis://" not in raw
    assert all(check.get("ms", 0) < 3000 for check in body["checks"].values())

    settings.CELERY_BROKER_URL = good
    status, body = _ready(client)
    assert status == 200, body


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_readyz_database_down_then_back(client, worker, synced, monkeypatch):
    assert _ready(client)[0] == 200
    connection = connections["default"]
    connection.close()
    monkeypatch.setitem(connection.settings_dict, "PORT", free_port())
    monkeypatch.setitem(connection.settings_dict, "PASSWORD", "hunter2")
    status, body = _ready(client)
    assert status == 503
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["sync"] == {
        "ok": False,
        "error": "database unavailable",
    }
    assert "hunter2" not in json.dumps(body)

    monkeypatch.undo()
    connection.close()
    status, body = _ready(client)
    assert status == 200, body


@pytest.mark.django_db
def test_readyz_without_a_worker_or_with_a_stale_sync_is_unavailable(client, settings, synced):
    from sync.models import SyncRun

    settings.READYZ_MAX_SYNC_AGE_SECONDS = 60
    SyncRun.objects.filter(pk=synced.pk).update(started_at=timezone.now() - timezone.timedelta(hours=1))
    status, body = _ready(client)
    assert status == 503
    assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"]
    assert body["checks"]["workers"] == {
        "ok": False,
        "error": "no worker answered control.ping",
        "ms": body["checks"]["workers"]["ms"],
    }
    assert body["checks"]["sync"]["ok"] is False and "limit 60 s" in body["checks"]["sync"]["error"]


@pytest.mark.django_db
def test_dashboard_shows_whether_workers_are_alive(admin_client, settings):
    from django.core.cache import cache

    from estateflow.admin_dashboard import WORKERS_CACHE_KEY

    cache.delete(WORKERS_CACHE_KEY)
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"
    content = admin_client.get("/admin/").content.decode()
    assert 'id="ef-workers"' in content and "broker unreachable" in content
    cache.delete(WORKERS_CACHE_KEY)


@pytest.mark.django_db
def test_readyz_sync_age_follows_the_operators_schedule(client, settings, synced):
    """A paused D1 schedule is not an outage; a longer interval set in the admin raises the age limit."""
    from estateflow.health import check_sync_age
    from sync.models import Schedule, SyncRun
    from sync.schedules import SYNC_D1, schedules_ensure

    settings.READYZ_MAX_SYNC_AGE_SECONDS = 60
    schedules_ensure()
    SyncRun.objects.filter(pk=synced.pk).update(started_at=timezone.now() - timezone.timedelta(minutes=10))
    with pytest.raises(RuntimeError, match="limit 60 s"):
        check_sync_age()
    Schedule.objects.filter(key=SYNC_D1).update(interval_seconds=3600)
    assert check_sync_age()["max_age_seconds"] == 3 * 3600
    Schedule.objects.filter(key=SYNC_D1).update(enabled=False)
    assert check_sync_age() == {"schedule": "paused"}
    status, body = _ready(client)
    assert body["checks"]["sync"]["ok"] is True
