"""Import jobs: create, plan, process chunks, finalize, cancel, resume, recover.

Counts of a job are always the sum of its chunks' counts, each written in
the same transaction as the chunk's rows; so a chunk processed twice, or
in any order, can never count or write anything twice.
"""

import csv
import logging
import os
import tempfile
import time
from datetime import timedelta
from pathlib import PurePath

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils import timezone

from agents.widgets import storable_text
from industries.selectors import industry_rules_get
from sync.services import d1_changes_mark

from .d1_rows import D1RowParser, pull_conflicts_flag
from .formats import (
    LINE_COLUMN,
    CsvRecord,
    ImportFileError,
    PlanDeadline,
    RejectedCells,
    csv_chunk_rows,
    csv_records,
    header_map,
    json_header,
    json_rows,
    sniff_problem,
    staged_line,
    staged_line_cell,
    xlsx_rows,
)
from .models import ImportChunk, ImportJob, ImportRowError
from .rows import ParsedRow, RowError, RowParser, key_digest, natural_key
from .selectors import import_chunk_totals
from .writer import ChunkWriter, write_isolating_bad_rows
from .zip_import import (
    PHOTO_WITHOUT_ARCHIVE_WARNING,
    zip_data_file,
    zip_files_discard,
    zip_files_extract,
    zip_photo_resolver,
)

logger = logging.getLogger(__name__)

MAX_CHUNK_ATTEMPTS = 8
CHUNK_SIZE_RANGE = (100, 50_000)
RECOVER_PENDING_AFTER = timedelta(minutes=5)
FORMATS_BY_EXTENSION = {".csv": "csv", ".txt": "csv", ".xlsx": "xlsx", ".json": "json", ".zip": "zip"}
REQUIRED_FOR_CREATE = ("name", "state")


class ImportRequestError(ValueError):
    """The import cannot start as asked (bad option or file type)."""


def import_format_guess(filename: str) -> str:
    fmt = FORMATS_BY_EXTENSION.get(PurePath(filename).suffix.lower())
    if fmt is None:
        raise ImportRequestError(
            f"{filename}: cannot tell the format; use .csv, .xlsx, .json or .zip or pick it."
        )
    return fmt


def import_job_create(
    *,
    file: File,
    original_name: str,
    file_format: str | None = None,
    mode: str = ImportJob.Mode.UPSERT,
    dry_run: bool = False,
    chunk_size: int = 5000,
    encoding: str = "",
    user=None,
    start: bool = True,
) -> ImportJob:
    """Store the file and create the job; with start=True the planning task is enqueued."""
    if mode not in ImportJob.Mode.values:
        raise ImportRequestError(f"Unknown mode {mode!r}; use one of {', '.join(ImportJob.Mode.values)}.")
    low, high = CHUNK_SIZE_RANGE
    if not low <= chunk_size <= high:
        raise ImportRequestError(f"Chunk size must be between {low:,} and {high:,}.")
    file_format = file_format or import_format_guess(original_name)
    if file_format not in ImportJob.Format.values:
        raise ImportRequestError(f"Unknown format {file_format!r}.")
    job = ImportJob(
        original_name=original_name[:255],
        format=file_format,
        mode=mode,
        dry_run=dry_run,
        chunk_size=chunk_size,
        encoding=encoding,
        created_by=user,
    )
    job.file.save(PurePath(original_name).name or "upload", file, save=False)
    job.save()
    if start:
        import_job_start(job_id=job.pk)
    return job


def import_job_start(*, job_id: int) -> None:
    from .tasks import import_job_plan_task

    transaction.on_commit(lambda: import_job_plan_task.delay(job_id))


# --- planning ---------------------------------------------------------------------


