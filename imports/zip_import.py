"""ZIP imports: one data file (.csv, .xlsx or .json) plus the photos its `photo` column names.

Planning (planning.import_job_plan):
  1. `zip_data_file` vets the whole archive with assets.archives.zip_members_check
     (member count, total size, compression ratio, paths leaving the archive,
     links, overlapping entries) before a byte is inflated, finds the one data
     file and extracts it to a local temporary file; planning stages it like a
     file of its own format (a zip job always ends up with a staged CSV).
  2. Once the data file planned cleanly, `zip_files_extract` copies every
     other member to storage under `imports/job-<id>/files/<relative path>` and
     writes a manifest (`imports/job-<id>/files.json`: relative path -> storage
     name and size). Any ArchiveError fails the job here: nothing is written.

Why extract at planning rather than read members from the archive in each
chunk: the archive lives in Django storage (S3 in production), where opening a
ZipFile downloads the whole object; with many chunks on many workers that is
the whole archive once per chunk. Extracted once, a chunk reads only the few
photos its rows name, the archive is vetted exactly once, and the actual
(not declared) size of every member is enforced while it is copied.

Chunks (chunks.import_chunk_write): `ZipPhotoResolver` turns a row's
`photo` cell into a storage name: the file is looked up in the manifest,
validated with assets.validators.agent_photo_validate and stored
content-addressed at `agents/photos/<sha256[:16]>.<ext>` — the same bytes always
give the same name, so a re-import changes nothing and stores nothing. A
missing file or a bad image is a row error on column `photo`. A blank cell
clears the agent's photo, like a blank cell of any other column the file
carries. A dry run validates the photos but stores none.

A `photo` column in a plain CSV/XLSX/JSON upload has no files to read: the
column is ignored with a warning on the job (like an unknown column) and the
rows import without it — see `PHOTO_WITHOUT_ARCHIVE_WARNING`.
"""

import contextlib
import hashlib
import json
import logging
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile

from assets.archives import ArchiveError, zip_member_open, zip_members_check
from assets.validators import AGENT_PHOTO_MAX_BYTES, agent_photo_validate
from estateflow.storage import shared_storage

from .formats import ImportFileError
from .models import ImportJob

logger = logging.getLogger(__name__)

ZIP_MAX_MEMBERS = 20_000
ZIP_MAX_TOTAL_BYTES = 2 * 1024**3
# Photos barely compress and CSV/JSON compress 5-20x; 1000x+ is a bomb. Only
# members of 1 MB and more are held to it (archives.RATIO_MIN_SIZE).
ZIP_MAX_RATIO = 200
DATA_EXTENSIONS = {".csv": "csv", ".xlsx": "xlsx", ".json": "json"}
PHOTOS_PREFIX = "agents/photos/"  # Agent.photo's upload_to
COPY_BUFFER = 1 << 20

PHOTO_WITHOUT_ARCHIVE_WARNING = (
    "Column 'photo' ignored: photos can only be imported from a ZIP upload holding the data file "
    "and the images it names; this file has no images to read."
)


def files_prefix(job_id: int) -> str:
    return f"imports/job-{job_id}/files/"


def manifest_name(job_id: int) -> str:
    return f"imports/job-{job_id}/files.json"


def member_path(name: str) -> str:
    """Archive member name or `photo` cell -> 'dir/file.jpg': forward slashes, no './', no empty parts."""
    parts = name.strip().replace("\\", "/").split("/")
    return "/".join(p for p in parts if p not in ("", "."))


def _is_junk(path: str) -> bool:
    """macOS resource forks and desktop litter that zip tools add; never data, never photos."""
    base = PurePosixPath(path).name
    return path.startswith("__MACOSX/") or base.startswith("._") or base in (".DS_Store", "Thumbs.db")


def _refused(job: ImportJob, exc: ArchiveError) -> ImportFileError:
    return ImportFileError(f"{job.original_name}: refused: {exc} Nothing was imported.")


@contextmanager
def _archive(job: ImportJob) -> Iterator[tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]]:
    """The job's archive, vetted as a whole, with its file members (directories left out)."""
    name = job.original_name
    with shared_storage().open(job.file.name, "rb") as raw:
        if not raw.read(4).startswith(b"PK"):
            raise ImportFileError(f"{name}: not a ZIP archive.")
        raw.seek(0)
        try:
            archive = zipfile.ZipFile(raw)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError) as exc:
            raise ImportFileError(f"{name}: not a valid ZIP archive ({exc}).") from None
        with archive:
            try:
                members = zip_members_check(
                    archive,
                    max_members=ZIP_MAX_MEMBERS,
                    max_total_uncompressed=ZIP_MAX_TOTAL_BYTES,
                    max_ratio=ZIP_MAX_RATIO,
                )
            except ArchiveError as exc:
                raise _refused(job, exc) from None
            yield archive, members


