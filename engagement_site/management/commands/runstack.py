"""`make run`: migrate, load the demo on first start, then run Daphne, the RQ worker
and the scheduler in the foreground until Ctrl-C.

This process owns the embedded PostgreSQL and Redis (started when settings were
loaded, because DATABASE_URL / REDIS_URL were unset) and hands their URLs to its
children through the environment; it stops them after the children have exited.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from engagement_site import embedded
from engagement_site.demo import DEMO_WORKSPACE_SLUG, demo_credentials, demo_workspace_exists

QUEUES = list(settings.RQ_QUEUES)
# RQ's SimpleWorker (no fork per job) that drops a lost database connection between jobs.
WORKER_CLASS = "engagement_site.jobs.Worker"
PR_SET_PDEATHSIG = 1


def _terminate_with_parent() -> None:
    """Runs in the child between fork and exec (Linux only; a no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


STOP_GRACE_SECONDS = 10


class Command(BaseCommand):
    help = "Run the whole product in the foreground: Daphne, RQ worker(s), scheduler."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--workers", type=int, default=int(os.environ.get("RQ_WORKERS", "1")))
        parser.add_argument(
            "--no-demo", action="store_true", help="Do not load the demo workspace."
        )
        parser.add_argument(
            "--demo-profiles",
            type=int,
            default=int(os.environ.get("DEMO_PROFILES", "5000")),
            help="Size of the demo dataset on first start.",
        )

    def handle(
        self,
        *args,
        port: int,
        host: str,
        workers: int,
        no_demo: bool,
        demo_profiles: int,
        **options,
    ):
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.stopping = False
        signal.signal(signal.SIGINT, self._request_stop)
        signal.signal(signal.SIGTERM, self._request_stop)
        try:
            self._prepare(no_demo=no_demo, demo_profiles=demo_profiles)
            self._start_children(host=host, port=port, workers=workers)
            self._announce(host=host, port=port)
            exit_code = self._supervise()
        finally:
            self._stop_children()
            if embedded.started_here:
                self.stdout.write(
                    "Stopping embedded " + " and ".join(sorted(embedded.started_here)) + "…"
                )
                embedded.stop_started_here()
        sys.exit(exit_code)

    def _request_stop(self, signum, frame) -> None:
        self.stopping = True

    def _prepare(self, *, no_demo: bool, demo_profiles: int) -> None:
        for name, variable in (("PostgreSQL", "DATABASE_URL"), ("Redis", "REDIS_URL")):
            where = (
                f"from {variable}"
                if os.environ.get(variable)
                else f"embedded, under {embedded.var_dir()}"
            )
            self.stdout.write(f"{name}: {where}")
        call_command("check")  # a broken setting or plug-in stops here, named
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Migrations applied.")
        if not no_demo and not demo_workspace_exists():
            self.stdout.write(
                "First start: loading the demo workspace (5,000 profiles, ~200,000 events; a few seconds)…"
            )
            call_command("load_demo", profiles=demo_profiles)

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DATABASE_URL"] = settings.DATABASE_URL
        env["REDIS_URL"] = settings.REDIS_URL
        env["DJANGO_SETTINGS_MODULE"] = "engagement_site.settings"
        env["PYTHONUNBUFFERED"] = "1"
        if self.dev_smtp_port is not None:
            env["EMAIL_URL"] = f"smtp://127.0.0.1:{self.dev_smtp_port}?timeout=10"
        return env

    def _spawn(self, name: str, command: list[str]) -> None:
        # A new session: Ctrl-C reaches only this supervisor, which stops children in
        # order. If the supervisor itself is killed (SIGKILL), Linux sends each child
        # SIGTERM, so no orphaned worker keeps taking jobs with old code.
        process = subprocess.Popen(
            command,
            env=self._child_env(),
            start_new_session=True,
            preexec_fn=_terminate_with_parent,
        )
        self.children.append((name, process))

    def _start_children(self, *, host: str, port: int, workers: int) -> None:
        python = sys.executable
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        # No EMAIL_URL: mail goes to the development SMTP server and its outbox page.
        self.dev_smtp_port = None
        if not os.environ.get("EMAIL_URL") and settings.DEV_OUTBOX_ENABLED:
            self._spawn("smtp", [python, manage, "dev_smtp", "--port", str(settings.DEV_SMTP_PORT)])
            self.dev_smtp_port = settings.DEV_SMTP_PORT
        daphne = str(Path(python).with_name("daphne"))
        self._spawn(
            "daphne",
            [
                daphne,
                "--bind",
                host,
                "--port",
                str(port),
                "--proxy-headers",
                "engagement_site.asgi:application",
            ],
        )
        for number in range(1, workers + 1):
            self._spawn(
                f"worker-{number}",
                [
                    python,
                    manage,
                    "rqworker",
                    *QUEUES,
                    "--worker-class",
                    WORKER_CLASS,
                    "--with-scheduler",
                    # An idle RQ worker beats once per dequeue wait (its TTL - 15 s, 405 s
                    # by default): wait half the staleness limit, so /healthz sees it.
                    "--worker-ttl",
                    str(settings.HEARTBEAT_STALE_SECONDS // 2 + 15),
                ],
            )
        self._spawn("scheduler", [python, manage, "run_scheduler"])

    def _announce(self, *, host: str, port: int) -> None:
        shown_host = "127.0.0.1" if host in {"0.0.0.0", "::"} else host
        lines = [
            "",
            f"  Engagement is running at http://{shown_host}:{port}/",
            f"  Health: http://{shown_host}:{port}/healthz   API docs: http://{shown_host}:{port}/api/docs/",
        ]
        credentials = demo_credentials()
        if credentials:
            lines.append(
                f"  Log in as {credentials['username']} / {credentials['password']} (workspace '{DEMO_WORKSPACE_SLUG}', also Django admin at /admin/)"
            )
        lines.append(
            "  Running: " + ", ".join(name for name, _ in self.children) + ". Press Ctrl-C to stop."
        )
        lines.append("")
        self.stdout.write(self.style.SUCCESS("\n".join(lines)))

    def _supervise(self) -> int:
        while not self.stopping:
            for name, process in self.children:
                code = process.poll()
                if code is not None:
                    self.stderr.write(f"{name} exited with code {code}; stopping everything.")
                    return 1
            time.sleep(0.3)
        return 0

    def _stop_children(self) -> None:
        # Stop taking requests first, then the workers (they finish their job), then the scheduler.
        for _, process in self.children:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for name, process in self.children:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop in {STOP_GRACE_SECONDS}s; killing it.")
                process.kill()
                process.wait()
        self.children.clear()