def _stage_rows(job: ImportJob, rows, header: list[str], deadline: PlanDeadline) -> str:
    """Write XLSX/JSON rows as a UTF-8 CSV in storage; its first column is the source line.

    A row refused while reading (RejectedCells) carries its reason in that
    first column. Unpaired surrogates (a JSON "\\ud800") are written as they
    are (surrogatepass) so the chunk can report them as row errors.
    """
    with tempfile.NamedTemporaryFile(
        "w+", encoding="utf-8", errors="surrogatepass", newline="", suffix=".csv", delete=False
    ) as tmp:
        writer = csv.writer(tmp)
        writer.writerow([LINE_COLUMN, *header])
        for line, cells in deadline.watch(rows):
            writer.writerow([staged_line_cell(line, getattr(cells, "reason", None)), *cells])
        path = tmp.name
    try:
        with open(path, "rb") as handle:
            return default_storage.save(f"imports/staged/job-{job.pk}.csv", File(handle))
    finally:
        os.unlink(path)


def _staged_source(job: ImportJob, deadline: PlanDeadline) -> tuple[str, list[str], str, list[str]]:
    """(storage name of a CSV to chunk, header of the source, encoding of that CSV, warnings)."""
    if job.format == ImportJob.Format.ZIP:
        # The archive's data file is planned like a file of its own format (always staged).
        with zip_data_file(job) as data:
            return _staged_source_of(
                job, data.raw, fmt=data.format, name=data.name, in_place=False, deadline=deadline
            )
    with default_storage.open(job.file.name, "rb") as raw:
        return _staged_source_of(
            job, raw, fmt=job.format, name=job.original_name, in_place=True, deadline=deadline
        )


def _staged_source_of(job: ImportJob, raw, *, fmt: str, name: str, in_place: bool, deadline: PlanDeadline):
    """_staged_source for an open file; in_place: a CSV is job.file itself and is chunked as it is."""
    problem = sniff_problem(raw.read(65536), declared=fmt, filename=name)
    if problem:
        raise ImportFileError(problem)
    raw.seek(0)
    if fmt == "csv" and in_place:
        return job.file.name, [], job.encoding, []
    if fmt == "csv":  # a CSV out of an archive: staged with its source lines
        records = csv_records(raw, encoding=job.encoding, filename=name)
        first = next(records, None)
        if first is None:
            raise ImportFileError(f"{name}: the file is empty.")
        _header_refused(first.cells, name)
        rows = ((record.line, record.cells) for record in records)
        return _stage_rows(job, rows, first.cells, deadline), first.cells, "utf-8", []
    if fmt == "xlsx":
        rows = xlsx_rows(raw, filename=name)
        first = next(rows, None)
        if first is None:
            raise ImportFileError(f"{name}: the workbook's first sheet is empty.")
        header = first[1]
        _header_refused(header, name)
        staged = _stage_rows(job, rows, header, deadline)
        return staged, header, "utf-8", []
    # JSON: the header is the keys that name agent columns, in order of first use (two passes).
    header, warnings = json_header(raw, filename=name, deadline=deadline)
    raw.seek(0)
    rows = json_rows(raw, filename=name, header=header)
    return _stage_rows(job, rows, header, deadline), header, "utf-8", warnings


def _header_refused(header: list[str], name: str) -> None:
    if isinstance(header, RejectedCells):
        raise ImportFileError(f"{name}: the header row is refused: {header.reason}.")


def import_job_plan(*, job_id: int) -> bool:
    """Read the file once: check it, count rows, find repeated keys, cut it into chunks.

    Returns True when chunks were created (the caller enqueues them). Any
    problem with the file fails the job here, before a row is written.
    """
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job_id)
        if job.status not in (ImportJob.Status.PENDING, ImportJob.Status.PLANNING):
            return False
        job.status = ImportJob.Status.PLANNING
        job.started_at = job.started_at or timezone.now()
        job.save(update_fields=["status", "started_at"])
    try:
        plan = _plan(job)
        if job.format == ImportJob.Format.ZIP:  # the data file planned cleanly: now its photos
            plan["warnings"] += zip_files_extract(job, columns=plan["columns"])
    except ImportFileError as exc:
        import_job_fail(job_id=job.pk, message=str(exc))
        return False
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job_id)
        if job.status != ImportJob.Status.PLANNING:  # cancelled meanwhile
            if job.format == ImportJob.Format.ZIP:  # no chunk will run: drop the extracted photos
                transaction.on_commit(lambda: zip_files_discard(job_id=job_id))
            return False
        job.chunks.all().delete()
        ImportChunk.objects.bulk_create(plan.pop("chunks"))
        for field, value in plan.items():
            setattr(job, field, value)
        job.status = ImportJob.Status.RUNNING
        job.planned_at = timezone.now()
        job.save()
    return True


