"""PostgreSQL connections dropped while Daphne takes /v1/batch requests.

Daphne runs as `make run` runs it (its pool of connections included). Client threads
post batches the way Segment's client does (the same messageIds on every retry, a retry
on a 5xx, a 429 or a broken connection, with backoff), while a separate admin
connection terminates the server's busy backends (a query running or a transaction
open) with pg_terminate_backend. Afterwards every event answered 200 is stored exactly
once, every other answer was a 503 JSON error naming the problem, and no batch is
half-stored."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import orjson
import pytest
from django.db.models import Count

from engagement_site.workspaces.services import AuditContext, api_key_create
from segments.models import Event, EventMessageId
from tests.faults.postgres_faults import BackendKiller, soak_size, start_daphne
from tests.servers import free_port, stop

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 4
BATCHES_PER_CLIENT = soak_size(25, 250)
EVENTS_PER_BATCH = 100
ATTEMPTS = 8  # a batch is given up (as a client would drop it) after this many tries
WEB = "fault-web"


def _batch(client: int, number: int) -> list[dict]:
    return [
        {
            "type": "track" if index % 5 else "identify",
            "event": "Viewed",
            "userId": f"user-{(client * 7919 + number * 31 + index) % 300}",
            "messageId": f"c{client}-b{number}-e{index}",
            "properties": {"batch": number, "index": index},
            "traits": {"plan": "pro"} if index % 5 == 0 else {},
            "timestamp": "2025-01-01T00:00:00Z",
        }
        for index in range(EVENTS_PER_BATCH)
    ]


class Sender(threading.Thread):
    """Posts its batches in turn, retrying each like Segment's client; records every
    answer and each batch's final status."""

    def __init__(self, number: int, base: str, write_key: str):
        super().__init__(daemon=True)
        self.number, self.base, self.write_key = number, base, write_key
        self.final: dict[int, int | str] = {}  # batch -> final status (or "transport")
        self.answers: list[tuple[int, str, bytes]] = []  # non-200: status, type, body
        self.transport_errors = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.Client(auth=(self.write_key, ""), timeout=15) as client:
                for number in range(BATCHES_PER_CLIENT):
                    body = {"batch": _batch(self.number, number)}
                    status: int | str = "transport"
                    for attempt in range(ATTEMPTS):
                        try:
                            response = client.post(f"{self.base}/v1/batch", json=body)
                        except httpx.TransportError:
                            self.transport_errors += 1
                            status = "transport"
                        else:
                            status = response.status_code
                            if status == 200:
                                break
                            self.answers.append(
                                (status, response.headers.get("content-type", ""), response.content)
                            )
                            if status < 500 and status != 429:
                                break  # a 4xx is final for Segment's client too
                        time.sleep(min(0.05 * 2**attempt, 1.0))
                    self.final[number] = status
        except BaseException as error:
            self.error = error


@pytest.mark.soak
@pytest.mark.timeout(soak_size(300, 3600))
def test_database_connections_dropped_during_ingest_lose_and_double_nothing(workspace, tmp_path):
    write_key = api_key_create(
        workspace=workspace, kind="write", name="faults", context=AuditContext.system("test")
    )[1]
    server, base = start_daphne(application_name=WEB, log=tmp_path / "daphne.log")
    killer = BackendKiller(WEB, interval=0.3, all_every=3.0)
    senders = [Sender(number, base, write_key) for number in range(CLIENTS)]
    try:
        # Warm up: the write key is cached and the pool open before the faults start.
        assert (
            httpx.post(
                f"{base}/v1/batch", auth=(write_key, ""), json={"batch": []}, timeout=10
            ).status_code
            == 200
        )
        killer.start()
        started = time.monotonic()
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(timeout=120)
            assert not sender.is_alive(), "a client is stuck"
            assert sender.error is None, f"a client failed: {sender.error!r}"
        killed = killer.stop()
        seconds = time.monotonic() - started
        # The server is still serving after the faults: a batch after them is stored.
        after = httpx.post(
            f"{base}/v1/batch", auth=(write_key, ""), timeout=10,
            json={"batch": [{"type": "track", "event": "After", "userId": "after", "messageId": "after-1"}]},
        )  # fmt: skip
        assert after.status_code == 200, after.text
    finally:
        if killer.is_alive():
            killer.stopping.set()
        stop(server)
    log = (tmp_path / "daphne.log").read_text()

    stored = Counter(
        dict(
            Event.objects.filter(workspace=workspace)
            .values_list("message_id")
            .annotate(n=Count("pk"))
        )
    )
    duplicates = sum(n - 1 for n in stored.values() if n > 1)
    assert duplicates == 0
    accepted = half_stored = lost = refused_batches = 0
    for sender in senders:
        for number, status in sender.final.items():
            ids = [event["messageId"] for event in _batch(sender.number, number)]
            present = sum(1 for message_id in ids if stored[message_id] == 1)
            if status == 200:
                accepted += len(ids)
                lost += len(ids) - present
            else:
                refused_batches += 1
                if present not in (0, len(ids)):
                    half_stored += 1
    assert lost == 0
    assert half_stored == 0
    answers = [answer for sender in senders for answer in sender.answers]
    statuses = Counter(status for status, _, _ in answers)
    assert set(statuses) <= {503}, f"answers other than 200 and 503: {statuses}\n{log[-3000:]}"
    for _status, content_type, body in answers:
        assert content_type == "application/json"
        assert orjson.loads(body) == {
            "code": "database_unavailable",
            "message": "The database is unavailable; retry later.",
        }
    transport_errors = sum(sender.transport_errors for sender in senders)
    assert transport_errors == 0
    # Every remembered messageId belongs to a stored event (no claim without its event).
    assert EventMessageId.objects.filter(workspace=workspace).count() == len(stored)
    assert sum(stored.values()) == accepted + 1  # + the batch after the faults
    assert refused_batches == 0
    busy = Counter(killed)
    assert busy["active"] + busy["idle in transaction"] >= 3, f"too few faults: {busy}"
    print(
        f"\ningest under PostgreSQL drops: batches={CLIENTS * BATCHES_PER_CLIENT} "
        f"events_accepted={accepted} stored={sum(stored.values()) - 1} duplicates={duplicates} "
        f"lost={lost} half_stored={half_stored} answers_503={statuses[503]} "
        f"backends_terminated={len(killed)} ({dict(busy)}) in {seconds:.1f} s"
    )


def test_a_database_that_cannot_be_reached_gets_a_503_json_answer_not_a_500(tmp_path):
    """Daphne whose database does not answer (nothing listens on its port): the write
    key cannot be looked up and the batch cannot be stored; the client gets a 503 JSON
    error it can retry, not Django's 500 page."""
    dead = f"postgres://postgres@127.0.0.1:{free_port()}/nowhere"
    server, base = start_daphne(
        application_name=WEB, log=tmp_path / "daphne.log", DATABASE_URL=dead,
        DATABASE_POOL_TIMEOUT="1",
    )  # fmt: skip
    try:
        response = httpx.post(
            f"{base}/v1/batch", auth=("wk_anything", ""), timeout=30,
            json={"batch": [{"type": "track", "event": "Seen", "userId": "u1", "messageId": "m1"}]},
        )  # fmt: skip
    finally:
        stop(server)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert response.headers["retry-after"] == "1"
    assert response.json() == {
        "code": "database_unavailable",
        "message": "The database is unavailable; retry later.",
    }