def _data_member(job: ImportJob, members: list[zipfile.ZipInfo]) -> zipfile.ZipInfo:
    found = [
        m
        for m in members
        if not _is_junk(member_path(m.filename))
        and PurePosixPath(m.filename).suffix.lower() in DATA_EXTENSIONS
    ]
    if not found:
        raise ImportFileError(
            f"{job.original_name}: no data file in the archive; it must hold one .csv, .xlsx or .json file."
        )
    if len(found) > 1:
        names = ", ".join(member_path(m.filename) for m in found[:20])
        raise ImportFileError(
            f"{job.original_name}: {len(found)} data files in the archive ({names}); it must hold exactly one."
        )
    return found[0]


@dataclass
class DataFile:
    raw: IO[bytes]  # local, seekable copy of the member
    format: str
    name: str  # for messages: 'agents.zip/export/agents.csv'


@contextmanager
def zip_data_file(job: ImportJob) -> Iterator[DataFile]:
    """Vet the archive and yield its data file as a local temporary file.

    The data file is only needed while planning stages it into the CSV that
    chunks read, so it goes to a temporary file, not to storage.
    """
    with _archive(job) as (archive, members):
        member = _data_member(job, members)
        path = member_path(member.filename)
        with tempfile.TemporaryFile() as tmp:
            try:
                with zip_member_open(archive, member, max_size=member.file_size) as source:
                    shutil.copyfileobj(source, tmp, COPY_BUFFER)
            except ArchiveError as exc:
                raise _refused(job, exc) from None
            tmp.seek(0)
            yield DataFile(
                raw=tmp,
                format=DATA_EXTENSIONS[PurePosixPath(path).suffix.lower()],
                name=f"{job.original_name}/{path}",
            )


# --- the other members: extracted once, at planning ------------------------------


def _manifest_load(job_id: int) -> dict | None:
    name = manifest_name(job_id)
    if not shared_storage().exists(name):
        return None
    with shared_storage().open(name, "rb") as handle:
        return json.load(handle)


def zip_files_cleanup(*, job_id: int) -> None:
    """Delete a job's extracted files and manifest (idempotent)."""
    manifest = _manifest_load(job_id)
    if manifest is None:
        return
    for entry in manifest["files"].values():
        if entry.get("name"):
            shared_storage().delete(entry["name"])
    shared_storage().delete(manifest_name(job_id))
    _empty_folders_remove(f"imports/job-{job_id}")


