"""The real tracking libraries, unmodified, against a live Daphne on the test database:
Segment's segment-analytics-python 2.x and analytics-python 1.x, RudderStack's
rudder-sdk-python 2.x (gzip on, its default), and a browser-style text/plain request.
Each event must be stored exactly once, on the right profile, with the client
reporting success (on_error never called; Segment's client wants exactly 200)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import django_rq
import httpx
import pytest
from rudderstack.analytics import Client as RudderClient
from segment.analytics import Client as SegmentClient

from engagement_site.workspaces.services import api_key_create
from segments.models import Event, Profile, RejectedEvent
from segments.tasks import INGEST_QUEUE
from tests.conftest import SETUP
from tests.servers import ARTIFACTS, free_port, server_environment, start_daphne, stop

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def tracking_server(django_db_setup, django_db_blocker) -> str:
    """Daphne serving the app on a free port, on the test database and Redis."""
    port = free_port()
    process = start_daphne(port, ARTIFACTS / "daphne-tracking.log", server_environment())
    yield f"http://127.0.0.1:{port}"
    stop(process)


@pytest.fixture
def write_key(workspace) -> str:
    _, raw_key = api_key_create(workspace=workspace, kind="write", name="SDK", context=SETUP)
    return raw_key


@pytest.fixture
def failures() -> list:
    return []


def record_failure(failures: list):
    def on_error(error, batch):
        failures.append((repr(error), batch))

    return on_error


def stored_events(workspace) -> list[tuple]:
    rows = Event.objects.filter(workspace=workspace).order_by("id")
    return list(rows.values_list("message_id", "type", "name", "profile__user_id"))


def sent(*results) -> list[str]:
    message_ids = []
    for success, message in results:
        assert success is True
        message_ids.append(message["messageId"])
    return message_ids


def test_segment_analytics_python_2(tracking_server, workspace, write_key, failures):
    client = SegmentClient(
        write_key=write_key,
        host=tracking_server,
        on_error=record_failure(failures),
        max_retries=1,
        upload_interval=0.1,
    )
    message_ids = sent(
        client.track(anonymous_id="seg-anon", event="Product Viewed", properties={"sku": "A-1"}),
        client.identify(
            user_id="seg-user",
            anonymous_id="seg-anon",
            traits={"email": "seg@example.com", "plan": "pro"},
        ),
        client.track(user_id="seg-user", event="Order Completed", properties={"total": 42.5}),
        client.page(user_id="seg-user", category="Docs", name="Install"),
        client.screen(user_id="seg-user", name="Home"),
        client.group(user_id="seg-user", group_id="acme-inc", traits={"name": "Acme"}),
        client.alias(previous_id="seg-legacy", user_id="seg-user"),
    )
    client.flush()
    client.join()
    # sync_mode posts each call itself and raises unless the answer is a success.
    sync_client = SegmentClient(write_key=write_key, host=tracking_server, sync_mode=True)
    message_ids += sent(sync_client.track(user_id="seg-user", event="Synced"))

    assert failures == []
    assert stored_events(workspace) == [
        (message_ids[0], "track", "Product Viewed", "seg-user"),
        (message_ids[1], "identify", "", "seg-user"),
        (message_ids[2], "track", "Order Completed", "seg-user"),
        (message_ids[3], "page", "Install", "seg-user"),
        (message_ids[4], "screen", "Home", "seg-user"),
        (message_ids[5], "group", "", "seg-user"),
        (message_ids[6], "alias", "", "seg-user"),
        (message_ids[7], "track", "Synced", "seg-user"),
    ]
    profile = Profile.objects.get(workspace=workspace)
    assert (profile.user_id, profile.anonymous_ids, profile.email) == (
        "seg-user",
        ["seg-anon", "seg-legacy"],
        "seg@example.com",
    )
    assert profile.traits == {"email": "seg@example.com", "plan": "pro"}
    library = Event.objects.get(message_id=message_ids[2]).context["library"]
    assert library["name"] == "analytics-python"
    assert RejectedEvent.objects.count() == 0


# analytics-python 1.x is the module `analytics`, the name of this project's own Django
# app, so the Makefile installs it apart (.venv/clients/analytics-python-1) and it runs
# as a customer's app would: in its own process (same interpreter and virtualenv for its
# requirements, `-I` keeps the project off sys.path), reporting back as JSON.
ANALYTICS_V1_DIR = Path(sys.prefix) / "clients" / "analytics-python-1"
ANALYTICS_V1_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[3])
import analytics
failures = []
client = analytics.Client(
    sys.argv[1], host=sys.argv[2], on_error=lambda error, batch: failures.append(repr(error))
)
results = [
    client.page(anonymous_id="v1-anon", name="Landing", properties={"path": "/"}),
    client.identify(user_id="v1-user", anonymous_id="v1-anon", traits={"plan": "free"}),
    client.track(user_id="v1-user", event="Signed Up", properties={"source": "ads"}),
    client.screen(user_id="v1-user", name="Welcome"),
    client.group(user_id="v1-user", group_id="team-1"),
    client.alias(previous_id="v1-old", user_id="v1-user"),
]
client.flush()
client.join()
print(json.dumps({
    "module": analytics.__file__,
    "version": analytics.VERSION,
    "sent": [[success, message["messageId"]] for success, message in results],
    "failures": failures,
}))
"""


