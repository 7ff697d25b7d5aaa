"""The public asset bucket: R2 through boto3 when an endpoint is set, a local folder otherwise.

Both implementations offer the same small interface (`put`, `head`, `delete`,
`keys`), so the push does not care which one it talks to.
"""

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from django.conf import settings

# Keys carry a content hash, so an object never changes once written.
IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"
R2_REGION = "auto"


@dataclass(frozen=True)
class ObjectHead:
    key: str
    size: int
    content_type: str | None = None
    cache_control: str | None = None


class Bucket(Protocol):
    name: str

    def put(self, *, key: str, body: bytes, content_type: str, cache_control: str) -> None: ...
    def head(self, *, key: str) -> ObjectHead | None: ...
    def delete(self, *, key: str) -> None: ...
    def keys(self, *, prefix: str = "") -> list[str]: ...


def _setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def r2_client_config(**overrides: Any) -> Config:
    """botocore Config for R2.

    `when_required` for both checksum settings: since 1.36 boto3 otherwise adds
    CRC checksums to every PutObject and, over TLS, sends the body as
    aws-chunked with an `x-amz-trailer`, which R2 rejects. Standard retry mode
    retries 5xx, throttling and connection/read timeouts with jittered backoff;
    PutObject of a content-hash key is idempotent, so a retried write is safe.
    """
    options: dict[str, Any] = {
        "region_name": R2_REGION,
        "signature_version": "s3v4",
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
        # botocore counts max_attempts as retries after the first try.
        "retries": {"max_attempts": _setting("R2_MAX_ATTEMPTS", 5), "mode": "standard"},
        "connect_timeout": _setting("R2_CONNECT_TIMEOUT", 5),
        "read_timeout": _setting("R2_READ_TIMEOUT", 30),
        # R2 accepts both styles; path style also works against any local
        # S3 server (moto) without wildcard DNS.
        "s3": {"addressing_style": _setting("R2_ADDRESSING_STYLE", "path")},
    }
    options.update(overrides)
    return Config(**options)


def r2_client_build(*, config: Config | None = None, endpoint_url: str | None = None, verify: Any = None):
    """A boto3 S3 client for the R2 endpoint in settings (or `endpoint_url`)."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url or settings.R2_ENDPOINT_URL,
        aws_access_key_id=settings.R2_ACCESS_KEY_ID or None,
        aws_secret_access_key=settings.R2_SECRET_ACCESS_KEY or None,
        region_name=R2_REGION,
        config=config or r2_client_config(),
        verify=verify,
    )


def r2_storage_build(**overrides: Any):
    """django-storages S3Storage for the bucket, e.g. to keep agent photos on R2 too.

    Same endpoint, credentials and checksum config as the push client; no
    ACLs (R2 has none) and plain public URLs (no query-string signatures).
    """
    from storages.backends.s3 import S3Storage

    options: dict[str, Any] = dict(
        bucket_name=settings.R2_BUCKET,
        endpoint_url=settings.R2_ENDPOINT_URL,
        access_key=settings.R2_ACCESS_KEY_ID,
        secret_key=settings.R2_SECRET_ACCESS_KEY,
        region_name=R2_REGION,
        client_config=r2_client_config(),
        default_acl=None,
        querystring_auth=False,
        file_overwrite=False,
        object_parameters={"CacheControl": IMMUTABLE_CACHE_CONTROL},
    )
    options.update(overrides)
    return S3Storage(**options)


class S3Bucket:
    def __init__(self, *, name: str, client) -> None:
        self.name = name
        self.client = client

    def put(self, *, key: str, body: bytes, content_type: str, cache_control: str) -> None:
        self.client.put_object(
            Bucket=self.name, Key=key, Body=body, ContentType=content_type, CacheControl=cache_control
        )

    def head(self, *, key: str) -> ObjectHead | None:
        try:
            response = self.client.head_object(Bucket=self.name, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return ObjectHead(
            key=key,
            size=response["ContentLength"],
            content_type=response.get("ContentType"),
            cache_control=response.get("CacheControl"),
        )

    def delete(self, *, key: str) -> None:
        # S3 DeleteObject succeeds for a missing key, so a retried delete is harmless.
        self.client.delete_object(Bucket=self.name, Key=key)

    def keys(self, *, prefix: str = "") -> list[str]:
        found: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.name, Prefix=prefix):
            found.extend(item["Key"] for item in page.get("Contents", []))
        return found


class LocalBucket:
    """A folder standing in for the bucket (no R2 endpoint configured).

    Content-Type and Cache-Control are not stored: the DEBUG static route
    guesses the type from the extension, which the push chose from the format.
    """

    def __init__(self, *, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.name = f"local:{self.root}"

    def _path(self, key: str) -> Path:
        # Keys are built by the push, but never let one escape the folder.
        if key.startswith("/") or ".." in key.split("/") or "\\" in key:
            raise ValueError(f"Unsafe object key {key!r}")
        return self.root / key

    def put(self, *, key: str, body: bytes, content_type: str, cache_control: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write-then-rename so a reader (or a crash) never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def head(self, *, key: str) -> ObjectHead | None:
        path = self._path(key)
        if not path.is_file():
            return None
        return ObjectHead(key=key, size=path.stat().st_size)

    def delete(self, *, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def keys(self, *, prefix: str = "") -> list[str]:
        if not self.root.exists():
            return []
        found = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(k for k in found if k.startswith(prefix) and not Path(k).name.startswith(".tmp-"))


def bucket_get() -> Bucket:
    """The bucket the settings point at: R2 when an endpoint is configured, else R2_LOCAL_PATH."""
    if settings.R2_ENDPOINT_URL:
        return S3Bucket(name=settings.R2_BUCKET, client=r2_client_build())
    return LocalBucket(root=settings.R2_LOCAL_PATH)
