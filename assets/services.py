"""Writes for the asset push: upload agents' photos and thumbnails to the bucket, clean up safely.

One run, three phases:
1. push: for every agent with a photo, put the original and a thumbnail under
   content-hash keys (skipping what the records say is already there) and
   point `photo_url` at the original;
2. orphan: records no agent references any more get `orphaned_at`;
3. delete: orphaned objects are removed once a successful D1 sync has
   started after the orphaning, i.e. once D1 cannot point at them any more.
"""

import hashlib
import io
import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError
from django.core.exceptions import ValidationError
from django.utils import timezone

from agents.models import Agent
from estateflow.storage import shared_storage
from sync.locks import advisory_lock

from . import selectors
from .images import THUMB_CONTENT_TYPE, THUMB_EXT, thumbnail_make
from .models import AssetObject, AssetSyncRun
from .storage import IMMUTABLE_CACHE_CONTROL, Bucket, bucket_get
from .validators import AGENT_PHOTO_MAX_BYTES, agent_photo_validate

logger = logging.getLogger(__name__)

# Any constant works; it only has to differ from the project's other advisory lock keys (sync.locks).
ADVISORY_LOCK_KEY = 0x52324153  # "R2AS"
MAX_ERRORS_KEPT = 20


class BucketUnavailable(Exception):
    """The bucket kept failing after the client's retries; the run stops and is retried later."""


@dataclass
class _Counters:
    agents_seen: int = 0
    agents_updated: int = 0
    agents_failed: int = 0
    objects_put: int = 0
    objects_skipped: int = 0
    objects_orphaned: int = 0
    objects_deleted: int = 0
    bytes_put: int = 0
    errors: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        logger.warning("R2 sync: %s", message)
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(message)

    def save_to(self, run: AssetSyncRun) -> None:
        for name in (
            "agents_seen",
            "agents_updated",
            "agents_failed",
            "objects_put",
            "objects_skipped",
            "objects_orphaned",
            "objects_deleted",
            "bytes_put",
        ):
            setattr(run, name, getattr(self, name))
        run.error = "\n".join(self.errors)


def _bucket_call(func, **kwargs):
    try:
        return func(**kwargs)
    except (BotoCoreError, ClientError) as exc:
        # botocore already retried (standard mode); what reaches here is not transient.
        raise BucketUnavailable(f"{func.__name__} {kwargs.get('key', '')}: {exc}") from exc


def _put(*, bucket: Bucket, key: str, body: bytes, content_type: str, dry_run: bool, counters: _Counters):
    counters.objects_put += 1
    counters.bytes_put += len(body)
    if not dry_run:
        _bucket_call(
            bucket.put, key=key, body=body, content_type=content_type, cache_control=IMMUTABLE_CACHE_CONTROL
        )


def _record_upsert(*, agent_id: str, key: str, kind: str, body: bytes, content_type: str, source_name: str):
    AssetObject.objects.update_or_create(
        key=key,
        defaults={
            "agent_id": agent_id,
            "kind": kind,
            "sha256": hashlib.sha256(body).hexdigest(),
            "size": len(body),
            "content_type": content_type,
            "source_name": source_name,
            "uploaded_at": timezone.now(),
            "orphaned_at": None,
            "deleted_at": None,
        },
    )


def _record_present(*, record: AssetObject | None, bucket: Bucket, verify: bool) -> bool:
    """Whether the object behind `record` can be trusted to be in the bucket."""
    if record is None or record.deleted_at is not None:
        return False
    if not verify:
        return True
    head = _bucket_call(bucket.head, key=record.key)
    return head is not None and head.size == record.size


def _photo_read(name: str) -> bytes:
    # The limit is checked before reading so an oversized file that reached
    # storage some other way cannot exhaust a worker's memory.
    size = shared_storage().size(name)
    if size > AGENT_PHOTO_MAX_BYTES:
        raise ValidationError(f"{name}: {size} bytes, over the {AGENT_PHOTO_MAX_BYTES} byte limit.")
    with shared_storage().open(name, "rb") as handle:
        return handle.read(AGENT_PHOTO_MAX_BYTES + 1)


