from __future__ import annotations

from datetime import datetime, timedelta

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Now

# Beat checks the schedules every few seconds; below a minute a D1 sync or R2 push would mostly
# meet the previous one's lock. A week is the longest an operator may mean rather than "pause".
SCHEDULE_MIN_INTERVAL_SECONDS = 60
SCHEDULE_MAX_INTERVAL_SECONDS = 7 * 24 * 3600


class SyncChange(models.Model):
    """Change log filled by PostgreSQL triggers on `agents` and `industry_config`.

    One row per changed key per statement (statement-level triggers with
    transition tables), so admin saves, bulk paths and the import pipeline's
    raw SQL are all tracked. `xid` is the writing transaction's
    pg_current_xact_id(); the sync prunes a row once a successful sync's
    snapshot has seen that transaction.
    """

    class Op(models.TextChoices):
        UPSERT = "U", "upsert"
        DELETE = "D", "delete (tombstone)"

    id = models.BigAutoField(primary_key=True)
    table_name = models.CharField(max_length=32)
    row_id = models.TextField()
    op = models.CharField(max_length=1, choices=Op.choices)
    xid = models.BigIntegerField(db_index=True)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "sync_change"
        verbose_name = "pending change"

    def __str__(self) -> str:
        return f"{self.op} {self.table_name}:{self.row_id}"


class SyncState(models.Model):
    """Singleton: where the incremental sync stands.

    `position_xmin` is the xmin of the snapshot of the last successful sync:
    every transaction numbered below it was finished when that snapshot was
    taken and its changes have reached D1.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    position_xmin = models.BigIntegerField(null=True, blank=True)
    position_snapshot = models.TextField(blank=True, default="")
    last_success_run = models.ForeignKey("SyncRun", null=True, blank=True, on_delete=models.SET_NULL)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "sync_state"

    def __str__(self) -> str:
        return f"sync position {self.position_xmin}"


class SyncRunQuerySet(models.QuerySet):
    def real(self):
        """Runs against the real target: the benchmark's runs into a scratch engine are left out."""
        return self.exclude(kind=SyncRun.Kind.BENCHMARK)

    def successful(self):
        """Real runs that completed: every change committed before one started has reached D1."""
        return self.real().filter(status=SyncRun.Status.COMPLETED)

    def running(self):
        return self.filter(status=SyncRun.Status.RUNNING)

    def newest(self) -> SyncRun | None:
        return self.order_by("-started_at", "-id").first()


class SyncRun(models.Model):
    class Kind(models.TextChoices):
        INCREMENTAL = "incremental"
        FULL = "full"
        REPAIR = "repair"
        BENCHMARK = "benchmark", "benchmark (scratch engine)"
        PULL = "pull", "D1 pull (adopt D1 rows)"

    class Status(models.TextChoices):
        # The project's status words (README, "Status words"): "completed" where this said "success".
        RUNNING = "running"
        COMPLETED = "completed"
        PARTIAL = "partial", "partial (rows skipped)"
        FAILED = "failed"
        DRY_RUN = "dry_run", "dry run"
        SKIPPED = "skipped", "skipped (another sync running)"
        REFUSED = "refused", "refused (would lose D1 data)"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.INCREMENTAL)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    reason = models.CharField(max_length=200, blank=True, default="")
    target = models.CharField(max_length=300, blank=True, default="")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    changes_read = models.IntegerField(default=0)
    rows_upserted = models.IntegerField(default=0)
    rows_deleted = models.IntegerField(default=0)
    rows_failed = models.IntegerField(default=0)
    requests = models.IntegerField(default=0)
    retries = models.IntegerField(default=0)
    bytes_sent = models.BigIntegerField(default=0)
    statements = models.IntegerField(default=0)
    max_statement_bytes = models.IntegerField(default=0)
    snapshot = models.TextField(blank=True, default="")
    position_before = models.BigIntegerField(null=True, blank=True)
    position_after = models.BigIntegerField(null=True, blank=True)
    failures = models.JSONField(default=list, blank=True, help_text="Rows D1 rejected: table, id, error.")
    pruned = models.BooleanField(
        default=False, help_text="Run with --prune: D1 agents PostgreSQL lacks deleted."
    )
    unknown_in_d1 = models.IntegerField(
        null=True, blank=True, help_text="D1 agents PostgreSQL does not know (left alone unless pruning)."
    )
    unmanaged_kept = models.JSONField(
        default=list,
        blank=True,
        help_text="D1 agents not written by the back-office whose content differs: left as they are.",
    )
    bookmark = models.CharField(
        max_length=200, blank=True, default="", help_text="D1 Time Travel bookmark taken before deleting."
    )
    restore_hint = models.TextField(blank=True, default="", help_text="How to go back to the bookmark.")
    error = models.TextField(blank=True, default="")

    objects = SyncRunQuerySet.as_manager()

    class Meta:
        db_table = "sync_run"
        ordering = ["-started_at", "-id"]
        verbose_name = "D1 sync run"
        permissions = [("run_sync", "Can run the D1 sync and verification")]
        indexes = [models.Index(fields=["status", "started_at"], name="sync_run_status_started")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} sync #{self.pk} ({self.status})"