def _plan(job: ImportJob) -> dict:
    name = job.original_name
    deadline = PlanDeadline(name)
    source, header, encoding, staging_warnings = _staged_source(job, deadline)
    staged = source != job.file.name
    chunk_max_bytes = settings.IMPORT_CHUNK_MAX_BYTES
    with default_storage.open(source, "rb") as raw:
        records = csv_records(
            raw, encoding=encoding, filename=name, errors="surrogatepass" if staged else "strict"
        )
        first = next(records, None)
        if first is None:
            raise ImportFileError(f"{name}: the file is empty.")
        _header_refused(first.cells, name)
        if staged:
            first.cells = first.cells[1:]
        else:
            header = first.cells
        mapping = header_map(header, filename=name)
        carried = {c for c in mapping.columns if c}
        if job.mode == ImportJob.Mode.UPDATE_ONLY:
            if not carried & {"id", "license_number"}:
                raise ImportFileError(f"{name}: an update needs an 'id' or a 'license_number' column.")
        else:
            missing = [c for c in REQUIRED_FOR_CREATE if c not in carried]
            if missing:
                raise ImportFileError(
                    f"{name}: missing required column(s): {', '.join(missing)} "
                    f"(header: {', '.join(map(str, header))})."
                )
        position = {c: i for i, c in enumerate(mapping.columns) if c}
        offset = 1 if staged else 0

        def cell(cells: list[str], column: str) -> str | None:
            i = position.get(column)
            return cells[i + offset] if i is not None and i + offset < len(cells) else None

        chunks: list[ImportChunk] = []
        total = 0
        current = None
        # Repeated keys are found by PostgreSQL, not in a dict, so planning
        # memory stays flat whatever the file's size.
        with transaction.atomic(), connection.cursor() as cursor:
            # ON COMMIT DROP in production; the explicit DROP also covers savepoints (tests).
            cursor.execute("DROP TABLE IF EXISTS import_plan_keys")
            cursor.execute(
                "CREATE TEMP TABLE import_plan_keys (row_index integer, line integer, digest bigint) ON COMMIT DROP"
            )
            with cursor.cursor.copy("COPY import_plan_keys (row_index, line, digest) FROM STDIN") as copy:
                for record in deadline.watch(records):
                    # Bytes bound a chunk too, so a worker's memory does not grow with row length.
                    if (
                        current is None
                        or current.row_count >= job.chunk_size
                        or record.byte_end - current.byte_start > chunk_max_bytes
                    ):
                        current = ImportChunk(
                            job=job,
                            index=len(chunks),
                            first_row=total,
                            row_count=0,
                            first_line=record.line,
                            byte_start=record.byte_start,
                            byte_end=record.byte_end,
                        )
                        chunks.append(current)
                    current.row_count += 1
                    current.byte_end = record.byte_end
                    line, refused = _planned_line(record, staged)
                    if refused:  # a row error in its chunk; it has no key to compare
                        total += 1
                        continue
                    agent_id = (cell(record.cells, "id") or "").strip()
                    if agent_id:
                        copy.write_row((total, line, key_digest("id", agent_id)))
                    else:  # only a row without an id is identified by its licence
                        nat = natural_key(cell(record.cells, "industry"), cell(record.cells, "state"),
                                          cell(record.cells, "license_number"))  # fmt: skip
                        if nat:
                            copy.write_row((total, line, key_digest("nat", nat)))
                    total += 1
            superseded = _superseded_rows(cursor)
            cursor.execute("DROP TABLE import_plan_keys")
        if total == 0:
            raise ImportFileError(f"{name}: the file has a header but no data rows.")
    for chunk in chunks:
        chunk.superseded = {
            str(i - chunk.first_row): superseded[i]
            for i in range(chunk.first_row, chunk.first_row + chunk.row_count)
            if i in superseded
        }
    warnings = list(staging_warnings)
    if "photo" in mapping.columns and job.format != ImportJob.Format.ZIP:
        mapping.columns[mapping.columns.index("photo")] = None  # no images to read: see zip_import
        warnings.append(PHOTO_WITHOUT_ARCHIVE_WARNING)
    if mapping.unknown:
        warnings.append(f"Unknown columns ignored: {', '.join(mapping.unknown)}.")
    if mapping.ignored and job.source != ImportJob.Source.D1:
        warnings.append(f"Columns the back-office sets itself, ignored: {', '.join(mapping.ignored)}.")
    if superseded:
        warnings.append(f"{len(superseded):,} rows repeat the key of a later row; the later row wins.")
    return {
        "chunks": chunks,
        "header": [str(h) for h in header],
        "columns": mapping.columns,
        "warnings": warnings,
        "staged_file": source if staged else "",
        "total_rows": total,
    }


