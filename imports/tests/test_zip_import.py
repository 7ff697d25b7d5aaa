"""ZIP imports: a data file plus the photos its `photo` column names, on PostgreSQL.

Archives are built here with Pillow-made images; the asset push runs against
moto's S3 server addressed like R2 and the D1 sync against the local D1
engine (miniflare), both through the fixtures of the assets and sync tests.
"""

import csv
import hashlib
import io
import json
import random
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from agents.models import Agent
from agents.tests.factories import AgentFactory
from assets.models import AssetSyncRun
from assets.services import r2_sync_run
from assets.storage import IMMUTABLE_CACHE_CONTROL, ObjectHead, S3Bucket, r2_client_build
from assets.tests.conftest import media_root, moto_endpoint, r2  # noqa: F401 - fixtures
from estateflow.storage import shared_storage
from imports.models import ImportJob, ImportJournalEntry
from imports.services import import_format_guess
from imports.zip_import import files_prefix, manifest_name
from sync.tests.conftest import d1, d1_empty, d1_engine  # noqa: F401 - fixtures

from .conftest import run_import

pytestmark = pytest.mark.django_db

FORMATS = (("PNG", "png", "image/png"), ("JPEG", "jpg", "image/jpeg"), ("WEBP", "webp", "image/webp"))