def _agent_push(
    *,
    row: dict,
    records: list[AssetObject],
    bucket: Bucket,
    dry_run: bool,
    verify: bool,
    counters: _Counters,
) -> set[str] | None:
    """Publish one agent's photo; return the keys it references, or None if it could not be published."""
    agent_id, photo_name = row["id"], row["photo"]
    by_key = {r.key: r for r in records}

    # Fast path: same stored file as last time and both objects recorded, so
    # nothing is read, hashed or sent.
    original = next(
        (r for r in records if r.kind == AssetObject.Kind.ORIGINAL and r.source_name == photo_name), None
    )
    thumb = None
    if original is not None:
        thumb_key = original.key.rsplit(".", 1)[0] + f"-thumb.{THUMB_EXT}"
        thumb = by_key.get(thumb_key)
    if not verify and original is not None and thumb is not None and thumb.deleted_at is None:
        counters.objects_skipped += 2
        return _agent_point(
            row=row,
            keys={original.key, thumb.key},
            original_key=original.key,
            records=records,
            dry_run=dry_run,
            counters=counters,
        )

    try:
        data = _photo_read(photo_name)
        info = agent_photo_validate(io.BytesIO(data))
    except ValidationError as exc:
        counters.agents_failed += 1
        counters.error(f"agent {agent_id}: photo {photo_name!r} rejected: {'; '.join(exc.messages)}")
        return None
    except OSError as exc:
        counters.agents_failed += 1
        counters.error(f"agent {agent_id}: photo {photo_name!r} cannot be read: {exc}")
        return None
    sha = hashlib.sha256(data).hexdigest()
    original_key = selectors.asset_key(agent_id=agent_id, sha256=sha, ext=info.ext)
    thumb_key = selectors.asset_key(agent_id=agent_id, sha256=sha, ext=THUMB_EXT, thumb=True)

    record = by_key.get(original_key)
    if _record_present(record=record, bucket=bucket, verify=verify) and record.sha256 == sha:
        counters.objects_skipped += 1
        if not dry_run and record.source_name != photo_name:
            # Same bytes under a new stored name: remember the name for the fast path.
            AssetObject.objects.filter(pk=record.pk).update(source_name=photo_name)
    else:
        _put(
            bucket=bucket,
            key=original_key,
            body=data,
            content_type=info.content_type,
            dry_run=dry_run,
            counters=counters,
        )
        if not dry_run:
            _record_upsert(
                agent_id=agent_id,
                key=original_key,
                kind=AssetObject.Kind.ORIGINAL,
                body=data,
                content_type=info.content_type,
                source_name=photo_name,
            )

    if _record_present(record=by_key.get(thumb_key), bucket=bucket, verify=verify):
        counters.objects_skipped += 1
    else:
        thumb_body = thumbnail_make(data)
        _put(
            bucket=bucket,
            key=thumb_key,
            body=thumb_body,
            content_type=THUMB_CONTENT_TYPE,
            dry_run=dry_run,
            counters=counters,
        )
        if not dry_run:
            _record_upsert(
                agent_id=agent_id,
                key=thumb_key,
                kind=AssetObject.Kind.THUMB,
                body=thumb_body,
                content_type=THUMB_CONTENT_TYPE,
                source_name=photo_name,
            )
    return _agent_point(
        row=row,
        keys={original_key, thumb_key},
        original_key=original_key,
        records=records,
        dry_run=dry_run,
        counters=counters,
    )


def _stem(key: str) -> str:
    """`agents/<id>/<hash>` for both the original and its `-thumb` sibling."""
    return key.rsplit(".", 1)[0].removesuffix("-thumb")


