from django.conf import settings
from django.db import models

from jobs.models import ChunkedJob, TimedJobChunk


class ExportJob(ChunkedJob):
    """One agent export: the changelist's filters and search, the columns, the file it made.

    A small selection is written in the request (`direct`, no stored file);
    a larger one is planned into ranges of agent ids, each chunk writes its
    part to the shared storage, and the assembly joins the parts into `file`.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        # Every chunk wrote its part; the parts are being joined into one file.
        ASSEMBLING = "assembling"
        COMPLETED = "completed"
        FAILED = "failed"

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "Excel (XLSX)"
        JSON = "json", "JSON (array of objects)"

    TERMINAL = frozenset({"completed", "failed"})

    format = models.CharField(max_length=10, choices=Format.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    # The agent changelist's query string (filters, search): the worker re-applies it through
    # the admin's own ChangeList, so the file holds what the list showed.
    query_string = models.TextField(blank=True, default="")
    # D1 column names, in file order; contact columns only if the user could export them.
    columns = models.JSONField(default=list)
    contains_contacts = models.BooleanField(default=False)
    direct = models.BooleanField(default=False, help_text="Written in the request; no file is kept.")
    chunk_size = models.PositiveIntegerField(default=10_000)
    total_rows = models.PositiveIntegerField(null=True, blank=True)
    exported_rows = models.PositiveIntegerField(default=0)
    # Name in the shared storage (storages["imports"]), once assembled.
    file = models.CharField(max_length=300, blank=True, default="")
    file_size = models.BigIntegerField(null=True, blank=True)
    # When the file was deleted after EXPORT_RETENTION_DAYS (it holds personal data; start a new export).
    file_expired_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        db_table = "export_jobs"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Export #{self.pk} ({self.format})"


class ExportChunk(TimedJobChunk):
    """The agents with id in (id_after, id_through] that match the job's filters, as one part file."""

    job = models.ForeignKey(ExportJob, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    # Exclusive lower bound; null for the first chunk.
    id_after = models.CharField(max_length=64, null=True, blank=True)
    id_through = models.CharField(max_length=64)
    planned_rows = models.PositiveIntegerField(default=0)
    row_count = models.PositiveIntegerField(default=0)
    part_name = models.CharField(max_length=300, blank=True, default="")
    part_bytes = models.BigIntegerField(default=0)

    class Meta:
        db_table = "export_chunks"
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="uniq_export_chunk_index")]
        indexes = [models.Index(fields=["job", "status"], name="idx_export_chunk_status")]

    def __str__(self) -> str:
        return f"chunk {self.index} of export {self.job_id}"
