"""A fault-injecting HTTP proxy in front of the local D1 engine.

Stands in for Cloudflare's network misbehaving: at `rate`, a request gets a
429 with retry-after, a 500/503, a response slower than the client's
timeout, or a dropped connection (before or after the engine applied it).

Misconfigurations (`MISCONFIGURED`, given as `always=` or in `script`): a
404 like a wrong account or database id, a 200 page that is not JSON, a 200
whose JSON is a list, every statement refused (400 / 7500), and endpoints
that echo the request's Authorization header back in their error text.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

FAULTS = ("429", "500", "503", "slow", "drop_before", "drop_after")
WRITE = re.compile(rb'"sql":\s*"\s*(INSERT|DELETE|UPDATE|REPLACE)', re.IGNORECASE)
MISCONFIGURED = ("404", "non_json", "json_list", "sql_400", "echo_auth_400", "echo_auth_404")


class FaultProxy:
    def __init__(
        self,
        target: str,
        *,
        rate: float,
        seed: int = 7,
        slow_seconds: float = 1.5,
        script: list[str | None] | None = None,
        always: str | None = None,
        writes_only: bool = False,
    ):
        self.target = target.rstrip("/")
        # Faults to apply to the first requests, in order, before `rate` takes over.
        self.script = list(script or [])
        # A fault for every request after the script (a misconfigured endpoint stays misconfigured).
        self.always = always
        # Fault only requests that write (reads pass through): a target that refuses the push itself.
        self.writes_only = writes_only
        self.rate = rate
        self.slow_seconds = slow_seconds
        self.random = random.Random(seed)
        self.counts: Counter = Counter()
        self.retry_after_seen: list[float] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def pick(self, body: bytes = b"") -> str | None:
        with self.lock:
            self.counts["requests"] += 1
            if self.writes_only and not WRITE.search(body):
                return None
            if self.script:
                fault = self.script.pop(0)
                if fault:
                    self.counts[fault] += 1
                return fault
            if self.always:
                self.counts[self.always] += 1
                return self.always
            if self.random.random() >= self.rate:
                return None
            fault = self.random.choice(FAULTS)
            self.counts[fault] += 1
            return fault

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet test output
                pass

            def answer(self, status: int, payload: bytes, content_type: str = "application/json"):
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)

            def misconfigured(self, fault: str) -> None:
                def envelope(code: int, message: str) -> bytes:
                    errors = [{"code": code, "message": message}]
                    return json.dumps({"result": None, "success": False, "errors": errors}).encode()

                auth = self.headers.get("authorization", "")
                if fault == "404":
                    self.answer(404, envelope(7404, f"no route for {self.path}"))
                elif fault == "non_json":
                    self.answer(200, b"<html><body>Sign in to continue</body></html>", "text/html")
                elif fault == "json_list":
                    self.answer(200, b"[]")
                elif fault == "sql_400":
                    self.answer(400, envelope(7500, "no such table: agents: SQLITE_ERROR"))
                elif fault == "echo_auth_400":
                    message = f'near "x": syntax error: SQLITE_ERROR (request had authorization: {auth})'
                    self.answer(400, envelope(7500, message))
                elif fault == "echo_auth_404":
                    self.answer(404, envelope(7404, f"unknown database; you sent authorization: {auth}"))

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                fault = proxy.pick(body)
                if fault in MISCONFIGURED:
                    self.misconfigured(fault)
                    return
                if fault in ("429", "500", "503"):
                    payload = (
                        b'{"result":null,"success":false,"errors":[{"code":10000,"message":"injected"}]}'
                    )
                    self.send_response(int(fault))
                    if fault == "429":
                        self.send_header("retry-after", "1")
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if fault == "drop_before":
                    self.close_connection = True
                    self.connection.close()
                    return
                upstream = httpx.post(
                    proxy.target + self.path,
                    content=body,
                    headers={"content-type": "application/json"},
                    timeout=60,
                )
                if fault == "drop_after":
                    # Applied by the engine, but the client never hears back.
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault == "slow":
                    time.sleep(proxy.slow_seconds)
                self.send_response(upstream.status_code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(upstream.content)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(upstream.content)

        return Handler