def _planned_line(record: CsvRecord, staged: bool) -> tuple[int, bool]:
    """(source line of a planned record, whether it was refused while reading or staging)."""
    if not staged:
        return record.line, bool(record.rejected)
    try:
        line, reason = staged_line(record.cells[0])
    except (IndexError, ValueError):  # an excerpt cut inside the line cell
        return record.line, True
    return line, bool(record.rejected or reason)


def _superseded_rows(cursor) -> dict[int, int]:
    """{row index: line of the later row with the same key} from import_plan_keys."""
    cursor.execute(
        """
        SELECT row_index, max(winner_line) FROM (
            SELECT row_index,
                   last_value(line) OVER w AS winner_line,
                   last_value(row_index) OVER w AS winner_row
            FROM import_plan_keys
            WINDOW w AS (PARTITION BY digest ORDER BY row_index
                         ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
        ) keyed
        WHERE row_index < winner_row
        GROUP BY row_index
        """
    )
    return dict(cursor.fetchall())


# --- chunks ---------------------------------------------------------------------


def _chunk_rows(job: ImportJob, chunk: ImportChunk):
    """(line, cells) of a chunk, read by seeking to its byte range."""
    source = job.staged_file or job.file.name
    staged = bool(job.staged_file)
    # Streamed from the file: a chunk's range may hold a refused record of any length.
    with default_storage.open(source, "rb") as raw:
        yield from csv_chunk_rows(
            raw,
            encoding="utf-8" if staged else job.encoding,
            first_line=chunk.first_line,
            staged=staged,
            start=chunk.byte_start,
            end=chunk.byte_end,
        )


def import_chunk_begin(*, job_id: int, chunk_index: int) -> bool:
    """Count an attempt; False when the chunk must not run (done, given up, job not running)."""
    with transaction.atomic():
        chunk = (
            ImportChunk.objects.select_for_update(of=("self",))
            .select_related("job")
            .get(job_id=job_id, index=chunk_index)
        )
        if chunk.status in (ImportChunk.Status.DONE, ImportChunk.Status.FAILED):
            return False
        if chunk.job.status != ImportJob.Status.RUNNING:
            return False
        if chunk.attempts >= MAX_CHUNK_ATTEMPTS:
            chunk.status = ImportChunk.Status.FAILED
            chunk.error = f"gave up after {chunk.attempts} attempts. {chunk.error}".strip()
            chunk.finished_at = timezone.now()
            chunk.save(update_fields=["status", "error", "finished_at"])
            return False
        chunk.attempts += 1
        chunk.status = ImportChunk.Status.RUNNING
        chunk.started_at = timezone.now()
        chunk.save(update_fields=["attempts", "status", "started_at"])
    return True