def test_analytics_python_1(tracking_server, workspace, write_key, tmp_path):
    finished = subprocess.run(
        [sys.executable, "-I", "-c", ANALYTICS_V1_SCRIPT, write_key, tracking_server, str(ANALYTICS_V1_DIR)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    report = json.loads(finished.stdout)

    assert report["version"].startswith("1.")
    assert report["module"].startswith(str(ANALYTICS_V1_DIR))
    assert report["failures"] == []
    message_ids = sent(*[(success, {"messageId": mid}) for success, mid in report["sent"]])
    assert stored_events(workspace) == [
        (message_ids[0], "page", "Landing", "v1-user"),
        (message_ids[1], "identify", "", "v1-user"),
        (message_ids[2], "track", "Signed Up", "v1-user"),
        (message_ids[3], "screen", "Welcome", "v1-user"),
        (message_ids[4], "group", "", "v1-user"),
        (message_ids[5], "alias", "", "v1-user"),
    ]
    profile = Profile.objects.get(workspace=workspace)
    assert (profile.anonymous_ids, profile.traits) == (["v1-anon", "v1-old"], {"plan": "free"})


def test_rudder_sdk_python_2_with_gzip(tracking_server, workspace, write_key, failures):
    client = RudderClient(
        write_key=write_key,
        host=tracking_server,
        on_error=record_failure(failures),
        max_retries=1,
        upload_interval=0.1,
    )
    assert client.gzip is True  # the library's default, left as it is
    message_ids = sent(
        client.track(anonymous_id="rs-anon", event="App Opened"),
        # RudderStack sends identify traits in context.traits only.
        client.identify(
            user_id="rs-user",
            anonymous_id="rs-anon",
            traits={"email": "rs@example.com", "locale": "pt_BR"},
        ),
        client.track(user_id="rs-user", event="Trial Started", properties={"days": 14}),
        client.page(user_id="rs-user", name="Pricing"),
        client.screen(user_id="rs-user", name="Paywall"),
        client.group(user_id="rs-user", group_id="org-7", traits={"seats": 5}),
        client.alias(previous_id="rs-legacy", user_id="rs-user"),
    )
    client.flush()
    client.join()

    assert failures == []
    assert stored_events(workspace) == [
        (message_ids[0], "track", "App Opened", "rs-user"),
        (message_ids[1], "identify", "", "rs-user"),
        (message_ids[2], "track", "Trial Started", "rs-user"),
        (message_ids[3], "page", "Pricing", "rs-user"),
        (message_ids[4], "screen", "Paywall", "rs-user"),
        (message_ids[5], "group", "", "rs-user"),
        (message_ids[6], "alias", "", "rs-user"),
    ]
    profile = Profile.objects.get(workspace=workspace)
    assert (profile.traits, profile.email, profile.locale) == (
        {"email": "rs@example.com", "locale": "pt_BR"},
        "rs@example.com",
        "pt-BR",
    )
    assert Event.objects.get(message_id=message_ids[5]).properties == {
        "seats": 5,
        "groupId": "org-7",
    }


def test_a_browser_style_text_plain_request(tracking_server, workspace, write_key):
    origin = {"Origin": "https://shop.example.com"}
    preflight = httpx.options(
        f"{tracking_server}/v1/batch",
        headers={**origin, "Access-Control-Request-Method": "POST"},
    )
    body = {
        "batch": [
            {
                "type": "page",
                "anonymousId": "browser-anon",
                "messageId": "ajs-next-1",
                "timestamp": "2026-11-20T11:59:58.120Z",
                "properties": {"path": "/pricing", "title": "Pricing"},
                "context": {"userAgent": "Mozilla/5.0", "locale": "en-GB"},
            },
            {
                "type": "track",
                "anonymousId": "browser-anon",
                "event": "Plan Selected",
                "messageId": "ajs-next-2",
                "timestamp": "2026-11-20T11:59:59.870Z",
            },
        ],
        "writeKey": write_key,
        "sentAt": "2026-11-20T12:00:00.000Z",
    }

    response = httpx.post(
        f"{tracking_server}/v1/batch",
        content=httpx.Request("POST", "/", json=body).content,
        headers={**origin, "Content-Type": "text/plain"},
    )

    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert (response.status_code, response.json()) == (200, {"success": True})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    profile = Profile.objects.get(workspace=workspace)
    assert (profile.user_id, profile.anonymous_ids, profile.locale) == (
        "",
        ["browser-anon"],
        "en-GB",
    )
    assert list(
        Event.objects.filter(profile=profile).order_by("id").values_list("message_id", "type")
    ) == [("ajs-next-1", "page"), ("ajs-next-2", "track")]
    # After the commit, exactly one job hands the batch to the real-time hooks.
    jobs = django_rq.get_queue(INGEST_QUEUE).jobs
    event_ids = sorted(Event.objects.filter(profile=profile).values_list("id", flat=True))
    assert [(job.func_name, job.args) for job in jobs] == [
        ("segments.tasks.ingested_batch_process", (workspace.pk, [profile.pk], event_ids))
    ]