class VerifyRun(models.Model):
    """Result of comparing PostgreSQL with D1 (d1_verify)."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    clean = models.BooleanField(default=False)
    repaired = models.BooleanField(default=False)
    ranges_checked = models.IntegerField(default=0)
    drifted_ranges = models.JSONField(default=list, blank=True)
    count_drift = models.JSONField(default=list, blank=True)
    industry_drift = models.JSONField(default=list, blank=True)
    rows_repaired = models.IntegerField(default=0)
    error = models.TextField(blank=True, default="")

    class Meta:
        db_table = "sync_verify_run"
        ordering = ["-started_at", "-id"]
        verbose_name = "D1 verification"

    def __str__(self) -> str:
        return f"verify #{self.pk} ({'clean' if self.clean else 'drift'})"


class D1MigrationRecord(models.Model):
    """How `d1_migrate` brought each D1 migration onto a target (D1 keeps only the name).

    `recorded` means the target already had every object the migration
    creates (a D1 built by `wrangler d1 execute --file`), so only its
    `d1_migrations` row was written; `partial` means only the missing
    statements ran.
    """

    class Action(models.TextChoices):
        APPLIED = "applied"
        RECORDED = "recorded", "recorded as present"
        PARTIAL = "partial", "missing statements applied"

    target = models.CharField(max_length=300)
    name = models.CharField(max_length=200)
    action = models.CharField(max_length=16, choices=Action.choices)
    statements_run = models.IntegerField(default=0)
    detail = models.TextField(blank=True, default="")
    recorded_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "sync_d1_migration_record"
        ordering = ["-recorded_at", "-id"]
        verbose_name = "D1 migration record"

    def __str__(self) -> str:
        return f"{self.name} {self.action} on {self.target}"


class Schedule(models.Model):
    """An operator-controlled beat schedule (sync.schedules.SCHEDULES says which task each key runs).

    Beat's scheduler (sync.scheduler) reads these rows every few seconds, so a
    pause or a new interval takes effect without restarting it. An empty
    interval means the default from settings, so a deploy that changes the
    setting still moves every schedule nobody has overridden.
    """

    key = models.CharField(max_length=40, primary_key=True)
    enabled = models.BooleanField(
        default=True, help_text="Paused schedules send nothing; a run already started finishes."
    )
    interval_seconds = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[
            MinValueValidator(SCHEDULE_MIN_INTERVAL_SECONDS),
            MaxValueValidator(SCHEDULE_MAX_INTERVAL_SECONDS),
        ],
        verbose_name="interval (seconds)",
        help_text="Empty: the default from settings.",
    )
    last_sent_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When beat last sent the task (not when it ran)."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "sync_schedule"
        ordering = ["key"]

    def __str__(self) -> str:
        spec = self.spec
        return spec.label if spec else self.key

    @property
    def spec(self):
        from .schedules import SCHEDULES

        return SCHEDULES.get(self.key)

    @property
    def interval_default(self) -> int | None:
        spec = self.spec
        return spec.interval_default() if spec else None

    @property
    def interval_effective(self) -> int | None:
        return self.interval_seconds or self.interval_default

    @property
    def next_due_at(self) -> datetime | None:
        """When beat sends next (at its first check past this instant); None when paused or never sent.

        A never-sent schedule goes at beat's next check, as does one whose time has passed.
        """
        if not self.enabled or self.interval_effective is None or self.last_sent_at is None:
            return None
        return self.last_sent_at + timedelta(seconds=self.interval_effective)