def _empty_folders_remove(name: str) -> None:
    """On a local filesystem storage, remove the folders deleting files left empty (object stores have none)."""
    try:
        root = Path(shared_storage().path(name))
    except NotImplementedError:
        return
    if not root.is_dir():
        return
    for folder in sorted(
        (p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
    ):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only succeeds when empty
    with contextlib.suppress(OSError):
        root.rmdir()


def zip_files_discard(*, job_id: int) -> None:
    """zip_files_cleanup once a job is done; a storage failure only leaves files behind."""
    try:
        zip_files_cleanup(job_id=job_id)
    except Exception:  # OSError locally, botocore errors on S3
        logger.exception("Import job %s: could not delete the files extracted from its archive", job_id)


def zip_files_extract(job: ImportJob, *, columns: list[str | None]) -> list[str]:
    """Copy the archive's non-data members to storage and write the manifest; returns job warnings.

    Called after the data file planned cleanly. Re-planning (a resumed job)
    starts from scratch. A member over the photo size limit is not copied:
    the manifest records its size, and a row naming it gets a row error.
    """
    zip_files_cleanup(job_id=job.pk)
    written: list[str] = []
    files: dict[str, dict] = {}
    try:
        with _archive(job) as (archive, members):
            data = _data_member(job, members)
            others = [
                m
                for m in members
                if m is not data and member_path(m.filename) and not _is_junk(member_path(m.filename))
            ]
            if "photo" not in columns:
                return (
                    [
                        f"The data file has no photo column; {len(others):,} other file(s) in the archive ignored."
                    ]
                    if others
                    else []
                )
            prefix = files_prefix(job.pk)
            for member in others:
                path = member_path(member.filename)
                if member.file_size > AGENT_PHOTO_MAX_BYTES:
                    files[path] = {"name": None, "size": member.file_size}
                    continue
                with zip_member_open(archive, member, max_size=AGENT_PHOTO_MAX_BYTES) as source:
                    content = source.read(AGENT_PHOTO_MAX_BYTES + 1)
                target = prefix + path
                if shared_storage().exists(target):
                    shared_storage().delete(target)
                saved = shared_storage().save(target, ContentFile(content))
                written.append(saved)
                files[path] = {"name": saved, "size": len(content)}
        manifest = {"data_dir": str(PurePosixPath(member_path(data.filename)).parent), "files": files}
        shared_storage().save(manifest_name(job.pk), ContentFile(json.dumps(manifest).encode()))
    except ArchiveError as exc:
        _delete_all(written)
        raise _refused(job, exc) from None
    except OSError as exc:
        _delete_all(written)
        raise ImportFileError(f"{job.original_name}: cannot extract the archive's files: {exc}.") from None
    except BaseException:
        _delete_all(written)
        raise
    return []


def _delete_all(names: list[str]) -> None:
    for name in names:
        try:
            shared_storage().delete(name)
        except OSError:  # pragma: no cover - best effort
            logger.warning("could not delete extracted file %s", name)


# --- chunks: a row's photo cell -> a content-addressed storage name -------------


class ZipPhotoResolver:
    """Callable given to RowParser: `photo` cell -> storage name (None for a blank cell).

    Raises ValueError with the row error's message. One per chunk; results
    are cached per path, since several agents may share a photo.
    """

    def __init__(self, job: ImportJob, manifest: dict):
        self.dry_run = job.dry_run
        self.files: dict[str, dict] = manifest["files"]
        data_dir = manifest.get("data_dir") or "."
        self.base = "" if data_dir == "." else data_dir + "/"
        self.folded = {path.casefold(): path for path in self.files}
        self.cache: dict[str, str | ValueError] = {}

    def _find(self, path: str) -> str | None:
        # Relative to the data file's folder first (a zipped "export/" folder),
        # then to the archive root; exact case first, then any case.
        for candidate in dict.fromkeys((self.base + path, path)):
            if candidate in self.files:
                return candidate
        for candidate in dict.fromkeys((self.base + path, path)):
            found = self.folded.get(candidate.casefold())
            if found:
                return found
        return None

    def __call__(self, cell: str) -> str | None:
        path = member_path(cell)
        if not path:
            return None
        if path not in self.cache:
            try:
                self.cache[path] = self._resolve(path)
            except ValueError as exc:
                self.cache[path] = exc
        result = self.cache[path]
        if isinstance(result, ValueError):
            raise result
        return result

    def _resolve(self, path: str) -> str:
        found = self._find(path)
        if found is None:
            raise ValueError(f"photo {path} is not in the archive")
        entry = self.files[found]
        if entry["name"] is None:
            raise ValueError(
                f"{found}: the photo is {entry['size'] / 1024 / 1024:.1f} MB; the limit is "
                f"{AGENT_PHOTO_MAX_BYTES // 1024 // 1024} MB."
            )
        with shared_storage().open(entry["name"], "rb") as handle:
            data = handle.read(AGENT_PHOTO_MAX_BYTES + 1)
        try:
            info = agent_photo_validate(ContentFile(data, name=found))
        except ValidationError as exc:
            raise ValueError("; ".join(exc.messages)) from None
        name = f"{PHOTOS_PREFIX}{hashlib.sha256(data).hexdigest()[:16]}.{info.ext}"
        if not self.dry_run:
            photo_store(name, data)
        return name


def photo_store(name: str, data: bytes) -> None:
    """Store `data` under exactly `name`, once: content-addressed, so an existing file is the same bytes.

    A file of the wrong size (a write cut short) is replaced. When another
    worker stored the same name meanwhile, storage picks another name for
    ours; that copy is deleted and the shared one kept.
    """
    if shared_storage().exists(name):
        if shared_storage().size(name) == len(data):
            return
        shared_storage().delete(name)
    saved = shared_storage().save(name, ContentFile(data))
    if saved != name:
        shared_storage().delete(saved)


def zip_photo_resolver(job: ImportJob) -> ZipPhotoResolver | None:
    """The resolver for a zip job whose data file has a photo column; None otherwise."""
    if job.format != ImportJob.Format.ZIP or "photo" not in (job.columns or []):
        return None
    manifest = _manifest_load(job.pk)
    if manifest is None:
        raise ImportFileError(
            f"{job.original_name}: the files extracted from the archive are gone "
            f"({manifest_name(job.pk)}); start the import again."
        )
    return ZipPhotoResolver(job, manifest)
