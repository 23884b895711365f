"""Delivery benchmark: `python -m bench --only delivery [--quick]`.

Measures, in its own database (`engagement_bench_delivery`, or `..._quick`) and Redis
database 2, messages per second through the email channel into a real local SMTP
server (aiosmtpd) and through the webhook channel into a real local HTTP server
(ThreadingHTTPServer speaking HTTP/1.1 keep-alive), with a workspace frequency cap of
3 per week on all channels and 4 messages per profile, so the caps refuse a quarter.

- system: queued Message rows (with template versions) queued with messages_enqueue
  and sent by real RQ SimpleWorker processes listening on delivery-email and
  delivery-webhook (started, and registered, before timing), with 1 and with 2
  workers, several repetitions each; timed from the enqueue until no message is
  queued;
- baseline: a bare client loop against the same servers (smtplib on one connection,
  httpx.Client), sending as many pre-rendered messages as the system sends, before
  and after the system runs; the median of the two.

The receivers count duplicates (an X-Engagement-Message / Idempotency-Key seen twice)
and cap violations (a person who received more than the cap); the run fails loudly
when either is not 0. ratio = median system msgs/s with 1 worker / baseline msgs/s
(per channel; the top-level ratio is the mean of the two channels').
"""

from __future__ import annotations

import collections
import smtplib
import statistics
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.bench_journeys import _prepare_database, _stop
from bench.bench_journeys import _workers as _listening_workers
from bench.bench_segments import _bench_database, _django_setup
from bench.measure import before_after, load_average, spread

CAP = 3
PER_PROFILE = 4
WINDOW = 7 * 86400
CHANNELS = ("email", "webhook")


@dataclass(frozen=True)
class Plan:
    database: str
    messages: int  # per channel
    repetitions: int


FULL = Plan("engagement_bench_delivery", 20_000, 3)
QUICK = Plan("engagement_bench_delivery_quick", 80, 3)


class Sink:
    """What both receivers took: keys seen (duplicates) and messages per recipient."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.keys: collections.Counter = collections.Counter()
            self.recipients: collections.Counter = collections.Counter()

    def take(self, key: str, recipient: str):
        with self.lock:
            self.keys[key] += 1
            self.recipients[recipient] += 1

    def stats(self) -> dict[str, int]:
        with self.lock:
            return {
                "received": sum(self.keys.values()),
                "duplicates": sum(count - 1 for count in self.keys.values() if count > 1),
                "cap_violations": sum(1 for c in self.recipients.values() if c > CAP),
            }


SINK = Sink()


class _SmtpHandler:
    async def handle_DATA(self, server, session, envelope):
        import email

        headers = email.message_from_bytes(envelope.original_content.split(b"\r\n\r\n", 1)[0])
        SINK.take(headers.get("X-Engagement-Message", ""), envelope.rcpt_tos[0])
        return "250 Message accepted for delivery"


class _HookHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: httpx reuses one connection per batch
    # Headers and body are two writes: without this, Nagle and delayed ACKs add 40 ms.
    disable_nagle_algorithm = True

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        SINK.take(self.headers.get("Idempotency-Key", ""), self.path)
        payload = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Request-Id", f"req-{self.headers.get('Idempotency-Key', '')}")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_servers():
    from aiosmtpd.controller import Controller

    smtp_port = _free_port()
    controller = Controller(_SmtpHandler(), hostname="127.0.0.1", port=smtp_port)
    controller.start()
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _HookHandler)
    hook.daemon_threads = True
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    return controller, hook, smtp_port, f"http://127.0.0.1:{hook.server_address[1]}"


def _workers(count: int, plan: Plan, email_url: str):
    """Workers listening on both channels' queues (only one channel has work at a time)."""
    return _listening_workers(
        count, plan, queues=tuple(f"delivery-{channel}" for channel in CHANNELS),
        environment={"EMAIL_URL": email_url},
    )  # fmt: skip


