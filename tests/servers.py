"""The product's server as tests start it: Daphne serving `engagement_site.asgi` (HTTP
and websockets, as `make run` serves it) in a process of its own, on the test
database and the suite's Redis. Used by the browser tests, the client-library tests
and the fault tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
DAPHNE = str(Path(sys.executable).with_name("daphne"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url_of(settings_dict: dict) -> str:
    """DATABASE_URL with the database swapped for the one Django uses (the test database)."""
    parsed = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parsed._replace(path=f"/{settings_dict['NAME']}"))


def server_environment(**extra: str) -> dict[str, str]:
    """This process's environment pointed at the test database. The exemption the
    browser tests give their own thread (DJANGO_ALLOW_ASYNC_UNSAFE) is not passed on:
    the server under test runs as in production."""
    from django.db import connection

    environment = {**os.environ, "DATABASE_URL": database_url_of(connection.settings_dict), **extra}
    environment.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return environment


def start_daphne(
    port: int, log: Path, environment: dict[str, str], *, timeout: float = 60
) -> subprocess.Popen:
    """Daphne on 127.0.0.1:`port`, its output appended to `log`; returns once it answers
    HTTP (any status: /healthz may say 503 while no worker runs). Fails with the end of
    its log when it exits or does not answer within `timeout` seconds."""
    log.parent.mkdir(exist_ok=True)
    with log.open("a") as output:
        output.write(f"--- daphne on port {port}, started {time.strftime('%H:%M:%S')}\n")
        process = subprocess.Popen(
            [DAPHNE, "-b", "127.0.0.1", "-p", str(port), "engagement_site.asgi:application"],
            cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            return process
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                process.wait(timeout=10)
                tail = log.read_text(errors="replace")[-4000:]
                raise RuntimeError(f"Daphne did not start (see {log}):\n{tail}") from None
            time.sleep(0.2)


def stop(*processes: subprocess.Popen | None, how: signal.Signals = signal.SIGTERM) -> None:
    """SIGTERM (a deploy, runstack's stop) or SIGKILL (a crash) to every process still
    running, then SIGKILL to any that has not exited after a grace period."""
    running = [process for process in processes if process is not None and process.poll() is None]
    for process in running:
        process.send_signal(how)
    for process in running:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
