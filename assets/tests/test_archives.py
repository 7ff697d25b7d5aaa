"""Safe ZIP reading with hand-made archives."""

import io
import stat
import struct
import zipfile

import pytest

from assets.archives import ArchiveError, _LimitedReader, zip_member_open, zip_members_check

LIMITS = {"max_members": 10, "max_total_uncompressed": 10 * 1024 * 1024, "max_ratio": 100}


def _zip(members: dict[str, bytes], *, compression=zipfile.ZIP_DEFLATED) -> zipfile.ZipFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return zipfile.ZipFile(io.BytesIO(buffer.getvalue()))


def _refused(archive: zipfile.ZipFile, match: str, **limits) -> ArchiveError:
    with pytest.raises(ArchiveError, match=match) as excinfo:
        zip_members_check(archive, **{**LIMITS, **limits})
    return excinfo.value


def test_good_archive_lists_files_and_reads_them():
    archive = _zip(
        {"agents.csv": b"id,photo\n1,photos/a.png\n", "photos/": b"", "photos/a.png": b"png-bytes"}
    )
    members = zip_members_check(archive, **LIMITS)
    assert [m.filename for m in members] == ["agents.csv", "photos/a.png"]
    with zip_member_open(archive, members[1], max_size=100) as handle:
        assert handle.read() == b"png-bytes"


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("../evil.png", "outside the archive"),
        ("photos/../../evil.png", "outside the archive"),
        ("photos\\..\\..\\evil.png", "outside the archive"),
        ("/etc/passwd", "absolute path"),
        ("C:/Windows/evil.png", "absolute path"),
        ("C:\\evil.png", "absolute path"),
        ("\\\\server\\share\\evil.png", "absolute path"),
    ],
)
def test_paths_leaving_the_archive_are_refused(name, match):
    error = _refused(_zip({"ok.csv": b"x", name: b"evil"}), match)
    assert error.member == name and repr(name) in str(error)


def test_symlink_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("photos/link.png")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    _refused(zipfile.ZipFile(io.BytesIO(buffer.getvalue())), "'photos/link.png' is a symbolic link")


def test_too_many_members_refused():
    _refused(_zip({f"p{i}.png": b"x" for i in range(11)}), "11 entries; at most 10")


def test_declared_total_over_limit_refused():
    archive = _zip({"a.bin": b"\1" * 600, "b.bin": b"\2" * 600}, compression=zipfile.ZIP_STORED)
    error = _refused(archive, "expands to more than 1000 bytes", max_total_uncompressed=1000)
    assert error.member == "b.bin"


def test_member_size_limit_refused():
    _refused(_zip({"a.bin": b"\1" * 600}), "'a.bin' is 600 bytes uncompressed", max_member_size=500)


def test_compression_ratio_bomb_refused():
    # 8 MB of zeros deflates to ~8 KB: ratio ~1000:1.
    _refused(_zip({"bomb.csv": b"\0" * (8 * 1024 * 1024)}), r"'bomb.csv' compresses \d+:1 \(limit 100:1\)")


def test_small_compressible_member_is_fine():
    assert len(zip_members_check(_zip({"blank.csv": b"\0" * 50_000}), **LIMITS)) == 1


def test_duplicate_and_encrypted_members_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, pytest.warns(UserWarning):
        archive.writestr("a.png", b"1")
        archive.writestr("a.png", b"2")
    _refused(zipfile.ZipFile(io.BytesIO(buffer.getvalue())), "'a.png' appears more than once")

    raw = bytearray(_zip({"secret.csv": b"x"}).fp.getvalue())
    central = raw.find(b"PK\x01\x02")
    raw[central + 8] |= 0x1  # general purpose flag: encrypted
    _refused(zipfile.ZipFile(io.BytesIO(bytes(raw))), "'secret.csv' is encrypted")


def test_overlapping_members_refused():
    """Two central-directory entries sharing one compressed stream (a non-recursive zip bomb)."""
    raw = bytearray(_zip({"a.bin": b"a" * 100, "b.bin": b"b" * 100}).fp.getvalue())
    second = raw.find(b"PK\x01\x02", raw.find(b"PK\x01\x02") + 1)
    raw[second + 42 : second + 46] = struct.pack("<I", 0)  # b.bin's local header offset -> a.bin's
    _refused(zipfile.ZipFile(io.BytesIO(bytes(raw))), "'a.bin' and 'b.bin' overlap")


def test_member_open_enforces_declared_and_actual_size():
    archive = _zip({"data.csv": b"x" * 5000})
    info = archive.getinfo("data.csv")
    with pytest.raises(ArchiveError, match="'data.csv' declares 5000 bytes; the limit is 1000"):
        zip_member_open(archive, info, max_size=1000)

    # A header that lies about the size: reading fails and names the member.
    info.file_size = 10
    handle = zip_member_open(archive, info, max_size=1000)
    with pytest.raises(ArchiveError, match="'data.csv'"):
        handle.read()


def test_limited_reader_stops_at_actual_bytes():
    reader = io.BufferedReader(_LimitedReader(io.BytesIO(b"y" * 2000), name="p.png", max_size=1500))
    with pytest.raises(ArchiveError, match="'p.png' expands beyond 1500 bytes"):
        reader.read()
    exact = io.BufferedReader(_LimitedReader(io.BytesIO(b"y" * 1500), name="p.png", max_size=1500))
    assert len(exact.read()) == 1500


def test_member_open_refuses_unsafe_name_even_unchecked():
    archive = _zip({"../evil.png": b"x"})
    with pytest.raises(ArchiveError, match="outside the archive"):
        zip_member_open(archive, "../evil.png", max_size=100)
