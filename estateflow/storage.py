"""The storage every host reaches: uploads, staged import files, ZIP members and agent photos.

STORAGES["imports"] is a private S3-compatible bucket when IMPORT_STORAGE_BUCKET is set (a worker on
another host reads what the web process saved) and MEDIA_ROOT otherwise. It is never the public
assets bucket (R2_BUCKET): nothing in it is meant to be public.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from django.core.files.storage import Storage, storages
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.functional import LazyObject, empty

SHARED_STORAGE_ALIAS = "imports"


class _SharedStorage(LazyObject):
    """STORAGES["imports"], looked up when first used: model fields hold this, not the backend."""

    def _setup(self) -> None:
        self._wrapped = storages[SHARED_STORAGE_ALIAS]


_shared = _SharedStorage()


@receiver(setting_changed)
def _shared_storage_reset(*, setting: str, **kwargs) -> None:
    # Django resets its own storages when STORAGES changes (tests); this proxy follows.
    if setting == "STORAGES":
        _shared._wrapped = empty


def shared_storage() -> Storage:
    # Used as FileField(storage=shared_storage): migrations record the function, not the backend, and
    # the proxy it returns follows the settings of the process (a worker's bucket, a test's folder).
    return _shared


class _RangeStream:
    """A ranged GET's body that reports file positions, so a reader seeking to `start` works unchanged."""

    def __init__(self, body, start: int):
        self.body, self.position = body, start

    def seek(self, position: int) -> int:
        if position != self.position:
            raise OSError(f"a ranged read cannot seek from byte {self.position} to {position}")
        return position

    def tell(self) -> int:
        return self.position

    def read(self, size: int = -1) -> bytes:
        data = self.body.read() if size is None or size < 0 else self.body.read(size)
        self.position += len(data)
        return data

    def close(self) -> None:
        self.body.close()


@contextmanager
def shared_file_range(name: str, *, start: int, end: int | None) -> Iterator[IO[bytes]]:
    """The bytes [start, end) of a stored file as a stream positioned at `start`.

    On a bucket this is one ranged GET: opening the object through the storage would download all of
    it (up to 512 MB) for each chunk of a few MB.
    """
    storage = shared_storage()
    bucket = getattr(storage, "bucket", None)
    if bucket is None:
        with storage.open(name, "rb") as handle:
            handle.seek(start)
            yield handle
        return
    byte_range = f"bytes={start}-" if end is None else f"bytes={start}-{max(start, end - 1)}"
    if end is not None and end <= start:
        yield _RangeStream(_Empty(), start)
        return
    body = bucket.Object(storage._normalize_name(name)).get(Range=byte_range)["Body"]
    stream = _RangeStream(body, start)
    try:
        yield stream
    finally:
        stream.close()


class _Empty:
    def read(self, size: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        pass
