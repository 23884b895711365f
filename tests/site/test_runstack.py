"""`make run` end to end: embedded servers under a fresh ./var, migrations, the demo,
Daphne + RQ worker + scheduler healthy, the demo login working over HTTP, Ctrl-C
stopping every child and the embedded servers, and a second start reusing the data."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]


class Stack:
    def __init__(self, var_dir: Path):
        self.port, self.smtp_port = free_port(), free_port()
        environment = {
            key: value
            for key, value in os.environ.items()
            if key not in {"DATABASE_URL", "REDIS_URL", "DJANGO_ENV", "EMAIL_URL"}
        }
        environment.update(
            {
                "ENGAGEMENT_VAR_DIR": str(var_dir),
                "PYTHONUNBUFFERED": "1",
                "DEV_SMTP_PORT": str(self.smtp_port),
            }
        )
        self.log = var_dir.parent / f"stack-{self.port}.log"
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runstack", "--port", str(self.port), "--demo-profiles", "25"],
            cwd=ROOT, env=environment, stdout=self.log.open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.base = f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text()

    def wait_healthy(self, timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                last = httpx.get(f"{self.base}/healthz", timeout=5)
                if last.status_code == 200:
                    return last.json()
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"stack not healthy: {last and last.text}\n{self.output()}")

    def interrupt(self) -> tuple[int, list[psutil.Process]]:
        children = psutil.Process(self.process.pid).children(recursive=True)
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=60)
        return code, children


def _login(base: str, username: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=base, follow_redirects=True, timeout=20) as client:
        page = client.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        return client.post(
            "/login/",
            data={"username": username, "password": password, "csrfmiddlewaretoken": token},
            headers={"Referer": f"{base}/login/"},
        )


def test_make_run_from_a_fresh_var_directory_and_again(tmp_path):
    var_dir = tmp_path / "var"
    first = Stack(var_dir)
    try:
        health = first.wait_healthy()
        assert [
            health["checks"][part]["ok"] for part in ("database", "redis", "worker", "scheduler")
        ] == [True, True, True, True]
        output = first.output()
        assert "First start: loading the demo workspace" in output
        assert "Running: smtp, daphne, worker-1, scheduler." in output
        # The development mail server takes mail and keeps it in the outbox.
        import smtplib

        with smtplib.SMTP("127.0.0.1", first.smtp_port, timeout=10) as server:
            server.sendmail("a@example.com", ["b@example.com"], b"Subject: hi\r\n\r\nhello")
        assert [path.suffix for path in (var_dir / "outbox").iterdir()] == [".eml"]
        credentials = re.search(r"Log in as (\S+) / (\S+) \(workspace 'demo'", output)
        assert credentials, output
        home = _login(first.base, credentials.group(1), credentials.group(2))
        assert home.status_code == 200
        assert str(home.url).endswith("/w/demo/journeys/")
    finally:
        code, children = first.interrupt()
    assert code == 0, first.output()
    assert len(children) >= 3
    assert [
        child.pid
        for child in children
        if child.is_running() and child.status() != psutil.STATUS_ZOMBIE
    ] == []
    assert not (var_dir / "pg" / "postmaster.pid").exists()
    assert not (var_dir / "redis" / "redis.sock").exists()

    second = Stack(var_dir)
    try:
        second.wait_healthy()
        assert "First start" not in second.output()
        home = _login(second.base, credentials.group(1), credentials.group(2))
        assert str(home.url).endswith("/w/demo/journeys/")
    finally:
        code, _ = second.interrupt()
    assert code == 0


def test_killing_the_supervisor_outright_takes_its_children_with_it(tmp_path):
    stack = Stack(tmp_path / "var")
    try:
        stack.wait_healthy()
        children = psutil.Process(stack.process.pid).children(recursive=False)
        assert len(children) == 4  # smtp, daphne, worker, scheduler
        stack.process.kill()
        stack.process.wait(timeout=10)
        _gone, alive = psutil.wait_procs(children, timeout=20)
        assert alive == []
    finally:
        for child in psutil.Process().children(recursive=True):
            child.kill()
        from engagement_site import embedded

        embedded.stop_redis(tmp_path / "var")
        embedded.stop_postgres(tmp_path / "var")
