"""Issue 12, finding 5: random bytes, encodings, line endings and hostile cells through plan and chunks.

Whatever the file, the job either completes (maybe with row errors) or fails
before writing any row; what it wrote is exactly what it counts; and no
message a user reads carries a traceback.
"""

import csv
import io
import json

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agents.models import Agent
from imports.models import ImportChunk, ImportJob, ImportJournalEntry

from .conftest import run_import

pytestmark = pytest.mark.django_db

OVERFLOWING = "1" + "0" * 400 + ".5"
HOSTILE = [
    "", " ", "\x00", "a\x00b", '"', '""', ",", "\r", "\n", "\r\n", "\ufeff", "\ud800", "x\udfff",
    "é", "😀", "=1+1", "NaN", "[NaN]", "[Infinity]", f"[{OVERFLOWING}]", "[" * 40 + "]" * 40,
    '["\\u0000"]', '["\\ud800"]', '["ok"]', "{}", "1e400", "-1", "99999999999999999999", "x" * 300,
]  # fmt: skip
TEXT = st.text(max_size=10)  # no surrogates: those come from HOSTILE
CELL = st.one_of(TEXT, st.sampled_from(HOSTILE))
IDS = st.sampled_from(["p-1", "p-2", "p-3", "p-4", ""])
STATES = st.sampled_from(["CA", "ny", "TX", "ZZ", ""])
EXTRA_COLUMNS = ["service_regions", "bio", "years_experience", "price_ranges", "custom"]


@st.composite
def csv_files(draw) -> tuple[bytes, str, str]:
    """(bytes, file name, encoding option) of a CSV with hostile cells, endings and bytes."""
    header = ["id", "name", "state", *draw(st.lists(st.sampled_from(EXTRA_COLUMNS), unique=True, max_size=3))]
    rows = []
    for _ in range(draw(st.integers(0, 12))):
        row = [
            draw(st.one_of(IDS, CELL)),
            draw(st.one_of(st.just("Ann"), CELL)),
            draw(st.one_of(STATES, CELL)),
        ]
        row += [draw(CELL) for _ in header[3:]]
        rows.append(row[: draw(st.integers(0, len(row) + 1))] if draw(st.booleans()) else row)
    ending = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    out = io.StringIO(newline="")
    if draw(st.booleans()):
        writer = csv.writer(
            out, lineterminator=ending, quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
        )
        writer.writerows([header, *rows])
    else:  # no quoting at all: separators and line breaks inside cells break the layout
        out.write(ending.join(",".join(r) for r in [header, *rows]) + ending)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "cp1252"]))
    errors = "surrogatepass" if encoding.startswith("utf-8") else "replace"
    data = _damaged(draw, out.getvalue().encode(encoding, errors))
    # Mostly the right encoding (so rows get through to the chunks), sometimes not.
    option = draw(st.sampled_from([encoding, encoding, encoding, "", "latin-1", "utf-7"]))
    return data, "agents.csv", option


def _damaged(draw, data: bytes) -> bytes:
    """`data`, one time in four with random bytes inserted somewhere."""
    if draw(st.integers(0, 3)) == 0:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=6)) + data[at:]
    return data


@st.composite
def json_files(draw) -> tuple[bytes, str, str]:
    """A JSON array of objects with hostile values; sometimes cut short or with random bytes."""
    leaf = st.one_of(
        CELL,
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.none(),
        st.booleans(),
    )
    value = st.recursive(
        leaf,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
        max_leaves=6,
    )
    keys = st.sampled_from(["E-mail", *EXTRA_COLUMNS, "k1", "\x00k", "\ud800"])
    base = st.fixed_dictionaries({"id": st.one_of(IDS, value), "name": st.one_of(st.just("Ann"), value),
                                  "state": st.one_of(STATES, value)})  # fmt: skip
    objects = draw(st.lists(st.tuples(base, st.dictionaries(keys, value, max_size=3)), max_size=8))
    text = json.dumps(
        [{**a, **b} for a, b in objects], ensure_ascii=draw(st.integers(0, 3)) > 0, allow_nan=True
    )
    if draw(st.integers(0, 3)) == 0:  # cut short
        text = text[: draw(st.integers(0, len(text)))]
    return _damaged(draw, text.encode("utf-8", "surrogatepass")), "agents.json", ""


FILES = st.one_of(
    csv_files(),
    csv_files(),
    json_files(),
    st.tuples(st.binary(max_size=200), st.sampled_from(["agents.csv", "agents.json"]), st.just("")),
)
TRACEBACK_MARKS = ("Traceback", 'File "')


@pytest.mark.slow
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(file=FILES, tiny_chunks=st.booleans())
def test_any_file_completes_or_fails_before_writing(file, tiny_chunks):
    data, name, encoding = file
    agents_before = Agent.objects.count()
    # Tiny byte-bounded chunks put a handful of rows in each of several chunks.
    with override_settings(IMPORT_CHUNK_MAX_BYTES=40 if tiny_chunks else 8 * 1024 * 1024):
        job = run_import(data, name=name, encoding=encoding, chunk_size=100)
    created_now = Agent.objects.count() - agents_before
    journal = ImportJournalEntry.objects.filter(job=job).count()

    event(f"{name.split('.')[1]} {job.status}" + (" several chunks" if job.chunks.count() > 1 else ""))
    assert job.status in {
        ImportJob.Status.COMPLETED,
        ImportJob.Status.COMPLETED_WITH_ERRORS,
        ImportJob.Status.FAILED,
    }
    if job.status == ImportJob.Status.FAILED:
        assert job.error_message
        assert not job.chunks.filter(status=ImportChunk.Status.DONE).exists(), job.error_message
        assert (created_now, journal, job.created_rows, job.updated_rows) == (0, 0, 0, 0)
    else:
        assert created_now == job.created_rows
        assert journal == job.created_rows + job.updated_rows  # every written row, journalled once
        counted = job.created_rows + job.updated_rows + job.unchanged_rows + job.failed_rows
        assert counted == job.total_rows
        assert (job.status == ImportJob.Status.COMPLETED) == (job.failed_rows == 0)
    texts = [job.error_message, *job.warnings, *job.chunks.values_list("error", flat=True)]
    texts += list(job.row_errors.values_list("message", flat=True))
    for text in texts:
        assert not any(mark in text for mark in TRACEBACK_MARKS), text