def import_chunk_process(*, job_id: int, chunk_index: int) -> bool:
    """Import one chunk in one transaction: rows, journal, row errors and the done-mark.

    The chunk row stays locked while it runs, which also tells the recovery
    sweep that a live worker holds it. Returns False when there was nothing to do.
    """
    if not import_chunk_begin(job_id=job_id, chunk_index=chunk_index):
        return False
    started = time.monotonic()
    with transaction.atomic():
        chunk = (
            ImportChunk.objects.select_for_update(of=("self",))
            .select_related("job")
            .get(job_id=job_id, index=chunk_index)
        )
        chunk_statement_time_limit()
        job = chunk.job
        if chunk.status != ImportChunk.Status.RUNNING or job.status != ImportJob.Status.RUNNING:
            return False
        photos = zip_photo_resolver(job)  # None unless a zip job with a photo column
        pull = job.source == ImportJob.Source.D1
        if pull:
            # A pull's staged header is exactly D1's columns, updated_at included.
            columns = list(job.header)
            parser = D1RowParser(columns, industry_rules_get())
        else:
            columns = job.columns
            parser = RowParser(columns, industry_rules_get(), photo_resolver=photos)
        writer = ChunkWriter(
            job_id=job.pk,
            chunk_index=chunk.index,
            columns={c for c in columns if c and (c != "photo" or photos)},
            mode=job.mode,
            dry_run=job.dry_run,
            pull=pull,
        )
        rejected: list[ParsedRow] = []
        valid: list[ParsedRow] = []
        superseded = chunk.superseded
        for position, (line, cells) in enumerate(_chunk_rows(job, chunk)):
            later = superseded.get(str(position))
            if later is not None:
                row = ParsedRow(line=line, values={}, cells=cells)
                row.errors.append(RowError(line, "", "", f"replaced by line {later}, which has the same key"))
                rejected.append(row)
                continue
            row = parser.parse(line, cells)
            (rejected if row.errors else valid).append(row)
        accepted = writer.resolve(valid)
        rejected.extend(r for r in valid if r.errors)
        if pull and job.mode == ImportJob.Mode.CREATE_ONLY:
            # PostgreSQL wins: its version of a conflicting agent is what the next sync writes to D1.
            conflicted = pull_conflicts_flag(accepted)
            if conflicted and not job.dry_run:
                d1_changes_mark(rows=[("agents", i) for i in conflicted])
        result, refused = write_isolating_bad_rows(writer, accepted)
        rejected.extend(refused)
        issues = _row_errors(job, chunk, rejected, severity=ImportRowError.Severity.ERROR)
        # Warnings of every imported row, unchanged ones too: importing the same file
        # again reports them again.
        warned = [r for r in accepted if r.warnings and not r.errors]  # errors: refused by PostgreSQL
        issues += _row_errors(job, chunk, warned, severity=ImportRowError.Severity.WARNING)
        ImportRowError.objects.bulk_create(issues, batch_size=1000)
        chunk.status = ImportChunk.Status.DONE
        chunk.created_rows = result.created
        chunk.updated_rows = result.updated
        chunk.unchanged_rows = result.unchanged
        chunk.failed_rows = len(rejected)
        chunk.warned_rows = len(warned)
        chunk.error = ""
        chunk.duration_ms = int((time.monotonic() - started) * 1000)
        chunk.finished_at = timezone.now()
        chunk.save()
    return True


def chunk_statement_time_limit() -> None:
    """Let PostgreSQL stop a statement that outlives the chunk's time limit.

    Celery's soft limit is a signal; a worker blocked inside the database
    driver (a lock wait) does not see it until the statement returns.
    """
    # A little under the soft limit, so PostgreSQL cancels before the signal interrupts the driver.
    limit_ms = int(settings.IMPORT_CHUNK_SOFT_TIME_LIMIT * 900)
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(limit_ms)])


def _row_errors(
    job: ImportJob, chunk: ImportChunk, rows: list[ParsedRow], *, severity: str
) -> list[ImportRowError]:
    """The errors (of rejected rows) or warnings (of imported rows) of `rows` as model rows."""
    out = []
    for row in sorted(rows, key=lambda r: r.line):
        issues = row.errors if severity == ImportRowError.Severity.ERROR else row.warnings
        for i, issue in enumerate(issues):
            out.append(
                ImportRowError(
                    job=job,
                    chunk_index=chunk.index,
                    severity=severity,
                    line=issue.line,
                    column=issue.column,
                    # A NUL or unpaired surrogate the row was refused for must not fail the report too.
                    value=storable_text(issue.value[:200]),
                    message=storable_text(issue.message),
                    raw_row=[storable_text(str(c)) for c in row.cells] if i == 0 else None,
                )
            )
    return out


def import_chunk_record_error(*, job_id: int, chunk_index: int, message: str) -> None:
    """Remember why an attempt failed (the chunk will be retried)."""
    ImportChunk.objects.filter(job_id=job_id, index=chunk_index).exclude(
        status=ImportChunk.Status.DONE
    ).update(error=message[:2000], status=ImportChunk.Status.PENDING)


