"""Creating an import job and planning it: read the file once, check it, cut it into chunks.

Planning writes nothing to `agents`: any problem with the file fails the job
here, before a row is written. A chunk is a byte range of the file (or of
its staged UTF-8 copy) so a worker seeks straight to it; rows whose key a
later row repeats are marked superseded, found by PostgreSQL so planning
memory stays flat whatever the file's size.
"""

import csv
import os
import tempfile
from array import array
from pathlib import PurePath

from django.conf import settings
from django.core.files import File
from django.db import connection, transaction
from django.utils import timezone

from estateflow.storage import shared_storage

from .formats import (
    LINE_COLUMN,
    CsvRecord,
    ImportFileError,
    PlanDeadline,
    RejectedCells,
    csv_records,
    header_map,
    json_header,
    json_rows,
    record_index_pack,
    sniff_problem,
    staged_line,
    staged_line_cell,
    xlsx_rows,
)
from .lifecycle import import_job_fail, import_job_start
from .models import ImportChunk, ImportJob
from .rows import key_digest, natural_key
from .zip_import import PHOTO_WITHOUT_ARCHIVE_WARNING, zip_data_file, zip_files_discard, zip_files_extract

CHUNK_SIZE_RANGE = (100, 50_000)
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
    source: str = ImportJob.Source.FILE,
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
        source=source,
    )
    job.file.save(PurePath(original_name).name or "upload", file, save=False)
    job.save()
    if start:
        import_job_start(job_id=job.pk)
    return job


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
            return shared_storage().save(f"imports/staged/job-{job.pk}.csv", File(handle))
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
    with shared_storage().open(job.file.name, "rb") as raw:
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
    with shared_storage().open(source, "rb") as raw:
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
        # Per chunk, (offset, line) of each record: a chunk reads a record without parsing the ones before it.
        indexes: list[array] = []
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
                        indexes.append(array("I"))
                    current.row_count += 1
                    current.byte_end = record.byte_end
                    indexes[-1].extend((record.byte_start - current.byte_start, record.line))
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
    for chunk, index in zip(chunks, indexes, strict=True):
        chunk.record_index = record_index_pack(index)
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