def _setup(plan: Plan, channel: str, hook_url: str):
    """A fresh workspace with the cap, a template and PER_PROFILE queued messages for
    each profile, interleaved so one profile's messages fall in different batches."""
    from django.db import connection
    from django.utils import timezone

    from content.services import template_create
    from delivery.models import FrequencyCap, Message
    from engagement_site.workspaces.models import Workspace
    from engagement_site.workspaces.services import AuditContext
    from segments.models import Profile

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE delivery_message, segments_profile, content_assetusage, content_template,"
            " content_templateversion, delivery_frequencycap CASCADE"
        )
    workspace, _ = Workspace.objects.get_or_create(
        slug="bench-delivery", defaults={"name": "Bench delivery"}
    )
    FrequencyCap.objects.create(workspace=workspace, channel="", limit=CAP, window_seconds=WINDOW)
    context = AuditContext.system("benchmark")
    if channel == "email":
        content = {"default": {
            "subject": "Hello {{ profile.first_name }}",
            "html": '<p>Hi {{ profile.first_name }}, see <a href="https://acme.example/sale">the sale</a>.</p>'
                    '<p><a href="{{ message.unsubscribe_url }}">Unsubscribe</a></p>',
        }}  # fmt: skip
    else:
        content = {"default": {
            "method": "POST", "url": f"{hook_url}/hook/{{{{ profile.user_id }}}}",
            "headers": {"X-Source": "engagement"},
            "body": '{"user": {{ profile.user_id | json }}, "plan": {{ profile.plan | json }}}',
        }}  # fmt: skip
    template = template_create(
        workspace=workspace, name="Bench", channel=channel, content=content, context=context
    )
    profiles = plan.messages // PER_PROFILE
    people = Profile.objects.bulk_create(
        Profile(workspace=workspace, user_id=f"u{i}", email=f"u{i}@example.com",
                traits={"first_name": f"U{i}", "plan": "pro"})
        for i in range(profiles)
    )  # fmt: skip
    now = timezone.now()
    rows = Message.objects.bulk_create(
        (
            Message(
                workspace=workspace, profile=people[i % profiles], channel=channel,
                idempotency_key=f"bench:{channel}:{i}", template_version=template.current_version,
                next_attempt_at=now,
            )
            for i in range(profiles * PER_PROFILE)
        ),
        batch_size=2000,
    )  # fmt: skip
    return workspace, [row.pk for row in rows]


def _system(plan: Plan, channel: str, workers: int, servers, log) -> dict[str, Any]:
    """One repetition: fresh messages, queued at once, sent by the listening workers."""
    import django_rq

    from delivery.models import Message
    from delivery.services import messages_enqueue

    hook_url = servers[3]
    workspace, ids = _setup(plan, channel, hook_url)
    SINK.reset()
    django_rq.get_queue(f"delivery-{channel}").empty()
    started = time.perf_counter()
    messages_enqueue(ids, channel=channel)
    deadline = time.monotonic() + 3600
    while Message.objects.filter(workspace=workspace, status="queued").exists():
        if time.monotonic() > deadline:
            raise RuntimeError("delivery: the messages were not sent within an hour")
        # Every 20 ms at first, then at 1% of the time taken so far (at most every
        # 0.2 s): the error stays under 1% while the polling's queries leave the CPU
        # to the workers and PostgreSQL being measured.
        time.sleep(min(0.2, max(0.02, (time.perf_counter() - started) / 100)))
    elapsed = time.perf_counter() - started
    statuses = dict(
        Message.objects.filter(workspace=workspace)
        .values_list("status")
        .annotate(n=__import__("django.db.models", fromlist=["Count"]).Count("id"))
    )
    capped = Message.objects.filter(workspace=workspace, reason="frequency_cap").count()
    received = SINK.stats()
    result = {
        "workers": workers,
        "messages": len(ids),
        "seconds": round(elapsed, 3),
        "messages_per_s": round(len(ids) / elapsed, 1),
        "sent": statuses.get("sent", 0),
        "capped": capped,
        "statuses": statuses,
        **received,
        "load_average": load_average()[0],
    }
    log(f"  {channel}, {workers} worker(s): {result['messages_per_s']} msgs/s {result}")
    expected_sent = len(ids) // PER_PROFILE * CAP
    if received["duplicates"] or received["cap_violations"]:
        raise AssertionError(f"delivery {channel}: duplicates or cap violations: {result}")
    if result["sent"] != expected_sent or received["received"] != expected_sent:
        raise AssertionError(f"delivery {channel}: expected {expected_sent} sent: {result}")
    if capped != len(ids) - expected_sent:
        raise AssertionError(f"delivery {channel}: expected {len(ids) - expected_sent} capped")
    return result


def _prerendered(channel: str, count: int, hook_url: str) -> list:
    """What the system sends, built before timing: email bytes from the email channel's
    own builder, webhook bodies and headers as the webhook channel sends them."""
    from delivery.channels.base import Outgoing
    from delivery.channels.email import EmailChannel

    if channel == "email":
        builder = EmailChannel(workspace_id=1)
        items = []
        for i in range(count):
            outgoing = Outgoing(
                message_id=i, idempotency_key=f"base:{i}", workspace_id=1,
                to=f"b{i // CAP}@example.com", unsubscribe_url="http://localhost/u/x",
                fields={"subject": f"Hello B{i}", "html": "<p>Hi, see <a href='https://acme.example/sale'>the sale</a>.</p>"},
            )  # fmt: skip
            email = builder._email(outgoing)
            items.append((email.from_email, outgoing.to, email.message().as_bytes()))
        return items
    return [
        (f"{hook_url}/hook/b{i // CAP}", f"base:{i}", f'{{"user": "b{i}", "plan": "pro"}}'.encode())
        for i in range(count)
    ]


