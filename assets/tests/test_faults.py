"""The push through a proxy that answers 500/503 or stalls past the read timeout."""

import pytest

from agents.models import Agent
from assets.models import AssetObject, AssetSyncRun
from assets.services import r2_sync_run
from assets.storage import IMMUTABLE_CACHE_CONTROL, S3Bucket, r2_client_build

from .factories import AgentWithPhotoFactory

pytestmark = pytest.mark.django_db


def _direct_objects(settings, moto_endpoint) -> dict[str, dict]:
    """Objects as moto holds them, read around the proxy."""
    client = r2_client_build(endpoint_url=moto_endpoint)
    keys = S3Bucket(name=settings.R2_BUCKET, client=client).keys()
    return {key: client.head_object(Bucket=settings.R2_BUCKET, Key=key) for key in keys}


def test_push_converges_through_injected_5xx_and_timeouts(r2, moto_endpoint, fault_proxy):
    proxy = fault_proxy(fault_rate=0.3, seed=11, hold_seconds=1.0)
    r2.R2_ENDPOINT_URL = proxy.endpoint
    r2.R2_READ_TIMEOUT = 0.5
    r2.R2_MAX_ATTEMPTS = 6
    agents = AgentWithPhotoFactory.create_batch(8)

    run = r2_sync_run()

    assert run.status == AssetSyncRun.Status.COMPLETED, run.error
    assert set(proxy.faults) == {"500", "503", "timeout"}, proxy.faults
    assert proxy.requests > run.objects_put == 16  # the extra requests are the retries
    objects = _direct_objects(r2, moto_endpoint)
    assert len(objects) == 16
    assert all(head["CacheControl"] == IMMUTABLE_CACHE_CONTROL for head in objects.values())
    for agent in agents:
        agent.refresh_from_db()
        assert agent.photo_url
    # A timed-out PUT that had reached the server and was sent again left one object, not two.
    assert AssetObject.objects.count() == 16

    # Converged: the next run sends nothing, even through the faulty proxy.
    proxy.faults.clear()
    before = proxy.requests
    again = r2_sync_run()
    assert (again.status, again.objects_put, proxy.requests - before) == (AssetSyncRun.Status.COMPLETED, 0, 0)


def test_bucket_down_fails_the_run_cleanly_then_next_run_converges(r2, moto_endpoint, fault_proxy):
    proxy = fault_proxy(fault_rate=1.0, kinds=("503", "500"))
    r2.R2_ENDPOINT_URL = proxy.endpoint
    r2.R2_MAX_ATTEMPTS = 2
    agent = AgentWithPhotoFactory()

    run = r2_sync_run()

    assert run.status == AssetSyncRun.Status.FAILED
    assert "bucket unavailable" in run.error and agent.id in run.error
    assert proxy.requests == 3  # retries={"max_attempts": 2} means two retries after the first try
    assert not AssetObject.objects.exists()  # nothing recorded that is not in the bucket
    assert Agent.objects.get(pk=agent.pk).photo_url is None

    proxy.fault_rate = 0.0
    run = r2_sync_run()
    assert run.status == AssetSyncRun.Status.COMPLETED and run.objects_put == 2
    assert len(_direct_objects(r2, moto_endpoint)) == 2
