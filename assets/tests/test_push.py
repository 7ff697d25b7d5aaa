"""The asset push against moto's S3 server addressed like R2."""

import io
from datetime import timedelta

import pytest
from django.utils import timezone
from PIL import Image

from agents.models import Agent
from assets.models import AssetObject, AssetSyncRun
from assets.services import r2_sync_run
from assets.storage import IMMUTABLE_CACHE_CONTROL, S3Bucket, r2_client_build

from .factories import AgentWithPhotoFactory, photo_file

pytestmark = pytest.mark.django_db


class CountingBucket(S3Bucket):
    """The real S3 bucket, counting every HTTP request the client sends."""

    def __init__(self, settings):
        super().__init__(name=settings.R2_BUCKET, client=r2_client_build())
        self.sent: list[str] = []
        self.client.meta.events.register("before-send.s3", self._count)

    def _count(self, request, **kwargs):
        self.sent.append(f"{request.method} {request.url}")


def _objects(settings) -> dict[str, dict]:
    client = r2_client_build()
    keys = S3Bucket(name=settings.R2_BUCKET, client=client).keys()
    return {key: client.head_object(Bucket=settings.R2_BUCKET, Key=key) for key in keys}


def _live_keys(agent_id: str) -> set[str]:
    return set(
        AssetObject.objects.filter(
            agent_id=agent_id, orphaned_at__isnull=True, deleted_at__isnull=True
        ).values_list("key", flat=True)
    )


@pytest.mark.slow
def test_push_fifty_agents_then_nothing_to_send(r2):
    agents = AgentWithPhotoFactory.create_batch(50)
    bucket = CountingBucket(r2)

    run = r2_sync_run(reason="test", bucket=bucket)

    assert run.status == AssetSyncRun.Status.COMPLETED, run.error
    assert (run.objects_put, run.objects_skipped, run.agents_updated) == (100, 0, 50)
    assert run.bytes_put > 0 and run.duration_seconds is not None
    objects = _objects(r2)
    assert len(objects) == 100
    expected_types = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
    for key, head in objects.items():
        assert head["CacheControl"] == IMMUTABLE_CACHE_CONTROL
        if key.endswith("-thumb.webp"):
            assert head["ContentType"] == "image/webp"
        else:
            assert head["ContentType"] == expected_types[key.rsplit(".", 1)[1]]
    for agent in agents:
        agent.refresh_from_db()
        original = AssetObject.objects.get(agent_id=agent.id, kind=AssetObject.Kind.ORIGINAL)
        assert agent.photo_url == f"https://assets.example.test/{original.key}"
        prefix = original.key.rsplit(".", 1)[0]
        assert original.key.startswith(f"agents/{agent.id}/") and len(prefix.rsplit("/", 1)[1]) == 16
        assert f"{prefix}-thumb.webp" in objects
        with agent.photo.open("rb") as handle:
            assert original.size == len(handle.read()) == objects[original.key]["ContentLength"]
    thumb_key = next(k for k in objects if k.endswith("-thumb.webp"))
    body = r2_client_build().get_object(Bucket=r2.R2_BUCKET, Key=thumb_key)["Body"].read()
    with Image.open(io.BytesIO(body)) as thumb:
        assert thumb.format == "WEBP" and max(thumb.size) <= 256

    bucket.sent.clear()
    again = r2_sync_run(reason="test", bucket=bucket)
    assert again.status == AssetSyncRun.Status.COMPLETED
    assert (again.objects_put, again.objects_skipped, again.agents_updated, again.bytes_put) == (0, 100, 0, 0)
    assert bucket.sent == []  # trusted records: not even a HEAD


def test_photo_url_write_bumps_updated_at_for_the_d1_sync(r2):
    agent = AgentWithPhotoFactory()
    before = Agent.objects.get(pk=agent.pk).updated_at
    r2_sync_run()
    agent.refresh_from_db()
    assert agent.photo_url and agent.updated_at > before


def test_replaced_photo_uploads_once_and_old_objects_go_after_a_later_d1_sync(r2, d1_synced):
    agents = AgentWithPhotoFactory.create_batch(3)
    r2_sync_run()
    target = agents[0]
    old_keys = _live_keys(target.id)
    d1_synced()  # a D1 sync that started BEFORE the replacement must not allow deletion

    target.photo.save("replacement.jpg", photo_file(seed=999))
    run = r2_sync_run()
    assert (run.objects_put, run.objects_orphaned, run.objects_deleted) == (2, 2, 0)
    new_keys = _live_keys(target.id)
    assert len(new_keys) == 2 and not (new_keys & old_keys)
    target.refresh_from_db()
    assert target.photo_url.endswith(next(k for k in new_keys if not k.endswith("-thumb.webp")))
    assert old_keys <= set(_objects(r2))  # D1 may still point at them

    run = r2_sync_run()  # no D1 sync since: still kept
    assert (run.objects_put, run.objects_deleted) == (0, 0)
    assert old_keys <= set(_objects(r2))

    d1_synced()
    run = r2_sync_run()
    assert (run.objects_put, run.objects_deleted) == (0, 2)
    remaining = set(_objects(r2))
    assert not (old_keys & remaining) and new_keys <= remaining
    assert AssetObject.objects.filter(key__in=old_keys, deleted_at__isnull=False).count() == 2

    run = r2_sync_run()
    assert (run.objects_put, run.objects_deleted, run.objects_orphaned) == (0, 0, 0)


