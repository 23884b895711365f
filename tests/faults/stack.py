"""What the fault tests share: the app's processes (RQ workers, the scheduler) started
as `manage.py` children on the test database, receiving servers that count what
arrives (a real SMTP server and a webhook receiver, in this process), a journey that
sends through both, and the sizes `make soak` raises (SOAK=1).

The receiving servers are the only witnesses of what left the system: every count of
"arrived" or "duplicate" below is taken at the server, keyed by the idempotency key the
app sends with every message (the email's X-Engagement-Message header, the webhook's
Idempotency-Key), never read back from the app's own tables."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser

from aiosmtpd.controller import Controller

from content import services as content_services
from engagement_site.workspaces.services import AuditContext
from journeys import services
from tests.delivery.local_http import Receiver
from tests.faults.postgres_faults import soak_size  # noqa: F401 (the tests import it from here)
from tests.servers import ARTIFACTS, ROOT, free_port, server_environment, start_daphne, stop

EDITOR = AuditContext.system("fault test")
TOPIC = "news"


# --------------------------------------------------------------------------- receivers


@dataclass
class CountingSmtp:
    """An aiosmtpd handler that notes (idempotency key, recipient) for every message it
    accepts. A message that arrives twice is two entries with one key."""

    arrivals: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope):
        headers = BytesHeaderParser().parsebytes(envelope.original_content)
        with self.lock:
            for recipient in envelope.rcpt_tos:
                self.arrivals.append((headers["X-Engagement-Message"] or "", recipient))
        return "250 Message accepted for delivery"


class SmtpServer:
    """A real SMTP server on a free port for the length of a with-block."""

    def __init__(self):
        self.handler = CountingSmtp()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?timeout=5"

    @property
    def arrivals(self) -> list[tuple[str, str]]:
        with self.handler.lock:
            return list(self.handler.arrivals)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.controller.stop()


def webhook_arrivals(receiver: Receiver) -> list[tuple[str, str]]:
    """(idempotency key, path) of every request the webhook receiver took."""
    return [
        (request["headers"].get("Idempotency-Key", ""), request["path"])
        for request in list(receiver.requests)
    ]


@dataclass
class Tally:
    """What one receiving server saw: arrivals, distinct messages (keys), repeats of a
    key (the same message again: a send whose outcome a killed worker never
    committed), and recipients who got more than one distinct message."""

    arrivals: int
    keys: set[str]
    repeats: int
    recipients: Counter

    @classmethod
    def of(cls, arrivals: list[tuple[str, str]]) -> Tally:
        keys = Counter(key for key, _ in arrivals)
        return cls(
            arrivals=len(arrivals),
            keys=set(keys),
            repeats=sum(count - 1 for count in keys.values()),
            recipients=Counter(recipient for _, recipient in set(arrivals)),
        )

    @property
    def duplicates(self) -> int:
        """Recipients who got two different messages for one step (one key each)."""
        return sum(count - 1 for count in self.recipients.values())


# --------------------------------------------------------------------------- processes


class Stack:
    """The app's background processes on the test database, restartable one by one.
    Output goes to test-artifacts/<name>.log (appended across restarts)."""

    def __init__(self, name: str, *, environment: dict[str, str]):
        ARTIFACTS.mkdir(exist_ok=True)
        self.log = (ARTIFACTS / f"{name}.log").open("a")
        self.environment = server_environment(
            SCHEDULER_INTERVAL_SECONDS="1",
            OUTBOUND_ALLOWED_NETWORKS="127.0.0.0/8",
            DEFAULT_FROM_EMAIL="Acme <news@acme.example>",
            LOG_LEVEL="WARNING",
            **environment,
        )
        self.commands: dict[str, list[str]] = {}
        self.processes: dict[str, subprocess.Popen] = {}
        self.kills: Counter = Counter()

    def start(self, role: str, command: list[str]) -> None:
        self.commands[role] = command
        self.processes[role] = subprocess.Popen(
            [sys.executable, "manage.py", *command], cwd=ROOT, env=self.environment,
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def worker(self, role: str, *queues: str) -> None:
        """An RQ worker on these queues, of the class runstack starts."""
        self.start(role, ["rqworker", *queues, "--worker-class", "engagement_site.jobs.Worker"])

    def ready(self) -> set[str]:
        """The workers that are up: registered with RQ under their process id (Django
        and RQ take seconds to start on a busy machine; a kill before that tests
        nothing)."""
        from rq import Worker

        from engagement_site.jobs import redis_connection

        pids = {worker.pid for worker in Worker.all(connection=redis_connection())}
        return {
            role
            for role, process in self.processes.items()
            if process.pid in pids and process.poll() is None
        }

    def kill(self, role: str) -> None:
        """SIGKILL (no clean-up of any kind), then start it again, as a supervisor would."""
        process = self.processes[role]
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            self.kills[role] += 1
        self.start(role, self.commands[role])

    def revive(self) -> None:
        """Start again whatever exited on its own (a worker that lost Redis, say)."""
        for role, process in self.processes.items():
            if process.poll() is not None:
                self.start(role, self.commands[role])

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.log.close()


def wait_until(condition, *, timeout: float, message, interval: float = 0.2, tick=None) -> None:
    """Poll `condition` until it holds; `tick` runs between polls (a killer, a
    supervisor); fails with `message()` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message()
        if tick is not None:
            tick()
        time.sleep(interval)


# --------------------------------------------------------------------------- journey


def _email_template(workspace):
    return content_services.template_create(
        workspace=workspace, name="Hello", channel="email",
        content={"default": {"subject": "Hi {{ profile.user_id }}", "html": "<p>Hi</p>"}},
        context=EDITOR,
    )  # fmt: skip


