"""Client configuration for R2, the local-folder stand-in and its DEBUG route."""

import warnings

import boto3
import botocore
import pytest
from botocore.config import Config
from django.core.files.base import ContentFile
from django.test import RequestFactory
from django.urls import resolve

from assets.models import AssetObject
from assets.services import r2_sync_run
from assets.storage import (
    LocalBucket,
    S3Bucket,
    bucket_get,
    r2_client_build,
    r2_client_config,
    r2_storage_build,
)

from .factories import AgentWithPhotoFactory

STREAMING_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"


def _capture(client) -> list[dict[str, str]]:
    """Headers of every PutObject the client sends, seen just before they go on the wire."""
    captured: list[dict[str, str]] = []

    def hook(request, **kwargs):
        captured.append(
            {k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()}
        )

    client.meta.events.register("before-send.s3.PutObject", hook)
    return captured


def _has_trailer(headers: dict[str, str]) -> bool:
    return (
        "x-amz-trailer" in headers
        or "aws-chunked" in headers.get("content-encoding", "")
        or headers.get("x-amz-content-sha256") == STREAMING_TRAILER
    )


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_put_object_sends_no_streaming_checksum_trailer(r2, moto_tls_endpoint):
    """Over TLS (as R2 is reached) our config sends a plain body; boto3's default config would not."""
    body = b"x" * 4096

    client = r2_client_build(endpoint_url=moto_tls_endpoint, verify=False)
    ours = _capture(client)
    S3Bucket(name=r2.R2_BUCKET, client=client).put(
        key="probe/ours.txt", body=body, content_type="text/plain", cache_control="no-cache"
    )
    assert len(ours) == 1
    assert not _has_trailer(ours[0]), ours[0]
    assert not any(h.startswith("x-amz-checksum-") for h in ours[0])
    assert ours[0]["content-length"] == str(len(body))

    # The same PutObject with boto3's default checksum settings.
    default = boto3.session.Session().client(
        "s3",
        endpoint_url=moto_tls_endpoint,
        aws_access_key_id="k",
        aws_secret_access_key="s",
        region_name="auto",
        config=Config(s3={"addressing_style": "path"}),
        verify=False,
    )
    theirs = _capture(default)
    default.put_object(Bucket=r2.R2_BUCKET, Key="probe/default.txt", Body=body, ContentType="text/plain")
    version = tuple(int(p) for p in botocore.__version__.split(".")[:2])
    if version >= (1, 36):  # boto3 1.36 started sending trailers by default
        assert _has_trailer(theirs[0]), theirs[0]


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_django_storages_s3storage_sends_no_trailer(r2, moto_tls_endpoint):
    storage = r2_storage_build(endpoint_url=moto_tls_endpoint, verify=False)
    captured = _capture(storage.connection.meta.client)
    name = storage.save("probe/storage.txt", ContentFile(b"hello r2", name="storage.txt"))
    assert captured and not any(_has_trailer(h) for h in captured)
    head = storage.connection.meta.client.head_object(Bucket=r2.R2_BUCKET, Key=name)
    assert head["CacheControl"] == "public, max-age=31536000, immutable"
    assert storage.url(name).endswith(f"/{r2.R2_BUCKET}/{name}")


def test_client_config_matches_r2(settings):
    settings.R2_MAX_ATTEMPTS = 7
    config = r2_client_config()
    assert config.region_name == "auto"
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"
    assert config.retries == {"max_attempts": 7, "mode": "standard"}
    assert config.s3 == {"addressing_style": "path"}


def test_bucket_is_local_folder_without_endpoint(settings, tmp_path):
    settings.R2_ENDPOINT_URL = ""
    settings.R2_LOCAL_PATH = str(tmp_path / "r2")
    bucket = bucket_get()
    assert isinstance(bucket, LocalBucket)
    bucket.put(key="a/b.txt", body=b"1", content_type="text/plain", cache_control="x")
    assert bucket.head(key="a/b.txt").size == 1 and bucket.keys() == ["a/b.txt"]
    bucket.delete(key="a/b.txt")
    bucket.delete(key="a/b.txt")  # idempotent like S3
    assert bucket.head(key="a/b.txt") is None
    for bad in ("../x", "/etc/passwd", "a/../../x"):
        with pytest.raises(ValueError, match="Unsafe"):
            bucket.put(key=bad, body=b"", content_type="text/plain", cache_control="x")


@pytest.mark.django_db
def test_push_to_local_folder_served_in_debug(settings, tmp_path, media_root):
    settings.R2_ENDPOINT_URL = ""
    settings.R2_LOCAL_PATH = str(tmp_path / "r2")
    settings.R2_PUBLIC_BASE_URL = "http://127.0.0.1:8000/assets"
    agent = AgentWithPhotoFactory()
    run = r2_sync_run()
    assert run.objects_put == 2, run.error
    agent.refresh_from_db()
    original = AssetObject.objects.get(agent_id=agent.id, kind=AssetObject.Kind.ORIGINAL)
    assert agent.photo_url == f"http://127.0.0.1:8000/assets/{original.key}"
    assert (tmp_path / "r2" / original.key).is_file()
    assert r2_sync_run().objects_put == 0

    # The DEBUG route of estateflow/urls.py, built the same way.
    from django.conf.urls.static import static

    settings.DEBUG = True
    patterns = static("assets/", document_root=settings.R2_LOCAL_PATH)
    thumb_key = original.key.rsplit(".", 1)[0] + "-thumb.webp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        match = patterns[0].resolve(f"assets/{thumb_key}")
    response = match.func(RequestFactory().get(f"/assets/{thumb_key}"), *match.args, **match.kwargs)
    assert response.status_code == 200 and response["Content-Type"] == "image/webp"
    assert resolve("/admin/")  # project urls still import