def _baseline(channel: str, items: list, smtp_port: int) -> float:
    import httpx

    SINK.reset()
    started = time.perf_counter()
    if channel == "email":
        with smtplib.SMTP("127.0.0.1", smtp_port) as client:
            for sender, to, data in items:
                client.sendmail(sender, [to], data)
    else:
        with httpx.Client() as client:
            for url, key, body in items:
                client.post(url, content=body, headers={
                    "Content-Type": "application/json", "Idempotency-Key": key,
                    "X-Engagement-Message": key})  # fmt: skip
    rate = len(items) / (time.perf_counter() - started)
    stats = SINK.stats()
    if stats["received"] != len(items) or stats["duplicates"] or stats["cap_violations"]:
        raise AssertionError(f"baseline {channel}: {stats}")
    return rate


def run(*, quick: bool) -> dict[str, Any]:
    plan = QUICK if quick else FULL

    def log(message: str) -> None:
        print(f"[delivery] {message}", flush=True)

    _django_setup()
    from django.conf import settings

    servers = _start_servers()
    controller, hook, smtp_port, hook_url = servers
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp_port
    _prepare_database(plan)
    sent = plan.messages // PER_PROFILE * CAP
    email_url = f"smtp://127.0.0.1:{smtp_port}"
    items = {channel: _prerendered(channel, sent, hook_url) for channel in CHANNELS}
    before: dict[str, float] = {}
    after: dict[str, float] = {}
    runs: dict[str, dict[int, list]] = {channel: {1: [], 2: []} for channel in CHANNELS}
    try:
        with _bench_database(plan.database):
            for channel in CHANNELS:
                before[channel] = _baseline(channel, items[channel], smtp_port)
                log(f"{channel} bare client (before): {before[channel]:,.0f} msgs/s")
            first = _workers(1, plan, email_url)
            try:
                for workers in (1, 2):
                    second = _workers(1, plan, email_url) if workers == 2 else []
                    try:
                        for _ in range(plan.repetitions):
                            for channel in CHANNELS:
                                runs[channel][workers].append(
                                    _system(plan, channel, workers, servers, log)
                                )
                    finally:
                        _stop(second)
            finally:
                _stop(first)
            for channel in CHANNELS:
                after[channel] = _baseline(channel, items[channel], smtp_port)
                log(f"{channel} bare client (after): {after[channel]:,.0f} msgs/s")
    finally:
        controller.stop()
        hook.shutdown()
    baseline: dict[str, dict] = {}
    system: dict[str, dict] = {}
    for channel in CHANNELS:
        baseline[channel] = {
            "messages": sent,
            "messages_per_s": before_after(before[channel], after[channel]),
        }
        system[channel] = {
            f"{n}_worker": {
                "messages_per_s": spread(run["messages_per_s"] for run in runs[channel][n]),
                "duplicates": sum(run["duplicates"] for run in runs[channel][n]),
                "cap_violations": sum(run["cap_violations"] for run in runs[channel][n]),
                "runs": runs[channel][n],
            }
            for n in (1, 2)
        }
        system[channel]["ratio"] = round(
            system[channel]["1_worker"]["messages_per_s"]["median"]
            / baseline[channel]["messages_per_s"]["median"],
            3,
        )
    headline = "; ".join(
        f"{channel}: {system[channel]['1_worker']['messages_per_s']['median']:,.0f} msgs/s with"
        f" 1 worker, {system[channel]['2_worker']['messages_per_s']['median']:,.0f} with 2"
        f" (bare client {baseline[channel]['messages_per_s']['median']:,.0f}/s)"
        for channel in CHANNELS
    )
    return {
        "headline": headline + "; 0 duplicates, 0 cap violations",
        "sizes": {
            "messages_per_channel": plan.messages,
            "per_profile": PER_PROFILE,
            "cap": f"{CAP} per {WINDOW}s on all channels",
            "batch": 100,
            "repetitions": plan.repetitions,
        },
        "baseline": baseline,
        "system": system,
        "ratio": round(statistics.mean(system[c]["ratio"] for c in CHANNELS), 3),
        "ratio_means": "per channel: median msgs/s with 1 worker / bare client msgs/s (median"
        " of before and after); the mean of the two channels",
    }