def _published(workspace, nodes: list[dict], settings: dict | None = None):
    """A journey of these nodes one after the other, published: (journey, version)."""
    definition = {
        "nodes": nodes,
        "edges": [
            {"source": before["id"], "target": after["id"]}
            for before, after in itertools.pairwise(nodes)
        ],
        **({"settings": settings} if settings else {}),
    }
    journey = services.journey_create(
        workspace=workspace, name="Greeting", context=EDITOR, definition=definition
    )
    version = services.journey_publish(journey=journey, context=EDITOR)
    journey.refresh_from_db()
    return journey, version


def _greeting_nodes(email_template_id: int) -> list[dict]:
    return [
        {"id": "api", "type": "trigger", "trigger": {"kind": "api"}},
        {"id": "tag", "type": "action", "action": {"kind": "update_attribute", "trait": "greeted", "value": True}},
        {"id": "mail", "type": "action", "action": {"kind": "message", "channel": "email", "template_id": email_template_id}},
    ]  # fmt: skip


def greeting_journey(workspace):
    """Published: an API trigger, a trait update, an email, then exit."""
    nodes = [*_greeting_nodes(_email_template(workspace).pk), {"id": "end", "type": "exit"}]
    return _published(workspace, nodes)


def sending_journey(workspace, receiver: Receiver):
    """Published: an API trigger, a trait update, an email, a webhook, then exit. Its
    messages go under the topic "news"."""
    hook = content_services.template_create(
        workspace=workspace, name="CRM", channel="webhook",
        content={"default": {
            "method": "POST", "url": f"{receiver.url}/crm/{{{{ profile.user_id }}}}",
            "body": '{"user": {{ profile.user_id | json }}}',
        }},
        context=EDITOR,
    )  # fmt: skip
    nodes = [
        *_greeting_nodes(_email_template(workspace).pk),
        {"id": "hook", "type": "action", "action": {"kind": "webhook", "template_id": hook.pk}},
        {"id": "end", "type": "exit"},
    ]
    return _published(workspace, nodes, settings={"topic": TOPIC})


@dataclass
class Audience:
    """The people of a run: everyone, those unsubscribed from email, and those
    unsubscribed from the journey's topic on every channel."""

    profile_ids: list[int]
    user_ids: set[str]
    no_email: set[str]  # user ids
    no_topic: set[str]

    @property
    def emailed(self) -> set[str]:
        return {
            f"{user_id}@example.com" for user_id in self.user_ids - self.no_email - self.no_topic
        }

    @property
    def hooked(self) -> set[str]:
        return {f"/crm/{user_id}" for user_id in self.user_ids - self.no_topic}

    @property
    def opted_out_addresses(self) -> set[str]:
        return {f"{user_id}@example.com" for user_id in self.no_email | self.no_topic}


def audience(workspace, *, people: int, prefix: str) -> Audience:
    """`people` profiles with an email address; one in ten unsubscribed from email, one
    in ten from the topic on all channels (recorded before the run: the sends must find
    it at send time, as the journey decides without looking)."""
    from delivery.models import Consent
    from segments.models import Profile

    profiles = Profile.objects.bulk_create(
        [
            Profile(workspace=workspace, user_id=f"{prefix}{n:05d}", email=f"{prefix}{n:05d}@example.com")
            for n in range(people)
        ]
    )  # fmt: skip
    no_email = {profile.user_id for n, profile in enumerate(profiles) if n % 10 == 3}
    no_topic = {profile.user_id for n, profile in enumerate(profiles) if n % 10 == 7}
    Consent.objects.bulk_create(
        [
            Consent(workspace=workspace, profile=profile, channel="email", status="unsubscribed", source="api")
            for profile in profiles if profile.user_id in no_email
        ]
        + [
            Consent(workspace=workspace, profile=profile, channel="", topic=TOPIC, status="unsubscribed", source="api")
            for profile in profiles if profile.user_id in no_topic
        ]
    )  # fmt: skip
    return Audience(
        profile_ids=[profile.pk for profile in profiles],
        no_email=no_email,
        no_topic=no_topic,
        user_ids={profile.user_id for profile in profiles},
    )


def enroll_all(journey, version, profile_ids: list[int]) -> list[int]:
    """Enrollments at the trigger, due now (as the API's bulk entry leaves them); the
    scheduler hands them to the workers."""
    from django.utils import timezone

    from journeys.models import Enrollment

    now = timezone.now()
    Enrollment.objects.bulk_create(
        [
            Enrollment(
                workspace=journey.workspace, journey=journey, version=version, profile_id=profile_id,
                state="active", current_node="api", next_run_at=now, context={"visits": {}},
            )
            for profile_id in profile_ids
        ]
    )  # fmt: skip
    return sorted(Enrollment.objects.filter(journey=journey).values_list("pk", flat=True))


# --------------------------------------------------------------------------- Daphne


class Daphne:
    """Daphne serving the app (HTTP and websockets) on the test database, on one port
    across restarts, so connected clients come back to the same address."""

    def __init__(self, name: str):
        self.log = ARTIFACTS / f"{name}.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.environment = server_environment(PUBLIC_URL=self.url)
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.process = start_daphne(self.port, self.log, self.environment, timeout=120)
        self.starts += 1

    def stop(self, how: signal.Signals = signal.SIGTERM) -> None:
        """SIGTERM (a deploy) or SIGKILL (a crash)."""
        stop(self.process, how=how)

    def close(self) -> None:
        self.stop(signal.SIGKILL)