def image(n: int, fmt: str = "PNG", size: tuple[int, int] = (48, 40)) -> bytes:
    """A small image whose bytes differ for each n (up to 65,536)."""
    out = io.BytesIO()
    Image.new("RGB", size, (n % 256, (n // 256) % 256, 99)).save(out, format=fmt)
    return out.getvalue()


def zip_bytes(members: dict, *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """An archive of these members, names kept exactly as given; a value may be a callable making the bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(
                zipfile.ZipInfo(name), data() if callable(data) else data, compress_type=compression
            )
    return out.getvalue()


def agents_csv(rows: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def agents_zip(count: int, *, prefix: str = "z", folder: str = "") -> tuple[bytes, dict[str, bytes]]:
    """An archive of `count` agents with one photo each (PNG, JPEG and WebP in turn); also the photos by id."""
    rows, members, photos = [], {}, {}
    for i in range(count):
        fmt, ext, _ = FORMATS[i % 3]
        agent_id = f"{prefix}-{i:05d}"
        data = image(i, fmt)
        photos[agent_id] = data
        members[f"{folder}photos/{agent_id}.{ext}"] = data
        rows.append(
            {"id": agent_id, "name": f"Agent {i}", "state": "CA", "photo": f"photos/{agent_id}.{ext}"}
        )
    members = {f"{folder}agents.csv": agents_csv(rows), **members}
    return zip_bytes(members), photos


def photo_files(root: Path) -> dict[str, float]:
    """Stored agent photos: name -> modification time."""
    folder = root / "agents" / "photos"
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} if folder.exists() else {}


def expected_name(data: bytes) -> str:
    fmt = Image.open(io.BytesIO(data)).format
    ext = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}[fmt]
    return f"agents/photos/{hashlib.sha256(data).hexdigest()[:16]}.{ext}"


def assert_refused(job: ImportJob, *fragments: str, media: Path) -> None:
    assert job.status == ImportJob.Status.FAILED, job.error_message
    for fragment in fragments:
        assert fragment in job.error_message, job.error_message
    assert not job.chunks.exists()
    assert Agent.objects.count() == 0
    assert photo_files(media) == {}
    assert not (media / files_prefix(job.pk)).exists()
    assert not shared_storage().exists(manifest_name(job.pk))


# --- happy path --------------------------------------------------------------------


def test_zip_with_photos_imports_then_reimport_changes_nothing(
    media_root,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    assert import_format_guess("Agents.ZIP") == "zip"
    content, photos = agents_zip(30)

    with django_capture_on_commit_callbacks(execute=True):
        job = run_import(content, name="agents.zip", chunk_size=100)

    assert job.status == ImportJob.Status.COMPLETED, (job.error_message, list(job.row_errors.all()))
    assert job.format == "zip" and (job.total_rows, job.created_rows) == (30, 30)
    agents = {a.id: a for a in Agent.objects.all()}
    assert set(agents) == set(photos)
    for agent_id, data in photos.items():
        assert agents[agent_id].photo.name == expected_name(data)
        with agents[agent_id].photo.open("rb") as handle:
            assert handle.read() == data
    stored = photo_files(media_root)
    assert len(stored) == 30
    # The files extracted at planning are gone once the job is complete.
    assert not (media_root / f"imports/job-{job.pk}").exists()

    again = run_import(content, name="agents.zip", chunk_size=100)

    assert again.status == ImportJob.Status.COMPLETED
    assert (again.created_rows, again.updated_rows, again.unchanged_rows) == (0, 0, 30)
    assert not ImportJournalEntry.objects.filter(job=again).exists()
    assert photo_files(media_root) == stored  # no new file, none rewritten


def test_paths_relative_to_the_data_file_normalized_and_xlsx_inside(media_root):  # noqa: F811
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["ID", "Full Name", "State", "Photo Path"])
    sheet.append(["n-1", "Ann", "CA", "./photos/Ann.PNG"])
    sheet.append(["n-2", "Bob", "NY", "photos\\bob.jpg"])  # Windows separators
    sheet.append(["n-3", "Cy", "TX", "shared/cy.webp"])  # from the archive root
    sheet.append(["n-4", "Di", "WA", ""])  # no photo
    sheet.append(["n-5", "Ed", "OR", "photos/ann.png"])  # other case, same file as Ann
    data = io.BytesIO()
    workbook.save(data)
    content = zip_bytes(
        {
            "export/": b"",
            "export/agents.xlsx": data.getvalue(),
            "export/photos/ann.png": image(1, "PNG"),
            "export/photos/bob.jpg": image(2, "JPEG"),
            "shared/cy.webp": image(3, "WEBP"),
            "__MACOSX/export/._agents.xlsx": b"\x00\x05\x16\x07",  # macOS litter: not a second data file
        }
    )

    job = run_import(content, name="export.zip")

    assert job.status == ImportJob.Status.COMPLETED, (job.error_message, list(job.row_errors.all()))
    photos = dict(Agent.objects.values_list("id", "photo"))
    assert photos["n-1"] == photos["n-5"] == expected_name(image(1, "PNG"))
    assert photos["n-2"] == expected_name(image(2, "JPEG"))
    assert photos["n-3"] == expected_name(image(3, "WEBP"))
    assert photos["n-4"] is None
    assert len(photo_files(media_root)) == 3


def test_dry_run_validates_photos_and_stores_nothing(media_root):  # noqa: F811
    content, _ = agents_zip(6)
    members = {"agents.csv": b"id,name,state,photo\nd-1,Ann,CA,photos/missing.png\n"}
    job = run_import(content, name="agents.zip", dry_run=True)
    assert job.status == ImportJob.Status.COMPLETED and job.created_rows == 6
    assert Agent.objects.count() == 0 and photo_files(media_root) == {}

    job = run_import(zip_bytes(members), name="agents.zip", dry_run=True)
    assert job.failed_rows == 1 and job.row_errors.get().column == "photo"


# --- refused archives: failed at planning, nothing written ------------------------


@pytest.mark.parametrize(
    ("members", "fragments"),
    [
        (
            {
                "agents.csv": b"id,name,state,photo\ne-1,Ann,CA,a.png\n",
                "a.png": image(1),
                "../evil.png": image(2),
            },
            ["'../evil.png'", "outside the archive"],
        ),
        ({"agents.csv": b"x", "photos/../../evil.png": b"x"}, ["'photos/../../evil.png'", "outside"]),
        ({"agents.csv": b"x", "/etc/evil.png": b"x"}, ["'/etc/evil.png'", "absolute path"]),
        ({"agents.csv": b"x", "C:/evil.png": b"x"}, ["'C:/evil.png'", "absolute path"]),
        ({"agents.csv": b"x", "bomb.png": lambda: bytes(50 * 1024 * 1024)}, ["'bomb.png'", "zip bomb"]),
        ({"photos/a.png": image(1)}, ["no data file"]),
        ({"a.csv": b"id\n", "b/agents.json": b"[]"}, ["2 data files", "a.csv", "b/agents.json"]),
        ({"agents.csv": b"id,name,state,photo\n"}, ["header but no data rows"]),
        ({"agents.csv": b"name,photo\nAnn,a.png\n", "a.png": image(1)}, ["missing required column", "state"]),
        ({"agents.csv": bytes(range(256)) * 4}, ["agents.zip/agents.csv: binary content"]),
    ],
    ids=[
        "dotdot",
        "nested-dotdot",
        "absolute",
        "drive",
        "zip-bomb",
        "no-data",
        "two-data",
        "header-only",
        "missing-column",
        "binary-csv",
    ],
)
def test_refused_archive_fails_at_planning_and_writes_nothing(media_root, members, fragments):  # noqa: F811
    job = run_import(zip_bytes(members), name="agents.zip")
    assert_refused(job, *fragments, media=media_root)
    if fragments[0].startswith("'"):
        assert job.error_message.startswith("agents.zip: refused:")


def test_not_a_zip_and_a_lying_member_size_are_refused(media_root):  # noqa: F811
    job = run_import(b"id,name,state\n", name="agents.zip")
    assert_refused(job, "agents.zip: not a ZIP archive", media=media_root)

    # A member whose directory entry declares fewer bytes than it really holds:
    # reading stops at the declared size and the CRC check refuses it.
    content = bytearray(
        zip_bytes({"agents.csv": b"id,name,state,photo\nl-1,Ann,CA,a.png\n", "a.png": image(5)})
    )
    record = content.rfind(b"PK\x01\x02")  # the last central directory record: a.png's
    content[record + 24 : record + 28] = (100).to_bytes(4, "little")  # its uncompressed size
    job = run_import(bytes(content), name="agents.zip")
    assert_refused(job, "agents.zip: refused: Archive member 'a.png' is corrupt", media=media_root)


# --- row errors on column photo ----------------------------------------------------


def test_missing_and_invalid_photos_are_row_errors_on_column_photo(media_root):  # noqa: F811
    rows = [
        {"id": "r-1", "name": "Good", "state": "CA", "photo": "photos/good.png"},
        {"id": "r-2", "name": "Missing", "state": "CA", "photo": "x/y.jpg"},
        {"id": "r-3", "name": "Text", "state": "CA", "photo": "photos/readme.png"},
        {"id": "r-4", "name": "Tiny", "state": "CA", "photo": "photos/tiny.png"},
        {"id": "r-5", "name": "Huge", "state": "CA", "photo": "photos/huge.jpg"},
        {"id": "r-6", "name": "Bad state", "state": "ZZ", "photo": "x/y.jpg"},
    ]
    content = zip_bytes(
        {
            "agents.csv": agents_csv(rows),
            "photos/good.png": image(1),
            "photos/readme.png": b"this is not an image\n" * 10,
            "photos/tiny.png": image(2, size=(8, 8)),
            "photos/huge.jpg": b"\xff\xd8" + random.Random(1).randbytes(6 * 1024 * 1024),  # over 5 MB
        },
    )
    job = run_import(content, name="agents.zip")

    assert job.status == ImportJob.Status.COMPLETED_WITH_ERRORS
    assert (job.created_rows, job.failed_rows) == (1, 5)
    errors = {e.line: e for e in job.row_errors.all()}
    assert {line: e.column for line, e in errors.items()} == {
        3: "photo",
        4: "photo",
        5: "photo",
        6: "photo",
        7: "state",  # an otherwise invalid row is reported for that; its photo is not read
    }
    assert errors[3].message == "photo x/y.jpg is not in the archive" and errors[3].value == "x/y.jpg"
    assert "photos/readme.png: not a supported image" in errors[4].message
    assert "photos/tiny.png" in errors[5].message and "at least 32 px" in errors[5].message
    assert "photos/huge.jpg" in errors[6].message and "limit is 5 MB" in errors[6].message
    assert list(Agent.objects.values_list("id", flat=True)) == ["r-1"]
    assert len(photo_files(media_root)) == 1


def test_photo_column_in_a_plain_csv_is_ignored_with_a_warning(media_root):  # noqa: F811
    AgentFactory(id="p-1", name="Ann", state="CA", photo="agents/photos/kept.png")
    job = run_import(b"id,name,state,photo\np-1,Ann,NV,ann.png\np-2,Bob,CA,bob.png\n", name="agents.csv")

    assert job.status == ImportJob.Status.COMPLETED
    assert any("Column 'photo' ignored" in w and "ZIP" in w for w in job.warnings)
    assert (job.created_rows, job.updated_rows) == (1, 1)
    assert dict(Agent.objects.values_list("id", "photo")) == {"p-1": "agents/photos/kept.png", "p-2": None}


def test_zip_without_photo_column_warns_about_unused_files(media_root):  # noqa: F811
    content = zip_bytes(
        {"agents.json": json.dumps([{"name": "Ann", "state": "CA"}]).encode(), "a.png": image(1)}
    )
    job = run_import(content, name="agents.zip")
    assert job.status == ImportJob.Status.COMPLETED and job.created_rows == 1
    assert any("no photo column" in w for w in job.warnings)
    assert not (media_root / files_prefix(job.pk)).exists()


@pytest.mark.django_db(transaction=True)
def test_cli_imports_a_zip(tmp_path, media_root, capsys):  # noqa: F811
    from django.core.management import call_command

    path = tmp_path / "agents.zip"
    path.write_bytes(agents_zip(3, prefix="cli")[0])
    call_command("import_agents", str(path), "--json")
    summary = json.loads(capsys.readouterr().out)
    assert (summary["status"], summary["created"]) == ("completed", 3)
    assert Agent.objects.exclude(photo=None).count() == 3
    assert not (media_root / f"imports/job-{summary['job_id']}").exists()


# --- end to end: import, then the asset push to the bucket ---------------------------


def _bucket_objects(settings) -> dict[str, dict]:
    client = r2_client_build()
    keys = S3Bucket(name=settings.R2_BUCKET, client=client).keys()
    return {key: client.head_object(Bucket=settings.R2_BUCKET, Key=key) for key in keys}


def _assert_pushed(settings, photos: dict[str, bytes]) -> None:
    objects = _bucket_objects(settings)
    assert len(objects) == 2 * len(photos)  # original + thumbnail each
    urls = dict(Agent.objects.values_list("id", "photo_url"))
    types = {ext: content_type for _, ext, content_type in FORMATS}
    for agent_id, data in photos.items():
        ext = expected_name(data).rsplit(".", 1)[1]
        key = f"agents/{agent_id}/{hashlib.sha256(data).hexdigest()[:16]}.{ext}"
        assert urls[agent_id] == f"{settings.R2_PUBLIC_BASE_URL}/{key}"
        assert objects[key]["ContentType"] == types[ext]
        assert objects[key]["ContentLength"] == len(data)
        assert objects[key.rsplit(".", 1)[0] + "-thumb.webp"]["ContentType"] == "image/webp"


def test_zip_import_then_asset_push_publishes_every_photo(r2):  # noqa: F811
    content, photos = agents_zip(30)
    job = run_import(content, name="agents.zip")
    assert job.status == ImportJob.Status.COMPLETED

    run = r2_sync_run(reason="test")

    assert run.status == AssetSyncRun.Status.COMPLETED, run.error
    assert (run.objects_put, run.agents_updated) == (60, 30)
    _assert_pushed(r2, photos)


class MemoryBucket:
    """An in-process bucket recording what the push sends (moto answers ~25 ms per request,
    which would make 2,000 objects take a minute; the moto test above covers the wire)."""

    def __init__(self):
        self.objects: dict[str, tuple[bytes, str, str]] = {}

    def put(self, *, key: str, body: bytes, content_type: str, cache_control: str) -> None:
        self.objects[key] = (body, content_type, cache_control)

    def head(self, *, key: str) -> ObjectHead | None:
        if key not in self.objects:
            return None
        body, content_type, cache_control = self.objects[key]
        return ObjectHead(key=key, size=len(body), content_type=content_type, cache_control=cache_control)

    def delete(self, *, key: str) -> None:
        self.objects.pop(key, None)

    def keys(self, *, prefix: str = "") -> list[str]:
        return sorted(k for k in self.objects if k.startswith(prefix))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_thousand_agents_zip_to_bucket_and_d1(r2, d1):  # noqa: F811
    """The issue's check: 1,000 agents and their photos imported, then assets and D1 synced."""
    from sync.models import SyncRun
    from sync.services import sync_run_execute
    from sync.tests.factories import industries_ensure

    industries_ensure()
    content, photos = agents_zip(1000, prefix="k", folder="batch/")
    job = run_import(content, name="agents.zip", chunk_size=250)
    assert job.status == ImportJob.Status.COMPLETED, job.error_message
    assert (job.created_rows, job.chunks.count()) == (1000, 4)

    bucket = MemoryBucket()
    run = r2_sync_run(reason="test", bucket=bucket)
    assert run.status == AssetSyncRun.Status.COMPLETED, run.error
    assert (run.objects_put, run.agents_updated) == (2000, 1000)
    urls = dict(Agent.objects.values_list("id", "photo_url"))
    types = {ext: content_type for _, ext, content_type in FORMATS}
    for agent_id, data in photos.items():
        ext = expected_name(data).rsplit(".", 1)[1]
        key = f"agents/{agent_id}/{hashlib.sha256(data).hexdigest()[:16]}.{ext}"
        assert bucket.objects[key][:2] == (data, types[ext])
        assert bucket.objects[key][2] == IMMUTABLE_CACHE_CONTROL
        assert urls[agent_id] == f"{r2.R2_PUBLIC_BASE_URL}/{key}"

    sync = sync_run_execute(reason="test")
    assert sync.status == SyncRun.Status.COMPLETED, sync.error
    d1_urls = {r["id"]: r["photo_url"] for r in d1.query("SELECT id, photo_url FROM agents")}
    assert d1_urls == urls
