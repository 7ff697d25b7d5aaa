"""Abstract job and chunk models: the columns and queries the runner relies on.

A concrete chunk model adds its foreign key to the job (related_name
"chunks"), its `index` and its counters; a concrete job model adds its
`Status` (with at least RUNNING and FAILED), `status` and `TERMINAL`.
"""

from django.db import models
from django.db.models import Count, Q, Sum
from django.utils import timezone


class ChunkStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class JobQuerySet(models.QuerySet):
    def running(self):
        return self.filter(status=self.model.Status.RUNNING)


class ChunkedJob(models.Model):
    """A job cut into chunks; its counts are the sums of its done chunks' counts."""

    TERMINAL: frozenset[str] = frozenset()

    error_message = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        abstract = True

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL


class ChunkQuerySet(models.QuerySet):
    def pending(self):
        return self.filter(status=ChunkStatus.PENDING)

    def running(self):
        return self.filter(status=ChunkStatus.RUNNING)

    def open(self):
        """Chunks that may still run: the job is not over while one is left."""
        return self.filter(status__in=[ChunkStatus.PENDING, ChunkStatus.RUNNING])

    def not_done(self):
        return self.exclude(status=ChunkStatus.DONE)

    def failed(self):
        return self.filter(status=ChunkStatus.FAILED)

    def totals(self, **sums: str) -> dict[str, int]:
        """{name: sum of a chunk field over the done chunks} plus chunk tallies (total, done, failed_chunks).

        The one definition of a job's counts: a chunk's counters are written in
        the transaction that does its work, so summing done chunks only can
        never count a chunk twice or count one that was rolled back.
        """
        done = Q(status=ChunkStatus.DONE)
        totals = self.aggregate(
            total=Count("id"),
            done=Count("id", filter=done),
            failed_chunks=Count("id", filter=Q(status=ChunkStatus.FAILED)),
            **{name: Sum(field, filter=done) for name, field in sums.items()},
        )
        return {key: value or 0 for key, value in totals.items()}


class JobChunk(models.Model):
    """One chunk: done (with its writes) in one transaction, at most MAX_CHUNK_ATTEMPTS times."""

    Status = ChunkStatus

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    objects = ChunkQuerySet.as_manager()

    class Meta:
        abstract = True


class TimedJobChunk(JobChunk):
    """A chunk that also records when its last attempt started and ended.

    The runner then also tells a job whose chunk messages were lost (no
    chunk finished for a while) and re-sends its pending chunks.
    """

    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta(JobChunk.Meta):
        abstract = True