def _agent_point(
    *,
    row: dict,
    keys: set[str],
    original_key: str,
    records: list[AssetObject],
    dry_run: bool,
    counters: _Counters,
) -> set[str] | None:
    """Point photo_url at the original; revive orphaned records that are referenced again."""
    url = selectors.asset_public_url(key=original_key)
    if row["photo_url"] != url:
        counters.agents_updated += 1
        if not dry_run:
            # .update() with updated_at: the D1 sync's triggers see the write
            # (save() is not used: it would rewrite every column). Filtering on
            # the photo we read makes a concurrent photo change win; the next
            # run publishes that one.
            updated = Agent.objects.filter(pk=row["id"], photo=row["photo"]).update(
                photo_url=url, updated_at=timezone.now()
            )
            if not updated:
                counters.agents_updated -= 1
                return None
            # If PG pointed at one of our orphaned objects until now (e.g. a stale
            # admin form wrote an old URL back), D1 may point at it too: restart
            # its clock so it outlives the next D1 sync.
            stems = [
                _stem(r.key)
                for r in records
                if r.orphaned_at is not None and selectors.asset_public_url(key=r.key) == row["photo_url"]
            ]
            still_referenced = [r.pk for r in records if r.orphaned_at is not None and _stem(r.key) in stems]
            if still_referenced:
                AssetObject.objects.filter(pk__in=still_referenced).update(orphaned_at=timezone.now())
    revived = [r.pk for r in records if r.key in keys and r.orphaned_at is not None]
    if revived and not dry_run:
        AssetObject.objects.filter(pk__in=revived).update(orphaned_at=None)
    return keys


def _orphan(
    *,
    records_by_agent: dict[str, list[AssetObject]],
    keys_by_agent: dict[str, set[str]],
    dry_run: bool,
    counters: _Counters,
) -> None:
    stale = [
        r.pk
        for agent_id, keys in keys_by_agent.items()
        for r in records_by_agent.get(agent_id, [])
        if r.key not in keys and r.orphaned_at is None
    ]
    counters.objects_orphaned += len(stale)
    if stale and not dry_run:
        # Stamped after photo_url was committed, so any D1 sync starting later
        # reads the new URL: the ordering the delete phase relies on.
        AssetObject.objects.filter(pk__in=stale, orphaned_at__isnull=True).update(orphaned_at=timezone.now())


def _orphan_unreferenced(*, dry_run: bool, counters: _Counters) -> None:
    """Orphan the objects of deleted agents and of agents whose photo was removed."""
    unreferenced = list(selectors.asset_objects_unreferenced())
    if not unreferenced:
        return
    originals = [r for r in unreferenced if r.kind == AssetObject.Kind.ORIGINAL]
    for record in originals:
        url = selectors.asset_public_url(key=record.key)
        if not dry_run:
            # The agent still exists but lost its photo: stop pointing at ours.
            Agent.objects.filter(pk=record.agent_id, photo_url=url).filter(
                ~selectors.agents_with_photo_q()
            ).update(photo_url=None, updated_at=timezone.now())
    counters.objects_orphaned += len(unreferenced)
    if not dry_run:
        AssetObject.objects.filter(pk__in=[r.pk for r in unreferenced], orphaned_at__isnull=True).update(
            orphaned_at=timezone.now()
        )


def _delete_orphans(*, bucket: Bucket, dry_run: bool, counters: _Counters) -> None:
    started_at = selectors.d1_last_successful_sync_started_at()
    for record in selectors.asset_objects_deletable(d1_sync_started_at=started_at).iterator():
        url = selectors.asset_public_url(key=record.key)
        if Agent.objects.filter(photo_url=url).exists():
            # Someone wrote the old URL back (e.g. a stale admin form). Keep the
            # object and restart its clock; the push re-points the agent.
            if not dry_run:
                AssetObject.objects.filter(pk=record.pk).update(orphaned_at=timezone.now())
            continue
        counters.objects_deleted += 1
        if not dry_run:
            _bucket_call(bucket.delete, key=record.key)
            AssetObject.objects.filter(pk=record.pk).update(deleted_at=timezone.now())


