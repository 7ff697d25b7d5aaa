"""Real parts for the asset tests: moto's S3 server (addressed like R2) and a fault-injecting proxy."""

import http.client
import logging
import os
import random
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

logging.getLogger("werkzeug").setLevel(logging.WARNING)

# No developer AWS profile or instance metadata may leak into the tests.
for _name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE"):
    os.environ.pop(_name, None)
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint():
    """moto's S3 server on 127.0.0.1 (plain HTTP), shared by the whole session."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="session")
def moto_tls_endpoint():
    """The same moto backend over HTTPS (self-signed), where botocore would use checksum trailers."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    server = make_server(
        "127.0.0.1",
        _free_port(),
        DomainDispatcherApplication(create_backend_app),
        threaded=True,
        request_handler=MotoRequestHandler,
        ssl_context="adhoc",
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


def _bucket_create(endpoint: str, name: str) -> None:
    from assets.storage import r2_client_build

    # Buckets on R2 are made in the dashboard; moto wants the region spelled out.
    r2_client_build(endpoint_url=endpoint).create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": "auto"}
    )


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def r2(settings, moto_endpoint, media_root):
    """Settings pointing at a fresh bucket on moto, addressed like R2 (region auto, path style)."""
    settings.R2_ENDPOINT_URL = moto_endpoint
    settings.R2_ACCESS_KEY_ID = "test-access-key"
    settings.R2_SECRET_ACCESS_KEY = "test-secret-key"
    settings.R2_BUCKET = f"assets-{uuid.uuid4().hex[:12]}"
    settings.R2_PUBLIC_BASE_URL = "https://assets.example.test"
    settings.R2_MAX_ATTEMPTS = 5
    settings.R2_CONNECT_TIMEOUT = 2
    settings.R2_READ_TIMEOUT = 5
    _bucket_create(moto_endpoint, settings.R2_BUCKET)
    return settings


@pytest.fixture
def d1_synced(monkeypatch):
    """Simulate D1 syncs: call it to record that a successful D1 sync started now.

    The real `sync.selectors.d1_last_successful_sync_started_at` belongs to the
    D1 sync app; here its wrapper in assets.selectors is monkeypatched.
    """
    from django.utils import timezone

    from assets import selectors

    state = {"started_at": None}
    monkeypatch.setattr(selectors, "d1_last_successful_sync_started_at", lambda: state["started_at"])

    def mark():
        state["started_at"] = timezone.now()
        return state["started_at"]

    return mark


class FaultProxy:
    """An HTTP proxy in front of moto that fails a set fraction of requests.

    Faults cycle through 500, 503 and "timeout" (the request IS forwarded, so
    the write happens, then the answer is held past the client's read timeout),
    which is what a retried, idempotent PutObject has to survive.
    """

    KINDS = ("500", "503", "timeout")

    def __init__(
        self, upstream: str, *, fault_rate: float, seed: int = 7, hold_seconds: float = 1.0, kinds=KINDS
    ) -> None:
        self.kinds = tuple(kinds)
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.fault_rate = fault_rate
        self.hold_seconds = hold_seconds
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.requests = 0
        self.faults: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def _fault(self) -> str | None:
        with self.lock:
            self.requests += 1
            if self.random.random() >= self.fault_rate:
                return None
            kind = self.kinds[len(self.faults) % len(self.kinds)]
            self.faults.append(kind)
            return kind

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _relay(self):
                assert "chunked" not in self.headers.get("Transfer-Encoding", ""), "unexpected chunked upload"
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = proxy._fault()
                if fault in ("500", "503"):
                    code = "InternalError" if fault == "500" else "ServiceUnavailable"
                    payload = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
                    self.send_response(int(fault))
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                upstream = http.client.HTTPConnection(*proxy.upstream, timeout=10)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                upstream.close()
                if fault == "timeout":
                    time.sleep(proxy.hold_seconds)
                try:
                    self.send_response(response.status)
                    # HEAD keeps the upstream Content-Length (the object's size).
                    skipped = ("transfer-encoding", "connection", "server", "date")
                    if self.command != "HEAD":
                        skipped += ("content-length",)
                        self.send_header("Content-Length", str(len(data)))
                    for key, value in response.getheaders():
                        if key.lower() not in skipped:
                            self.send_header(key, value)
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout); that is the point

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        return Handler

    def start(self) -> "FaultProxy":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def fault_proxy(moto_endpoint):
    proxies: list[FaultProxy] = []

    def make(
        *, fault_rate: float, seed: int = 7, hold_seconds: float = 1.0, kinds=FaultProxy.KINDS
    ) -> FaultProxy:
        proxy = FaultProxy(
            moto_endpoint, fault_rate=fault_rate, seed=seed, hold_seconds=hold_seconds, kinds=kinds
        ).start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()
