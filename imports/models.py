from django.conf import settings
from django.db import models

from estateflow.storage import shared_storage
from jobs.models import ChunkedJob, JobChunk, TimedJobChunk


class ImportJob(ChunkedJob):
    class Status(models.TextChoices):
        PENDING = "pending"
        PLANNING = "planning"
        RUNNING = "running"
        COMPLETED = "completed"
        COMPLETED_WITH_ERRORS = "completed_with_errors"
        FAILED = "failed"
        CANCELLED = "cancelled"
        ROLLING_BACK = "rolling_back"
        ROLLED_BACK = "rolled_back"

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "Excel (XLSX)"
        JSON = "json", "JSON (array of objects)"
        ZIP = "zip", "ZIP (a data file plus photos)"

    class Mode(models.TextChoices):
        UPSERT = "upsert", "Create and update"
        CREATE_ONLY = "create_only", "Create only"
        UPDATE_ONLY = "update_only", "Update only"

    class Source(models.TextChoices):
        FILE = "file", "File"
        D1 = "d1", "D1 pull"

    TERMINAL = frozenset({"completed", "completed_with_errors", "failed", "cancelled", "rolled_back"})

    file = models.FileField(upload_to="imports/%Y/%m/%d/", max_length=300, storage=shared_storage)
    original_name = models.CharField(max_length=255)
    format = models.CharField(max_length=10, choices=Format.choices)
    # Where the rows came from: an uploaded file, or a pull of the live D1 (manage.py d1_pull).
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.FILE)
    encoding = models.CharField(
        max_length=40, blank=True, default="", help_text="Blank: UTF-8 (with or without BOM)."
    )
    mode = models.CharField(max_length=20, choices=Mode.choices, default=Mode.UPSERT)
    dry_run = models.BooleanField(default=False)
    chunk_size = models.PositiveIntegerField(default=5000)
    status = models.CharField(max_length=30, choices=Status.choices, default=Status.PENDING, db_index=True)

    total_rows = models.PositiveIntegerField(null=True, blank=True)
    processed_rows = models.PositiveIntegerField(default=0)
    created_rows = models.PositiveIntegerField(default=0)
    updated_rows = models.PositiveIntegerField(default=0)
    unchanged_rows = models.PositiveIntegerField(default=0)
    failed_rows = models.PositiveIntegerField(default=0)
    # Rows imported (created, updated or unchanged) that carry at least one warning.
    warned_rows = models.PositiveIntegerField(default=0)

    # What planning learnt about the file: its header mapped to D1 columns.
    header = models.JSONField(default=list, blank=True)
    columns = models.JSONField(default=list, blank=True, help_text="D1 column per file column, or null.")
    warnings = models.JSONField(default=list, blank=True)
    # XLSX and JSON files are staged as UTF-8 CSV so chunks can seek by byte offset.
    staged_file = models.CharField(max_length=300, blank=True, default="")

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    planned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "import_jobs"
        ordering = ["-created_at"]
        permissions = [
            ("run_import", "Can run agent imports"),
            ("rollback_import", "Can roll back agent imports"),
        ]

    def __str__(self) -> str:
        return f"Import #{self.pk} {self.original_name}"


class ImportChunk(TimedJobChunk):
    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    first_row = models.PositiveIntegerField(help_text="0-based index of the chunk's first data row.")
    row_count = models.PositiveIntegerField()
    first_line = models.PositiveIntegerField(help_text="Line in the file where the first row starts.")
    byte_start = models.BigIntegerField()
    byte_end = models.BigIntegerField()
    # {row index within the chunk: line of the later row that supersedes it}
    superseded = models.JSONField(default=dict, blank=True)
    # (offset from byte_start, line) of each record as uint32 pairs (csv_reader.ChunkRecords);
    # emptied once the chunk is done.
    record_index = models.BinaryField(default=b"", blank=True)
    created_rows = models.PositiveIntegerField(default=0)
    updated_rows = models.PositiveIntegerField(default=0)
    unchanged_rows = models.PositiveIntegerField(default=0)
    failed_rows = models.PositiveIntegerField(default=0)
    warned_rows = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "import_chunks"
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="uniq_import_chunk_index")]
        indexes = [models.Index(fields=["job", "status"], name="idx_import_chunk_status")]

    def __str__(self) -> str:
        return f"chunk {self.index} of job {self.job_id}"


