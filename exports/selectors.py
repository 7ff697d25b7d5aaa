"""Reads for agent exports: the changelist's rows, the chunk plan, the rows as text, progress."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

from django.contrib import admin
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.db.models import QuerySet
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from agents.models import Agent
from agents.resources import CONTACT_COLUMNS, AgentResource, agent_export_resource_for

from .models import ExportJob

# Rows fetched per round trip of the server-side cursor while a part is written.
ROWS_PER_FETCH = 2000


def export_changelist_queryset(*, query_string: str, user) -> QuerySet:
    """The agents the agent changelist lists for this query string (filters and search), for `user`.

    The query string goes back through the agent ModelAdmin's own ChangeList
    (what its Export button already used), in the request and again on the
    worker, so every list filter and the search mean exactly what the list
    showed. Raises IncorrectLookupParameters for parameters the list refuses.
    """
    model_admin = admin.site.get_model_admin(Agent)
    path = reverse("admin:agents_agent_changelist")
    request = RequestFactory().get(f"{path}?{query_string}" if query_string else path)
    request.user = user if user is not None else AnonymousUser()
    return model_admin.get_export_queryset(request)


def export_columns_allowed(*, user, requested: Sequence[str] | None = None) -> list[str]:
    """The requested columns (all when None) that `user` may export, in export order.

    Contact columns only with agents.export_contacts_agent (agents.resources decides).
    """
    allowed = agent_export_resource_for(user)().get_export_order()
    if requested is None:
        return list(allowed)
    wanted = set(requested)
    return [column for column in allowed if column in wanted]


def export_columns_contain_contacts(columns: Sequence[str]) -> bool:
    return bool(set(columns) & set(CONTACT_COLUMNS))


def export_chunk_bounds(*, queryset: QuerySet, chunk_size: int) -> list[tuple[str, int]]:
    """[(last id of the chunk, rows up to and including it)] for chunks of `chunk_size` rows by id.

    One pass over the matching ids in the database: only every chunk's last
    id comes back, never the ids themselves.
    """
    sql, params = queryset.order_by().values_list("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, rn FROM (SELECT s.id, row_number() OVER (ORDER BY s.id) AS rn, "  # noqa: S608
            f"count(*) OVER () AS total FROM ({sql}) AS s (id)) numbered "
            "WHERE rn %% %s = 0 OR rn = total ORDER BY rn",
            [*params, chunk_size],
        )
        return [(agent_id, int(rn)) for agent_id, rn in cursor.fetchall()]


def export_rows(
    *, queryset: QuerySet, columns: Sequence[str], id_after: str | None = None, id_through: str | None = None
) -> Iterator[list[str]]:
    """The agents of `queryset` with id in (id_after, id_through], by id, as the resource renders them.

    AgentResource (agents.resources) renders every cell and escapes formulas,
    as the in-request export did; the rows stream from a server-side cursor.
    """
    resource = AgentResource()
    fields = resource.get_export_fields(columns)
    rows = queryset.select_related(None).only(*(f.attribute for f in fields)).order_by("pk")
    if id_after is not None:
        rows = rows.filter(pk__gt=id_after)
    if id_through is not None:
        rows = rows.filter(pk__lte=id_through)
    export_field = resource.export_field
    for agent in rows.iterator(chunk_size=ROWS_PER_FETCH):
        yield [export_field(field, agent) for field in fields]


@dataclass
class ExportProgress:
    """What the job page shows and polls (the keys imports' progress script reads)."""

    job_id: int
    status: str
    total_rows: int | None
    processed_rows: int
    chunks_total: int
    chunks_done: int
    chunks_failed: int
    percent: float
    rows_per_second: float | None
    eta_seconds: float | None
    elapsed_seconds: float | None
    error_message: str
    file_size: int | None

    def as_dict(self) -> dict:
        return asdict(self)


def export_job_progress(*, job: ExportJob) -> ExportProgress:
    """Rows written so far, summed over the done chunks (the job's own count is set at the end)."""
    totals = job.chunks.totals(processed="row_count")
    processed = job.exported_rows if job.direct else totals["processed"]
    total = job.total_rows
    end = job.finished_at if job.is_terminal and job.finished_at else timezone.now()
    elapsed = (end - job.started_at).total_seconds() if job.started_at else None
    rate = processed / elapsed if elapsed and processed else None
    eta = max(total - processed, 0) / rate if rate and total is not None and not job.is_terminal else None
    if job.status == ExportJob.Status.COMPLETED:
        percent = 100.0
    else:
        percent = round(100.0 * processed / total, 1) if total else 0.0
    return ExportProgress(
        job_id=job.pk,
        status=job.status,
        total_rows=total,
        processed_rows=processed,
        chunks_total=totals["total"],
        chunks_done=totals["done"],
        chunks_failed=totals["failed_chunks"],
        percent=percent,
        rows_per_second=round(rate, 1) if rate else None,
        eta_seconds=round(eta, 1) if eta is not None else None,
        elapsed_seconds=round(elapsed, 2) if elapsed is not None else None,
        error_message=job.error_message,
        file_size=job.file_size,
    )


def export_download_name(*, job: ExportJob) -> str:
    """The file name the browser saves: agents-<date>-export<id>.<format>."""
    return f"agents-{job.created_at:%Y-%m-%d}-export{job.pk}.{job.format}"
