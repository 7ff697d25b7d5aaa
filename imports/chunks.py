"""One import chunk's work: parse its rows, write them with their journal, record row errors.

`import_chunk_write` is the import's `process_chunk` step of the chunked-job
engine (imports.lifecycle): the engine has locked the chunk and opened the
transaction, and marks the chunk done in it afterwards.
"""

from agents.widgets import storable_text
from estateflow.storage import shared_file_range
from industries.selectors import industry_rules_get
from sync.services import d1_changes_mark

from .d1_rows import D1RowParser, pull_conflicts_flag
from .formats import csv_chunk_rows
from .models import ImportChunk, ImportJob, ImportRowError
from .rows import ParsedRow, RowError, RowParser
from .writer import ChunkWriter, write_isolating_bad_rows
from .zip_import import zip_photo_resolver


def _chunk_rows(job: ImportJob, chunk: ImportChunk):
    """(line, cells) of a chunk, read by seeking to its byte range."""
    source = job.staged_file or job.file.name
    staged = bool(job.staged_file)
    # Streamed from the file: a chunk's range may hold a refused record of any length.
    with shared_file_range(source, start=chunk.byte_start, end=chunk.byte_end) as raw:
        yield from csv_chunk_rows(
            raw,
            encoding="utf-8" if staged else job.encoding,
            first_line=chunk.first_line,
            staged=staged,
            start=chunk.byte_start,
            end=chunk.byte_end,
        )


def import_chunk_write(job: ImportJob, chunk: ImportChunk) -> None:
    """Import the chunk's rows and set its counters (inside the chunk's transaction)."""
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
    chunk.created_rows = result.created
    chunk.updated_rows = result.updated
    chunk.unchanged_rows = result.unchanged
    chunk.failed_rows = len(rejected)
    chunk.warned_rows = len(warned)


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