class ImportRowError(models.Model):
    """A problem with one row: an error rejected it, a warning was imported with it."""

    class Severity(models.TextChoices):
        ERROR = "error"
        WARNING = "warning"

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="row_errors")
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.ERROR)
    chunk_index = models.PositiveIntegerField()
    line = models.PositiveIntegerField(help_text="Line in the file where the row starts.")
    column = models.CharField(max_length=100, blank=True, default="")
    value = models.CharField(max_length=200, blank=True, default="", help_text="Excerpt of the cell.")
    message = models.TextField()
    # The row's cells as read, for the rejected- and warned-rows downloads (first entry
    # of a row per severity only).
    raw_row = models.JSONField(null=True, blank=True)

    class Meta:
        db_table = "import_row_errors"
        ordering = ["job", "line", "id"]
        # The job page and the downloads read one severity of a job in line order.
        indexes = [models.Index(fields=["job", "severity", "line"], name="idx_import_error_severity")]

    def __str__(self) -> str:
        return f"line {self.line} {self.column} ({self.severity}): {self.message}"


class ImportJournalEntry(models.Model):
    """One created or updated agent, with the prior row for updates — what rollback undoes.

    `before` is the whole `agents` row as jsonb (to_jsonb), so a rollback
    restores every column exactly; `after_updated_at` is the updated_at the
    import wrote, so a rollback can tell whether the row changed since.
    """

    class Action(models.TextChoices):
        CREATE = "create"
        UPDATE = "update"

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="journal", db_index=False)
    chunk_index = models.PositiveIntegerField()
    agent_id = models.CharField(max_length=64)
    action = models.CharField(max_length=10, choices=Action.choices)
    before = models.JSONField(null=True, blank=True)
    after_updated_at = models.DateTimeField()

    class Meta:
        db_table = "import_journal"
        indexes = [
            models.Index(fields=["job", "chunk_index"], name="idx_import_journal_chunk"),
            models.Index(fields=["agent_id"], name="idx_import_journal_agent"),
            # Rollback looks up an agent's first and last entry within a job.
            models.Index(fields=["job", "agent_id", "id"], name="idx_import_journal_job_agent"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.agent_id} (job {self.job_id})"


class ImportRollback(ChunkedJob):
    """An undo of one import job, from its journal; chunked like the import."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        COMPLETED = "completed"
        REFUSED = "refused"  # rows changed since the import and force was not given
        FAILED = "failed"

    TERMINAL = frozenset({"completed", "refused", "failed"})

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="rollbacks")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    force = models.BooleanField(default=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    previous_status = models.CharField(max_length=30, blank=True, default="")
    conflict_count = models.PositiveIntegerField(default=0)
    # [{agent_id, name, updated_at, import_wrote_at, deleted}], first 1,000.
    conflicts = models.JSONField(default=list, blank=True)
    deleted_rows = models.PositiveIntegerField(default=0)
    restored_rows = models.PositiveIntegerField(default=0)
    skipped_rows = models.PositiveIntegerField(default=0)
    overwritten_rows = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "import_rollbacks"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"rollback of import #{self.job_id} ({self.status})"


class ImportRollbackChunk(JobChunk):
    """The undo of one import chunk's journal entries; done-marked with its writes."""

    rollback = models.ForeignKey(ImportRollback, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField(help_text="The import chunk whose journal this undoes.")
    entries = models.PositiveIntegerField(default=0)
    deleted_rows = models.PositiveIntegerField(default=0)
    restored_rows = models.PositiveIntegerField(default=0)
    skipped_rows = models.PositiveIntegerField(default=0)
    overwritten_rows = models.PositiveIntegerField(default=0)
    skipped_ids = models.JSONField(default=list, blank=True)
    overwritten_ids = models.JSONField(default=list, blank=True)

    class Meta:
        db_table = "import_rollback_chunks"
        ordering = ["rollback", "index"]
        constraints = [
            models.UniqueConstraint(fields=["rollback", "index"], name="uniq_import_rollback_chunk_index")
        ]

    def __str__(self) -> str:
        return f"rollback chunk {self.index} of {self.rollback_id}"


class ImportRowDigest(models.Model):
    """The last file row an import applied to an agent, and the agent's row version right after.

    PostgreSQL-only bookkeeping (imports.digests): no sync trigger watches this
    table and nothing sends it to D1. Not a foreign key to agents on purpose:
    a deleted agent's digest matches nothing (the lookup joins agents), and a
    foreign key would cost a check per row on every import write and every delete.
    """

    agent_id = models.CharField(max_length=64, primary_key=True)
    # 128-bit keyed BLAKE2b of the row's bytes; the key is the job's rules, encoding and column mapping.
    digest = models.BinaryField(max_length=16, db_index=True)
    # The agents row version the import left: a write by any other path changes xmin.
    agent_xmin = models.BigIntegerField()
    agent_updated_at = models.DateTimeField()
    # The row carried no id and was matched on (industry, state, licence): that key must still be unique.
    by_licence = models.BooleanField(default=False)
    # The row's rule warnings, [[column, value excerpt, message], ...], reported again when it is skipped.
    warnings = models.JSONField(null=True, blank=True)

    class Meta:
        db_table = "import_row_digests"

    def __str__(self) -> str:
        return f"digest of agent {self.agent_id}"
