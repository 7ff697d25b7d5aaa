"""Issue 12, finding 4: what planning and the chunks hold in memory does not grow with hostile input.

Each file is imported in a child process of its own (imports/tests/memory_probe.py),
which reports its resident memory before the import and its peak (VmHWM) after.
The full-size files of the issue took 0.3-2.7 GB before the fix; `python -m
imports.tests.memory_probe --cases DIR` measures them (figures in the README, "Import limits").
"""

import pytest
from django.conf import settings

from imports.models import ImportJob

from . import workers  # not its test_database_url: pytest would collect it as a test
from .memory_probe import LIMIT_MB, csv_long_row, json_distinct_keys, measure, xlsx_shared_strings_bomb

pytestmark = pytest.mark.django_db(transaction=True)


def probe(path, **env) -> dict:
    env = {
        "DJANGO_SETTINGS_MODULE": "estateflow.settings.test",
        "DATABASE_URL": workers.test_database_url(),
        "DJANGO_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        **{k: str(v) for k, v in env.items()},
    }
    result = measure(path, chunks=True, env=env)
    assert result["peak_after_chunks_mb"] < LIMIT_MB, result
    return result


@pytest.mark.slow
def test_json_with_a_distinct_key_per_object(tmp_path):
    result = probe(json_distinct_keys(tmp_path / "keys.json", 15_000))  # 1.2 MB; a worker took 1.1 GB
    assert result["status"] == ImportJob.Status.COMPLETED and result["rows"] == 15_000
    assert result["peak_after_chunks_mb"] - result["rss_before_mb"] < 40, result


def test_csv_with_one_very_long_row(tmp_path):
    result = probe(csv_long_row(tmp_path / "long.csv", 200_000, 100))  # one 20 MB row
    assert result["status"] == ImportJob.Status.COMPLETED_WITH_ERRORS and result["failed_rows"] == 1
    assert result["peak_after_chunks_mb"] - result["rss_before_mb"] < 30, result


def test_xlsx_with_a_huge_shared_string_table(tmp_path):
    path = xlsx_shared_strings_bomb(tmp_path / "strings.xlsx", 600_000)  # 80 KB
    result = probe(path, IMPORT_XLSX_MAX_SHARED_STRINGS=100_000)
    assert result["status"] == ImportJob.Status.FAILED and "IMPORT_XLSX_MAX_SHARED_STRINGS" in result["error"]
    assert result["peak_after_chunks_mb"] - result["rss_before_mb"] < 20, result
