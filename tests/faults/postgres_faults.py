"""What the PostgreSQL and scheduler fault tests share: the product's processes (Daphne,
an RQ worker, the scheduler) started as `make run` starts them, against the test
database, each with its own PostgreSQL `application_name` (libpq reads PGAPPNAME), so a
separate admin connection can find that process's backends and terminate them.

Sizes: SOAK=1 in the environment makes the runs bigger (`soak_size`)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
from django.db import connection

from tests.servers import database_url_of, free_port, server_environment
from tests.servers import start_daphne as start_server

ROOT = Path(__file__).resolve().parents[2]
SOAK = os.environ.get("SOAK", "") not in ("", "0")


def soak_size(quick: int, soak: int) -> int:
    """`quick` in `make test`, `soak` when SOAK is set."""
    return soak if SOAK else quick


def product_environment(application_name: str, **extra: str) -> dict[str, str]:
    """The environment `runstack` gives its children, pointed at the test database."""
    return server_environment(PGAPPNAME=application_name, PYTHONUNBUFFERED="1", **extra)


def worker_command() -> list[str]:
    """The RQ worker as runstack starts it: its class, all queues, RQ's own scheduler."""
    from engagement_site.management.commands.runstack import QUEUES, WORKER_CLASS

    return ["rqworker", *QUEUES, "--worker-class", WORKER_CLASS, "--with-scheduler"]


def start(
    command: list[str], *, application_name: str, log: Path, **extra: str
) -> subprocess.Popen:
    """A product process (`manage.py <command>`, or a full argv starting with a path)."""
    argv = command if command[0].startswith("/") else [sys.executable, "manage.py", *command]
    return subprocess.Popen(
        argv, cwd=ROOT, env=product_environment(application_name, **extra),
        stdout=log.open("a"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def start_daphne(*, application_name: str, log: Path, **extra: str) -> tuple[subprocess.Popen, str]:
    """Daphne serving the ASGI app on a free port, as runstack runs it; returns the
    process and its base URL once it answers."""
    port = free_port()
    process = start_server(port, log, product_environment(application_name, **extra))
    return process, f"http://127.0.0.1:{port}"


def admin_connection() -> psycopg.Connection:
    """A connection of the test's own, outside Django, in autocommit."""
    return psycopg.connect(
        database_url_of(connection.settings_dict), autocommit=True, application_name="fault-admin"
    )


def backends_terminate(
    admin: psycopg.Connection,
    application_name: str,
    *,
    busy_only: bool = False,
    query_like: str = "%",
) -> list[tuple[str, str]]:
    """Terminate the server-side backends of the processes started with this name
    (only those whose current or last statement is LIKE `query_like`); returns the
    state each was in ('active', 'idle in transaction', 'idle') and that statement."""
    rows = admin.execute(
        """
        SELECT pid, state, query FROM pg_stat_activity
         WHERE application_name = %s AND datname = current_database() AND pid <> pg_backend_pid()
           AND (NOT %s OR state IN ('active', 'idle in transaction'))
           AND query LIKE %s
           -- Not a connection still being set up: killing every new connection too
           -- would be a database that is down, which is not this fault.
           AND backend_start < now() - interval '1 second'
        """,
        [application_name, busy_only, query_like],
    ).fetchall()
    killed = []
    for pid, state, query in rows:
        if admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]:
            killed.append((state or "", query or ""))
    return killed


class BackendKiller(threading.Thread):
    """Terminates the named process's busy backends (a query running or a transaction
    open; with `query_like`, only while its statement is LIKE it), at most once every
    `interval` seconds, and every backend (idle ones too) once every `all_every`
    seconds, until stopped; `killed` records the state each terminated backend was in,
    `statements` its statement."""

    def __init__(
        self,
        application_name: str,
        *,
        interval: float = 0.4,
        all_every: float | None = None,
        query_like: str = "%",
    ):
        super().__init__(daemon=True)
        self.application_name = application_name
        self.interval = interval
        self.all_every = all_every
        self.query_like = query_like
        self.killed: list[str] = []
        self.statements: list[str] = []
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with admin_connection() as admin:
                everything_at = time.monotonic() + (self.all_every or 0)
                while not self.stopping.is_set():
                    # Now and then every backend, idle ones too (a server restart or
                    # failover): a pool's idle connections are dead then as well.
                    everything = self.all_every is not None and time.monotonic() >= everything_at
                    if everything:
                        everything_at = time.monotonic() + self.all_every
                    found = backends_terminate(
                        admin,
                        self.application_name,
                        busy_only=not everything,
                        query_like="%" if everything else self.query_like,
                    )
                    self.killed.extend(state for state, _ in found)
                    self.statements.extend(statement for _, statement in found)
                    self.stopping.wait(self.interval if found else 0.02)
        except BaseException as error:  # reported by the test, not lost in the thread
            self.error = error

    def stop(self) -> list[str]:
        self.stopping.set()
        self.join(timeout=10)
        assert self.error is None, f"the backend killer failed: {self.error!r}"
        return self.killed
