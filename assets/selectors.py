"""Reads for the asset push: keys, public URLs, agents with photos, what may be deleted."""

from collections.abc import Iterator
from datetime import datetime

from django.conf import settings
from django.db.models import Q

from agents.models import Agent

# The delete phase waits for a D1 sync that started after an object was orphaned. Imported here so
# assets.services reads it through this module (tests monkeypatch it here to simulate syncs).
from sync.selectors import d1_last_successful_sync_started_at  # noqa: F401

from .models import AssetObject, AssetSyncRun

HASH_PREFIX_LENGTH = 16  # 64 bits of SHA-256: collisions within one agent are not a concern


def asset_key(*, agent_id: str, sha256: str, ext: str, thumb: bool = False) -> str:
    prefix = sha256[:HASH_PREFIX_LENGTH]
    return f"agents/{agent_id}/{prefix}{'-thumb' if thumb else ''}.{ext}"


def asset_public_url(*, key: str) -> str:
    return f"{settings.R2_PUBLIC_BASE_URL.rstrip('/')}/{key}"


def agents_with_photo_q() -> Q:
    return Q(photo__isnull=False) & ~Q(photo="")


def agents_with_photo_batches(*, batch_size: int = 500) -> Iterator[list[dict]]:
    """Agents that have a photo, as dicts (id, photo, photo_url), in id order, batch by batch.

    Keyset pagination keeps memory flat and stays correct while rows change
    under the run. Every agent row is "live": a deleted agent is a deleted row.
    """
    last_id = ""
    while True:
        rows = list(
            Agent.objects.filter(agents_with_photo_q(), id__gt=last_id)
            .order_by("id")
            .values("id", "photo", "photo_url")[:batch_size]
        )
        if not rows:
            return
        yield rows
        last_id = rows[-1]["id"]


def asset_objects_for_agents(*, agent_ids: list[str]) -> dict[str, list[AssetObject]]:
    """Non-deleted records of these agents (live or orphaned), grouped by agent id."""
    grouped: dict[str, list[AssetObject]] = {agent_id: [] for agent_id in agent_ids}
    for obj in AssetObject.objects.filter(agent_id__in=agent_ids, deleted_at__isnull=True):
        grouped[obj.agent_id].append(obj)
    return grouped


def asset_objects_unreferenced():
    """Live records whose agent is gone or no longer has a photo."""
    with_photo = Agent.objects.filter(agents_with_photo_q()).values("id")
    return AssetObject.objects.filter(orphaned_at__isnull=True, deleted_at__isnull=True).exclude(
        agent_id__in=with_photo
    )


def asset_objects_deletable(*, d1_sync_started_at: datetime | None):
    """Orphaned records D1 can no longer point at: orphaned before a successful D1 sync started."""
    if d1_sync_started_at is None:
        return AssetObject.objects.none()
    return AssetObject.objects.filter(
        orphaned_at__isnull=False, orphaned_at__lt=d1_sync_started_at, deleted_at__isnull=True
    ).order_by("id")


def asset_sync_run_latest(*, finished_only: bool = True) -> AssetSyncRun | None:
    runs = AssetSyncRun.objects.all()
    if finished_only:
        runs = runs.filter(finished_at__isnull=False)
    return runs.order_by("-created_at", "-id").first()
