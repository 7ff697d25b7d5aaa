"""Safe reading of uploaded ZIP archives (e.g. a data file plus agents' photos).

`zip_members_check` vets the whole central directory before anything is
extracted: paths that would leave the archive, links, encryption, duplicate
or overlapping entries, and zip bombs (member count, declared sizes,
compression ratios). `zip_member_open` then enforces the *actual*
uncompressed size while reading, since declared sizes are attacker-supplied.
Nothing is ever extracted to disk by path here: callers read members as
streams and decide where the bytes go.
"""

import io
import re
import stat
import zipfile
import zlib
from zipfile import ZipFile, ZipInfo

# Below this size a high ratio is harmless (a few KB of zeros compress 1000:1).
RATIO_MIN_SIZE = 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
_LOCAL_HEADER_MIN = 30  # fixed part of a ZIP local file header


class ArchiveError(ValueError):
    """An archive (or one of its members) is refused; the message names the member."""

    def __init__(self, message: str, *, member: str | None = None) -> None:
        super().__init__(message)
        self.member = member


def _name_check(name: str) -> None:
    if not name or "\x00" in name:
        raise ArchiveError(f"Archive member {name!r} has an empty or invalid name.", member=name)
    # Windows tools sometimes write backslashes; treat them as separators.
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or _DRIVE.match(normalized):
        raise ArchiveError(
            f"Archive member {name!r} has an absolute path; only relative paths are allowed.", member=name
        )
    if ".." in normalized.split("/"):
        raise ArchiveError(
            f"Archive member {name!r} points outside the archive ('..' in its path).", member=name
        )


def _is_symlink(info: ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return info.create_system == 3 and stat.S_ISLNK(mode)


def zip_members_check(
    zip_file: ZipFile,
    *,
    max_members: int,
    max_total_uncompressed: int,
    max_ratio: float,
    max_member_size: int | None = None,
    ratio_min_size: int = RATIO_MIN_SIZE,
) -> list[ZipInfo]:
    """Vet every entry of `zip_file`; return its file members (directories left out) or raise ArchiveError."""
    infos = zip_file.infolist()
    if len(infos) > max_members:
        raise ArchiveError(f"The archive holds {len(infos)} entries; at most {max_members} are allowed.")

    seen: set[str] = set()
    total = 0
    files: list[ZipInfo] = []
    for info in infos:
        name = info.filename
        _name_check(name)
        if _is_symlink(info):
            raise ArchiveError(
                f"Archive member {name!r} is a symbolic link; links are not allowed.", member=name
            )
        if info.flag_bits & 0x1:
            raise ArchiveError(
                f"Archive member {name!r} is encrypted; encrypted archives are not supported.", member=name
            )
        key = name.replace("\\", "/").rstrip("/").casefold()
        if key in seen:
            raise ArchiveError(f"Archive member {name!r} appears more than once.", member=name)
        seen.add(key)
        if info.is_dir():
            continue
        if max_member_size is not None and info.file_size > max_member_size:
            raise ArchiveError(
                f"Archive member {name!r} is {info.file_size} bytes uncompressed; the limit per member is "
                f"{max_member_size} bytes.",
                member=name,
            )
        total += info.file_size
        if total > max_total_uncompressed:
            raise ArchiveError(
                f"The archive expands to more than {max_total_uncompressed} bytes (limit reached at member "
                f"{name!r}); possible zip bomb.",
                member=name,
            )
        if info.file_size >= ratio_min_size:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > max_ratio:
                raise ArchiveError(
                    f"Archive member {name!r} compresses {ratio:.0f}:1 (limit {max_ratio:g}:1); possible zip bomb.",
                    member=name,
                )
        files.append(info)

    # Overlapping entries (several central-directory records sharing the same
    # compressed bytes) are the trick behind non-recursive zip bombs.
    by_offset = sorted((i for i in infos if not i.is_dir()), key=lambda i: i.header_offset)
    for current, following in zip(by_offset, by_offset[1:], strict=False):
        if following.header_offset < current.header_offset + _LOCAL_HEADER_MIN + current.compress_size:
            raise ArchiveError(
                f"Archive members {current.filename!r} and {following.filename!r} overlap; possible zip bomb.",
                member=following.filename,
            )
    return files


class _LimitedReader(io.RawIOBase):
    def __init__(self, raw, *, name: str, max_size: int) -> None:
        self._raw = raw
        self._name = name
        self._left = max_size
        self._max = max_size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        # Ask for one byte more than allowed so overflow is seen, not silently cut.
        want = min(len(buffer), self._left + 1)
        try:
            data = self._raw.read(want)
        except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as exc:
            # zipfile reports a bad CRC or a lying header here; name the member.
            raise ArchiveError(f"Archive member {self._name!r} is corrupt: {exc}", member=self._name) from exc
        if len(data) > self._left:
            raise ArchiveError(
                f"Archive member {self._name!r} expands beyond {self._max} bytes; possible zip bomb.",
                member=self._name,
            )
        self._left -= len(data)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


def zip_member_open(zip_file: ZipFile, member: ZipInfo | str, *, max_size: int) -> io.BufferedReader:
    """Open a vetted member for reading; reading past `max_size` real bytes raises ArchiveError.

    zipfile also stops at the declared size and checks the CRC (a lying
    header raises ArchiveError too), but the limit here does not trust the
    header at all.
    """
    info = member if isinstance(member, ZipInfo) else zip_file.getinfo(member)
    _name_check(info.filename)
    if info.file_size > max_size:
        raise ArchiveError(
            f"Archive member {info.filename!r} declares {info.file_size} bytes; the limit is {max_size} bytes.",
            member=info.filename,
        )
    try:
        raw = zip_file.open(info, "r")
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError) as exc:
        raise ArchiveError(
            f"Archive member {info.filename!r} cannot be read: {exc}", member=info.filename
        ) from exc
    return io.BufferedReader(_LimitedReader(raw, name=info.filename, max_size=max_size))