def r2_sync_run_create(*, reason: str, dry_run: bool = False, verify: bool = False) -> AssetSyncRun:
    return AssetSyncRun.objects.create(reason=reason[:200], dry_run=dry_run, verify=verify)


def r2_sync_run(
    *,
    run_id: int | None = None,
    reason: str = "",
    dry_run: bool = False,
    verify: bool = False,
    bucket: Bucket | None = None,
    batch_size: int = 500,
) -> AssetSyncRun:
    """Run (or resume) one asset push and return its record.

    Idempotent: a finished run is returned as is; a pending or interrupted
    one (worker crash, redelivery) simply runs again, since every step is
    guided by the records and content-hash keys. A bucket failure that
    survives the client's retries ends the run as "failed" without raising.
    """
    if run_id is None:
        run = r2_sync_run_create(reason=reason, dry_run=dry_run, verify=verify)
    else:
        run = AssetSyncRun.objects.get(pk=run_id)
        if run.finished_at is not None:
            return run
        dry_run, verify = run.dry_run, run.verify

    # A dry run writes nothing, so it never waits for (or blocks) a real run.
    with nullcontext(True) if dry_run else advisory_lock(ADVISORY_LOCK_KEY) as acquired:
        if not acquired:
            run.status = AssetSyncRun.Status.SKIPPED
            run.error = "Another asset sync run holds the lock."
            run.finished_at = timezone.now()
            run.save()
            return run
        return _r2_sync_run_locked(
            run=run, dry_run=dry_run, verify=verify, bucket=bucket, batch_size=batch_size
        )


def _r2_sync_run_locked(
    *, run: AssetSyncRun, dry_run: bool, verify: bool, bucket: Bucket | None, batch_size: int
) -> AssetSyncRun:
    counters = _Counters()
    run.status = AssetSyncRun.Status.RUNNING
    run.started_at = timezone.now()
    run.save(update_fields=["status", "started_at"])
    clock = time.monotonic()
    try:
        bucket = bucket or bucket_get()
        for rows in selectors.agents_with_photo_batches(batch_size=batch_size):
            records_by_agent = selectors.asset_objects_for_agents(agent_ids=[r["id"] for r in rows])
            keys_by_agent: dict[str, set[str]] = {}
            for row in rows:
                counters.agents_seen += 1
                keys = _agent_push(
                    row=row,
                    records=records_by_agent[row["id"]],
                    bucket=bucket,
                    dry_run=dry_run,
                    verify=verify,
                    counters=counters,
                )
                if keys is not None:
                    keys_by_agent[row["id"]] = keys
            _orphan(
                records_by_agent=records_by_agent,
                keys_by_agent=keys_by_agent,
                dry_run=dry_run,
                counters=counters,
            )
            # Progress for the admin page.
            counters.save_to(run)
            run.save()
        _orphan_unreferenced(dry_run=dry_run, counters=counters)
        _delete_orphans(bucket=bucket, dry_run=dry_run, counters=counters)
        run.status = AssetSyncRun.Status.PARTIAL if counters.agents_failed else AssetSyncRun.Status.COMPLETED
    except BucketUnavailable as exc:
        counters.error(f"bucket unavailable: {exc}")
        run.status = AssetSyncRun.Status.FAILED
    except Exception as exc:
        counters.error(f"unexpected error: {exc!r}")
        run.status = AssetSyncRun.Status.FAILED
        raise
    finally:
        counters.save_to(run)
        run.finished_at = timezone.now()
        run.duration_seconds = round(time.monotonic() - clock, 3)
        run.save()
    return run


def r2_sync_request(*, reason: str) -> None:
    """Queue an asset push (Celery task assets.r2_sync_run); returns at once."""
    from .tasks import r2_sync_run_task

    run = r2_sync_run_create(reason=reason)
    r2_sync_run_task.delay(run_id=run.pk)