def import_chunk_fail(*, job_id: int, chunk_index: int, message: str) -> None:
    """Give up on a chunk: it will not be retried; the job ends failed with this message."""
    ImportChunk.objects.filter(job_id=job_id, index=chunk_index).exclude(
        status=ImportChunk.Status.DONE
    ).update(error=message[:2000], status=ImportChunk.Status.FAILED, finished_at=timezone.now())


# --- job lifecycle -----------------------------------------------------------------


def import_job_fail(*, job_id: int, message: str) -> None:
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job_id)
        if job.is_terminal:
            return
        job.status = ImportJob.Status.FAILED
        job.error_message = message
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "error_message", "finished_at"])
    logger.warning("Import job %s failed: %s", job_id, message)


def import_job_counts_refresh(job: ImportJob) -> None:
    """Copy the chunk sums onto the job's own counters (set when the job ends)."""
    totals = import_chunk_totals(job=job)
    job.created_rows = totals["created"]
    job.updated_rows = totals["updated"]
    job.unchanged_rows = totals["unchanged"]
    job.failed_rows = totals["failed"]
    job.warned_rows = totals["warned"]
    job.processed_rows = totals["processed"]


def import_job_finalize(*, job_id: int) -> bool:
    """Close the job once no chunk is left to run; True when this call closed it."""
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job_id)
        if job.status not in (ImportJob.Status.RUNNING, ImportJob.Status.CANCELLED):
            return False
        open_chunks = job.chunks.filter(status__in=[ImportChunk.Status.PENDING, ImportChunk.Status.RUNNING])
        if job.status == ImportJob.Status.RUNNING and open_chunks.exists():
            return False
        import_job_counts_refresh(job)
        if job.status == ImportJob.Status.RUNNING:
            failed_chunks = job.chunks.filter(status=ImportChunk.Status.FAILED).order_by("index")
            failed = list(failed_chunks[:5])
            if failed:
                job.status = ImportJob.Status.FAILED
                job.error_message = _failed_chunks_message(job, failed, failed_chunks.count())
            elif job.failed_rows:
                job.status = ImportJob.Status.COMPLETED_WITH_ERRORS
            else:
                job.status = ImportJob.Status.COMPLETED
            job.finished_at = timezone.now()
        job.save()
        closed = job.status != ImportJob.Status.CANCELLED
        if closed and not job.dry_run and (job.created_rows or job.updated_rows):
            transaction.on_commit(_edge_sync_request)
        if job.format == ImportJob.Format.ZIP and job.status in (
            ImportJob.Status.COMPLETED,
            ImportJob.Status.COMPLETED_WITH_ERRORS,
        ):  # no chunk will run again: the photos extracted at planning can go
            transaction.on_commit(lambda: zip_files_discard(job_id=job_id))
    return closed


def _failed_chunks_message(job: ImportJob, failed: list[ImportChunk], failed_count: int) -> str:
    """Why a job failed after planning, which chunks landed, and what finishes the story.

    Bad data never fails a chunk (it becomes row errors), so this is the
    database, a worker or a time limit: what landed stays until resumed or rolled back.
    """
    details = "; ".join(f"chunk {c.index} (lines from {c.first_line}): {c.error}" for c in failed)
    done = list(
        job.chunks.filter(status=ImportChunk.Status.DONE).order_by("index").values_list("index", flat=True)
    )
    total = len(done) + failed_count
    head = f"{failed_count} of {total} chunk(s) could not be imported: {details}."
    if job.dry_run or not done:
        return f"{head} No rows were written. `manage.py import_resume {job.pk}` retries once the cause is fixed."
    return (
        f"{head} Chunk(s) {_index_ranges(done)} were written ({job.created_rows:,} created, "
        f"{job.updated_rows:,} updated). Finish with `manage.py import_resume {job.pk}` (retries the failed "
        f"chunks once the cause is fixed) or `manage.py import_rollback {job.pk}` (undoes what was written)."
    )