def test_deleted_agent_objects_removed_after_a_later_d1_sync(r2, d1_synced):
    keep, gone = AgentWithPhotoFactory.create_batch(2)
    r2_sync_run()
    gone_keys = _live_keys(gone.id)
    gone.delete()

    run = r2_sync_run()
    assert (run.objects_orphaned, run.objects_deleted) == (2, 0)
    assert gone_keys <= set(_objects(r2))

    d1_synced()
    run = r2_sync_run()
    assert run.objects_deleted == 2
    remaining = set(_objects(r2))
    assert not (gone_keys & remaining) and _live_keys(keep.id) <= remaining


def test_removed_photo_clears_photo_url(r2, d1_synced):
    agent = AgentWithPhotoFactory()
    r2_sync_run()
    Agent.objects.filter(pk=agent.pk).update(photo="")
    run = r2_sync_run()
    assert run.objects_orphaned == 2
    agent.refresh_from_db()
    assert agent.photo_url is None


def test_stale_url_written_back_delays_delete(r2, d1_synced):
    agent = AgentWithPhotoFactory()
    r2_sync_run()
    agent.refresh_from_db()
    old_url = agent.photo_url
    agent.photo.save("new.png", photo_file(fmt="PNG", seed=4242))
    r2_sync_run()
    # A stale admin form writes the old URL back after the orphaning.
    Agent.objects.filter(pk=agent.pk).update(photo_url=old_url)
    d1_synced()
    run = r2_sync_run()
    agent.refresh_from_db()
    assert agent.photo_url != old_url  # re-pointed
    assert run.objects_deleted == 0  # and the old object was not deleted under it
    d1_synced()
    assert r2_sync_run().objects_deleted == 2


def test_same_photo_restored_revives_orphaned_objects(r2, d1_synced):
    agent = AgentWithPhotoFactory(photo=photo_file(seed=5))
    r2_sync_run()
    first = _live_keys(agent.id)
    agent.photo.save("other.jpg", photo_file(seed=6))
    r2_sync_run()
    agent.photo.save("again.jpg", photo_file(seed=5))  # same bytes as the first photo
    run = r2_sync_run()
    assert run.objects_put == 0
    assert _live_keys(agent.id) == first
    d1_synced()
    run = r2_sync_run()
    assert run.objects_deleted == 2 and first <= set(_objects(r2))


def test_unreadable_photo_fails_that_agent_only(r2, media_root):
    good = AgentWithPhotoFactory()
    bad = AgentWithPhotoFactory()
    with open(bad.photo.path, "wb") as handle:
        handle.write(b"this is not an image at all")
    run = r2_sync_run()
    assert run.status == AssetSyncRun.Status.PARTIAL
    assert run.agents_failed == 1 and run.objects_put == 2
    assert bad.id in run.error and "not a supported image" in run.error
    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.photo_url and not bad.photo_url


def test_dry_run_changes_nothing(r2):
    agent = AgentWithPhotoFactory()
    run = r2_sync_run(dry_run=True)
    assert run.dry_run and run.status == AssetSyncRun.Status.COMPLETED
    assert (run.objects_put, run.agents_updated) == (2, 1)
    assert _objects(r2) == {} and not AssetObject.objects.exists()
    agent.refresh_from_db()
    assert agent.photo_url is None


def test_verify_reuploads_an_object_missing_from_the_bucket(r2):
    agent = AgentWithPhotoFactory()
    r2_sync_run()
    original = AssetObject.objects.get(agent_id=agent.id, kind=AssetObject.Kind.ORIGINAL)
    r2_client_build().delete_object(Bucket=r2.R2_BUCKET, Key=original.key)
    assert r2_sync_run().objects_put == 0  # trusts the record
    run = r2_sync_run(verify=True)
    assert (run.objects_put, run.objects_skipped) == (1, 1)
    assert original.key in _objects(r2)


def test_finished_run_is_not_rerun(r2):
    AgentWithPhotoFactory()
    run = r2_sync_run()
    assert r2_sync_run(run_id=run.pk).finished_at == run.finished_at
    assert AssetSyncRun.objects.count() == 1


def test_run_skipped_while_another_holds_the_lock(r2):
    import psycopg
    from django.db import connection

    from assets.services import ADVISORY_LOCK_KEY

    params = connection.get_connection_params()
    other = psycopg.connect(**{k: v for k, v in params.items() if k in ("dbname", "user", "host", "port")})
    try:
        other.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        run = r2_sync_run()
        assert run.status == AssetSyncRun.Status.SKIPPED
    finally:
        other.close()
    assert r2_sync_run().status == AssetSyncRun.Status.COMPLETED


def test_orphaned_objects_wait_for_a_sync_that_started_later(r2, monkeypatch):
    from assets import selectors

    agent = AgentWithPhotoFactory()
    r2_sync_run()
    agent.delete()
    r2_sync_run()
    orphaned_at = AssetObject.objects.filter(orphaned_at__isnull=False).values_list("orphaned_at", flat=True)[
        0
    ]
    monkeypatch.setattr(
        selectors, "d1_last_successful_sync_started_at", lambda: orphaned_at - timedelta(seconds=1)
    )
    assert r2_sync_run().objects_deleted == 0
    monkeypatch.setattr(selectors, "d1_last_successful_sync_started_at", lambda: timezone.now())
    assert r2_sync_run().objects_deleted == 2


def test_nothing_deleted_while_no_d1_sync_is_known(r2, monkeypatch):
    from assets import selectors

    monkeypatch.setattr(selectors, "d1_last_successful_sync_started_at", lambda: None)
    agent = AgentWithPhotoFactory()
    r2_sync_run()
    agent.delete()
    assert r2_sync_run().objects_orphaned == 2
    assert r2_sync_run().objects_deleted == 0
    assert len(_objects(r2)) == 2
