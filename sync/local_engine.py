"""Start and stop the local D1 engine (miniflare v4 + our REST-shaped Worker) from Python.

Used by the sync tests and by `benchmark_sync`. The engine lives in
sync/d1_engine; its node_modules come from `npm ci` (Makefile) and are
installed here on first use if missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

ENGINE_DIR = Path(__file__).resolve().parent / "d1_engine"


class LocalD1Engine:
    def __init__(self, *, persist_dir: str | None = None, start_timeout: float = 60.0):
        self.persist_dir = persist_dir
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self.url = ""

    @property
    def api_base(self) -> str:
        """What CLOUDFLARE_BASE_URL should be to reach this engine."""
        return f"{self.url}/client/v4"

    def start(self) -> LocalD1Engine:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed; the local D1 engine needs Node 20+")
        if not (ENGINE_DIR / "node_modules" / "miniflare").is_dir():
            subprocess.run(
                ["npm", "ci", "--prefix", str(ENGINE_DIR), "--no-audit", "--no-fund"],
                check=True,
                capture_output=True,
            )
        cmd = [node, str(ENGINE_DIR / "launcher.mjs"), "--port", "0", "--watch-stdin"]
        if self.persist_dir:
            cmd += ["--persist", self.persist_dir]
        self.process = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(self.start_timeout)
        if not line or not line[0].strip():
            self.stop()
            raise RuntimeError("the local D1 engine did not start in time")
        self.url = json.loads(line[0])["url"]
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream:
                stream.close()
        self.process = None

    def __enter__(self) -> LocalD1Engine:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
