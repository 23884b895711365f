"""The tracking API under more than it can take, served by a real Daphne process (as
`make run` runs it, its connection pool included) on the test database.

- Overload: many concurrent clients post more events than workspace A's rate allows,
  while workspace B posts within its own rate. Every answer is 200, or 429 / 503 with
  Retry-After and a JSON error; never a 500 or a dropped connection. Every event
  answered 200 is stored exactly once (counted by messageId), no event of a refused
  batch is stored, and A's limit never throttles B.
- Starved database: with the pool's connections held by requests stuck behind a lock,
  a request that needs one more connection is answered 503 within the pool's timeout
  (not left hanging); the stuck requests are answered 503 when their statement runs
  past INGESTION_STATEMENT_TIMEOUT_MS; none of them stored anything, and each is stored
  once when the client sends it again.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest

from engagement_site.workspaces.services import api_key_create
from segments.models import Event, EventMessageId, IngestionSettings
from tests.conftest import SETUP
from tests.faults.postgres_faults import admin_connection, start_daphne
from tests.servers import stop

pytestmark = pytest.mark.django_db(transaction=True)

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
APPLICATION_NAME = "ingest-overload"  # the server's PostgreSQL application_name

# Workspace A: 100 events a second (1,000 per 10-second window), sent far more.
A_RATE = 100
A_CLIENTS = 16
B_CLIENTS = 4
BATCHES_PER_CLIENT = 12
EVENTS_PER_BATCH = 50


def batch(prefix: str, client: int, number: int) -> list[dict]:
    return [
        {
            "type": "track",
            "userId": f"{prefix}-user-{(client * 31 + index) % 40}",
            "event": "Viewed",
            "messageId": f"{prefix}-c{client}-b{number}-e{index}",
            "properties": {"index": index},
        }
        for index in range(EVENTS_PER_BATCH)
    ]


class Client(threading.Thread):
    """Posts its batches one after another, without retrying (so each batch's fate is
    exactly its one answer), and records every answer."""

    def __init__(self, base: str, write_key: str, prefix: str, number: int):
        super().__init__(daemon=True)
        self.base, self.write_key, self.prefix, self.number = base, write_key, prefix, number
        # (message ids, status, Retry-After, JSON body or None, content type)
        self.answers: list[tuple[list[str], int | str, str | None, object, str]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.Client(auth=(self.write_key, ""), timeout=60) as http:
                for number in range(BATCHES_PER_CLIENT):
                    events = batch(self.prefix, self.number, number)
                    ids = [event["messageId"] for event in events]
                    try:
                        response = http.post(f"{self.base}/v1/batch", json={"batch": events})
                    except httpx.TransportError as error:
                        self.answers.append((ids, f"transport: {error!r}", None, None, ""))
                        continue
                    self.answers.append(
                        (
                            ids,
                            response.status_code,
                            response.headers.get("Retry-After"),
                            orjson.loads(response.content),
                            response.headers.get("Content-Type", ""),
                        )
                    )
        except BaseException as error:
            self.error = error


@pytest.fixture(scope="module")
def ingest_server(django_db_setup, django_db_blocker) -> str:
    """One Daphne for the module, with a pool of two connections that a request waits
    for at most 1 s, and statements of a batch cut off after 6 s."""
    log = ARTIFACTS / "daphne-ingest-overload.log"
    ARTIFACTS.mkdir(exist_ok=True)
    log.write_text("")
    process, base = start_daphne(
        application_name=APPLICATION_NAME,
        log=log,
        DATABASE_POOL_MAX_SIZE="2",
        DATABASE_POOL_TIMEOUT="1",
        INGESTION_STATEMENT_TIMEOUT_MS="6000",
    )
    yield base
    stop(process)


def test_overload_answers_429_or_503_with_retry_after_never_500_and_stores_every_200(
    ingest_server, workspace, other_workspace
):
    IngestionSettings.objects.create(workspace=workspace, rate_limit_per_second=A_RATE)
    _, key_a = api_key_create(workspace=workspace, kind="write", name="A", context=SETUP)
    _, key_b = api_key_create(workspace=other_workspace, kind="write", name="B", context=SETUP)
    clients = [Client(ingest_server, key_a, "a", n) for n in range(A_CLIENTS)]
    clients += [Client(ingest_server, key_b, "b", n) for n in range(B_CLIENTS)]

    for client in clients:
        client.start()
    for client in clients:
        client.join(timeout=600)

    assert [client.error for client in clients] == [None] * len(clients)
    assert not [client for client in clients if client.is_alive()]
    answers = [answer for client in clients for answer in client.answers]
    assert len(answers) == (A_CLIENTS + B_CLIENTS) * BATCHES_PER_CLIENT
    statuses = Counter((ids[0][0], status) for ids, status, *_ in answers)
    print(f"\nanswers by workspace and status: {dict(sorted(statuses.items()))}")
    # Nothing but 200, 429 and 503 (no 500, no dropped connection)...
    assert {status for _, status in statuses} <= {200, 429, 503}
    # ...and every refusal says when to come back, as JSON naming the problem.
    refusals = Counter()
    for _, status, retry_after, body, content_type in answers:
        if status == 200:
            assert (body, content_type) == ({"success": True}, "application/json")
            continue
        assert content_type == "application/json"
        expected = {
            429: ("rate_limited", "The workspace is over its event rate; retry later."),
            503: ("database_unavailable", "The database is unavailable; retry later."),
        }[status]
        assert (body["code"], body["message"]) == expected
        assert 1 <= int(retry_after) <= 10
        refusals[status] += 1
    # A was sent far more than its rate; B was never throttled by A's limit.
    assert statuses[("a", 429)] > 0
    assert statuses[("b", 429)] == 0
    assert statuses[("a", 200)] > 0 and statuses[("b", 200)] > 0

    accepted = {id_ for ids, status, *_ in answers if status == 200 for id_ in ids}
    refused = {id_ for ids, status, *_ in answers if status != 200 for id_ in ids}
    stored = list(Event.objects.values_list("message_id", flat=True))
    print(
        f"events sent {len(accepted) + len(refused)}, answered 200 {len(accepted)}, "
        f"refused {len(refused)} ({dict(refusals)} batches), stored {len(stored)}"
    )
    # Exactly the events answered 200, each once; nothing of a refused batch.
    assert len(stored) == len(set(stored))
    assert set(stored) == accepted
    assert set(EventMessageId.objects.values_list("message_id", flat=True)) == accepted
    # A's accepted events fit its budget: at most 1,000 per 10-second window used.
    a_stored = Event.objects.filter(workspace=workspace).count()
    assert a_stored == statuses[("a", 200)] * EVENTS_PER_BATCH
    assert Event.objects.filter(workspace=other_workspace).count() == (
        statuses[("b", 200)] * EVENTS_PER_BATCH
    )


# --------------------------------------------------------------------------- starved


def post_in_thread(base: str, key: str, events: list[dict], answers: dict, name: str):
    def run():
        try:
            response = httpx.post(
                f"{base}/v1/batch", json={"batch": events}, auth=(key, ""), timeout=60
            )
            answers[name] = (
                response.status_code,
                response.headers.get("Retry-After"),
                orjson.loads(response.content),
            )
        except BaseException as error:
            answers[name] = ("error", repr(error), None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def lock_waiters(admin, application_name: str) -> int:
    return admin.execute(
        """
        SELECT count(*) FROM pg_stat_activity
         WHERE application_name = %s AND wait_event_type = 'Lock'
        """,
        [application_name],
    ).fetchone()[0]


def test_a_starved_database_answers_503_with_retry_after_not_500_or_a_hang(
    ingest_server, workspace
):
    _, first_key = api_key_create(workspace=workspace, kind="write", name="One", context=SETUP)
    _, second_key = api_key_create(workspace=workspace, kind="write", name="Two", context=SETUP)
    stuck = {name: batch(name, 0, 0) for name in ("stuck1", "stuck2")}
    late = batch("late", 0, 0)
    answers: dict[str, tuple] = {}

    admin = admin_connection()
    try:
        # Every batch claims its messageIds first: with the table locked, the two
        # requests wait there, each holding one of the pool's two connections.
        admin.execute("BEGIN")
        admin.execute("LOCK TABLE segments_eventmessageid IN ACCESS EXCLUSIVE MODE")
        threads = [
            post_in_thread(ingest_server, first_key, events, answers, name)
            for name, events in stuck.items()
        ]
        deadline = time.monotonic() + 30
        while lock_waiters(admin, APPLICATION_NAME) < 2:
            assert time.monotonic() < deadline, f"requests not waiting on the lock: {answers}"
            time.sleep(0.05)
        # A third request, with a key the process has not cached, needs a connection
        # to find its workspace: none is free within the pool's 1 s.
        started = time.monotonic()
        response = httpx.post(
            f"{ingest_server}/v1/batch", json={"batch": late}, auth=(second_key, ""), timeout=60
        )
        waited = time.monotonic() - started
        assert (response.status_code, response.json()) == (
            503,
            {
                "code": "database_unavailable",
                "message": "The database is unavailable; retry later.",
            },
        )
        assert response.headers["Retry-After"] == "1"
        # The stuck requests are cut off by the statement timeout (6 s), still locked out.
        for thread in threads:
            thread.join(timeout=60)
        assert lock_waiters(admin, APPLICATION_NAME) == 0
    finally:
        admin.execute("ROLLBACK")
        admin.close()
    print(f"\nthe request without a connection was answered 503 after {waited:.1f} s")

    assert answers == {
        name: (
            503,
            "1",
            {
                "code": "database_busy",
                "message": "The database did not answer within 6000 ms; retry later.",
            },
        )
        for name in stuck
    }
    assert Event.objects.count() == 0
    assert EventMessageId.objects.count() == 0

    # Sent again (as clients retry a 503), each batch is stored, once.
    for key, events in [(first_key, stuck["stuck1"]), (first_key, stuck["stuck2"]),
                        (second_key, late)]:  # fmt: skip
        retried = httpx.post(
            f"{ingest_server}/v1/batch", json={"batch": events}, auth=(key, ""), timeout=60
        )
        assert (retried.status_code, retried.json()) == (200, {"success": True})
    expected = sorted(event["messageId"] for events in [*stuck.values(), late] for event in events)
    assert sorted(Event.objects.values_list("message_id", flat=True)) == expected
