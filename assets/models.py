"""Bookkeeping for the public R2 bucket: one row per object we put there, one per push run."""

from django.db import models
from django.utils import timezone


class AssetObject(models.Model):
    """An object the push put (or will delete) in the bucket.

    The push trusts these rows instead of HEAD-ing the bucket (`--verify`
    checks them). `agent_id` is a plain column, not a foreign key: the rows
    must outlive a deleted agent until its objects are removed from the bucket.
    """

    class Kind(models.TextChoices):
        ORIGINAL = "original", "Original"
        THUMB = "thumb", "Thumbnail"

    agent_id = models.CharField(max_length=64, db_index=True)
    key = models.CharField(max_length=500, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # Hash of the bytes of this object (for a thumbnail, of the thumbnail);
    # the key carries a prefix of the original's hash.
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    content_type = models.CharField(max_length=100)
    # Name of the photo in Django's default storage the object was made from;
    # an unchanged name lets the push skip re-reading and re-hashing the file.
    source_name = models.CharField(max_length=500, blank=True, default="")
    uploaded_at = models.DateTimeField(default=timezone.now)
    # Set once no agent references the object any more; the object is deleted
    # only after a D1 sync that started later (D1 no longer points at it).
    orphaned_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["agent_id", "key"]
        indexes = [
            models.Index(
                fields=["orphaned_at"],
                name="assets_obj_orphaned_idx",
                condition=models.Q(orphaned_at__isnull=False, deleted_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return self.key

    @property
    def is_live(self) -> bool:
        return self.orphaned_at is None and self.deleted_at is None


class AssetSyncRun(models.Model):
    class Status(models.TextChoices):
        # The project's status words (README, "Status words"): "pending" and "completed" where
        # this said "queued" and "succeeded".
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        PARTIAL = "partial", "Partial"  # bucket fine, some agents' photos unreadable
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"  # another run held the lock

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(max_length=200, blank=True, default="")
    dry_run = models.BooleanField(default=False)
    verify = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    agents_seen = models.IntegerField(default=0)
    agents_updated = models.IntegerField(default=0)
    agents_failed = models.IntegerField(default=0)
    objects_put = models.IntegerField(default=0)
    objects_skipped = models.IntegerField(default=0)
    objects_orphaned = models.IntegerField(default=0)
    objects_deleted = models.IntegerField(default=0)
    bytes_put = models.BigIntegerField(default=0)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"R2 sync run {self.pk} ({self.status})"

    def as_dict(self) -> dict:
        return {
            "id": self.pk,
            "status": self.status,
            "reason": self.reason,
            "dry_run": self.dry_run,
            "verify": self.verify,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_seconds": self.duration_seconds,
            "agents_seen": self.agents_seen,
            "agents_updated": self.agents_updated,
            "agents_failed": self.agents_failed,
            "objects_put": self.objects_put,
            "objects_skipped": self.objects_skipped,
            "objects_orphaned": self.objects_orphaned,
            "objects_deleted": self.objects_deleted,
            "bytes_put": self.bytes_put,
            "error": self.error,
        }