def _index_ranges(indexes: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    ranges: list[list[int]] = []
    for index in indexes:
        if ranges and index == ranges[-1][1] + 1:
            ranges[-1][1] = index
        else:
            ranges.append([index, index])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def _edge_sync_request() -> None:
    """Push the import to the edge; the sync app may not be installed in every setup."""
    try:
        from sync.services import d1_sync_request
    except ImportError:
        return
    d1_sync_request(reason="import finished")


def import_job_cancel(*, job_id: int) -> bool:
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job_id)
        if job.is_terminal or job.status == ImportJob.Status.ROLLING_BACK:
            return False
        job.status = ImportJob.Status.CANCELLED
        job.finished_at = timezone.now()
        import_job_counts_refresh(job)
        job.save()
    return True


def import_job_resume(*, job_id: int) -> list[int]:
    """Re-enqueue every chunk not done yet (cancelled, failed or interrupted jobs); returns them.

    Safe to call at any time: a chunk delivered twice is a no-op the second time.
    """
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job_id)
        if job.status in (ImportJob.Status.PENDING, ImportJob.Status.PLANNING):
            job.status = ImportJob.Status.PENDING
            job.save(update_fields=["status"])
            import_job_start(job_id=job.pk)
            return []
        if job.status not in (ImportJob.Status.RUNNING, ImportJob.Status.CANCELLED, ImportJob.Status.FAILED):
            return []
        if not job.chunks.exists():
            return []
        # Chunks a live worker holds stay locked and are skipped: they finish on their own.
        indexes = list(
            job.chunks.exclude(status=ImportChunk.Status.DONE)
            .select_for_update(skip_locked=True)
            .values_list("index", flat=True)
        )
        job.chunks.filter(index__in=indexes).exclude(status=ImportChunk.Status.DONE).update(
            status=ImportChunk.Status.PENDING, attempts=0
        )
        job.status = ImportJob.Status.RUNNING
        job.error_message = ""
        job.finished_at = None
        job.save(update_fields=["status", "error_message", "finished_at"])
        transaction.on_commit(lambda: import_chunks_enqueue(job_id=job_id, indexes=indexes))
        if not indexes:
            transaction.on_commit(lambda: import_job_finalize(job_id=job_id))
    return indexes


def import_chunks_enqueue(*, job_id: int, indexes: list[int]) -> None:
    from .tasks import import_chunk_process_task

    for index in indexes:
        import_chunk_process_task.delay(job_id, index)


def import_jobs_recover(*, worker_start: bool = False) -> dict[int, list[int]]:
    """Re-enqueue chunks that no live worker holds: run at worker start and periodically.

    A running chunk keeps its row locked for its whole transaction, so a
    'running' chunk we can lock with SKIP LOCKED lost its worker (killed,
    OOM, machine gone). Pending chunks of a job with no progress for a while
    lost their message (a broker restart); enqueueing them again is harmless.
    """
    recovered: dict[int, list[int]] = {}
    for job in ImportJob.objects.filter(status=ImportJob.Status.RUNNING):
        with transaction.atomic():
            orphaned = list(
                ImportChunk.objects.filter(job=job, status=ImportChunk.Status.RUNNING)
                .select_for_update(skip_locked=True)
                .values_list("index", flat=True)
            )
            last = job.chunks.filter(finished_at__isnull=False).order_by("-finished_at").first()
            last_progress = last.finished_at if last else (job.planned_at or job.created_at)
            # At a worker's start, pending chunks are re-sent too: a killed worker takes its
            # prefetched messages with it, and a duplicate of a live message is a no-op.
            if worker_start or timezone.now() - last_progress > RECOVER_PENDING_AFTER:
                orphaned += list(
                    job.chunks.filter(status=ImportChunk.Status.PENDING).values_list("index", flat=True)
                )
            if orphaned:
                ImportChunk.objects.filter(
                    job=job, index__in=orphaned, status=ImportChunk.Status.RUNNING
                ).update(status=ImportChunk.Status.PENDING)
        if orphaned:
            recovered[job.pk] = orphaned
            import_chunks_enqueue(job_id=job.pk, indexes=orphaned)
    for job_id, indexes in recovered.items():
        logger.warning("Import job %s: re-enqueued chunks %s with no live worker", job_id, indexes)
    return recovered
