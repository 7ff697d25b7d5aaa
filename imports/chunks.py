"""One import chunk's work: parse its rows, write them with their journal, record row errors.

`import_chunk_write` is the import's `process_chunk` step of the chunked-job
engine (imports.lifecycle): the engine has locked the chunk and opened the
transaction, and marks the chunk done in it afterwards.
"""

from django.conf import settings

from agents.widgets import storable_text
from estateflow.storage import shared_file_range
from industries.selectors import industry_rules_get
from sync.services import d1_changes_mark

from .d1_rows import D1RowParser, pull_conflicts_flag
from .digests import (
    DigestedRow,
    UnchangedRows,
    digested_row,
    row_digester_for,
    row_digests_save,
)
from .formats import ChunkRecords, csv_chunk_rows
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


def _chunk_records(job: ImportJob, chunk: ImportChunk) -> ChunkRecords | None:
    """The chunk's range held in memory with planning's record index; None to stream it instead.

    Streamed when planning recorded no index (a job planned before it
    existed) or when the range holds a refused record of any length.
    """
    size = chunk.byte_end - chunk.byte_start
    if not chunk.record_index or size > settings.IMPORT_CHUNK_MAX_BYTES + settings.IMPORT_MAX_ROW_BYTES:
        return None
    source = job.staged_file or job.file.name
    parts, left = [], size
    with shared_file_range(source, start=chunk.byte_start, end=chunk.byte_end) as raw:
        while left > 0 and (part := raw.read(left)):
            parts.append(part)
            left -= len(part)
    if left:  # the stored file is shorter than planned: let the streaming reader say what it finds
        return None
    data = b"".join(parts)
    staged = bool(job.staged_file)
    return ChunkRecords(data, chunk.record_index, encoding="utf-8" if staged else job.encoding, staged=staged)


def import_chunk_write(job: ImportJob, chunk: ImportChunk) -> None:
    """Import the chunk's rows and set its counters (inside the chunk's transaction)."""
    photos = zip_photo_resolver(job)  # None unless a zip job with a photo column
    industry_rules = industry_rules_get()
    pull = job.source == ImportJob.Source.D1
    if pull:
        # A pull's staged header is exactly D1's columns, updated_at included.
        columns = list(job.header)
        parser = D1RowParser(columns, industry_rules)
    else:
        columns = job.columns
        parser = RowParser(columns, industry_rules, photo_resolver=photos)
    writer = ChunkWriter(
        job_id=job.pk,
        chunk_index=chunk.index,
        columns={c for c in columns if c and (c != "photo" or photos)},
        mode=job.mode,
        dry_run=job.dry_run,
        pull=pull,
    )
    records = _chunk_records(job, chunk)
    if records is None:
        rows = list(_chunk_rows(job, chunk))
        count, row_at = len(rows), rows.__getitem__
    else:
        count, row_at = len(records), records.row
    superseded = chunk.superseded
    # Rows applied by an earlier import whose agents have not changed since are
    # counted unchanged without being read or parsed (imports.digests).
    digester = row_digester_for(job, industry_rules=industry_rules, photos=photos) if records else None
    digests = [None] * count
    if digester:
        digests = [None if str(i) in superseded else digester.digest(records.raw(i)) for i in range(count)]
    unchanged = UnchangedRows.lookup(digests) if digester else UnchangedRows({})
    rejected: list[ParsedRow] = []
    valid: list[ParsedRow] = []
    digested: list[DigestedRow] = []
    for position in range(count):
        if position in unchanged:
            continue
        line, cells = row_at(position)
        later = superseded.get(str(position))
        if later is not None:
            row = ParsedRow(line=line, values={}, cells=cells)
            row.errors.append(RowError(line, "", "", f"replaced by line {later}, which has the same key"))
            rejected.append(row)
            continue
        row = parser.parse(line, cells)
        if row.errors:
            rejected.append(row)
            continue
        valid.append(row)
        if entry := digested_row(row, digests[position]):
            digested.append(entry)
    accepted = writer.resolve(valid)
    rejected.extend(r for r in valid if r.errors)
    if pull and job.mode == ImportJob.Mode.CREATE_ONLY:
        # PostgreSQL wins: its version of a conflicting agent is what the next sync writes to D1.
        conflicted = pull_conflicts_flag(accepted)
        if conflicted and not job.dry_run:
            d1_changes_mark(rows=[("agents", i) for i in conflicted])
    result, refused = write_isolating_bad_rows(writer, accepted)
    rejected.extend(refused)
    # The licences this write gave or took are counted again for the unchanged rows.
    wrote = (result.created or result.updated) and not job.dry_run
    unchanged_warned = unchanged.warned_rows(
        row_at,
        job_id=job.pk,
        chunk_index=chunk.index,
        written_ids=[r.values["id"] for r in accepted] if wrote else [],
    )
    if not job.dry_run:
        row_digests_save(rows=digested)
    issues = _row_errors(job, chunk, rejected, severity=ImportRowError.Severity.ERROR)
    # Warnings of every imported row, unchanged ones too: importing the same file
    # again reports them again. (A row with errors here was refused by PostgreSQL.)
    warned = [r for r in (*accepted, *unchanged_warned) if r.warnings and not r.errors]
    issues += _row_errors(job, chunk, warned, severity=ImportRowError.Severity.WARNING)
    ImportRowError.objects.bulk_create(issues, batch_size=1000)
    chunk.created_rows = result.created
    chunk.updated_rows = result.updated
    chunk.unchanged_rows = result.unchanged + len(unchanged)
    chunk.failed_rows = len(rejected)
    chunk.warned_rows = len(warned)
    chunk.record_index = b""  # read for the last time


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
