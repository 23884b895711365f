"""The /v1/* tracking API over HTTP: authentication, encodings, CORS, every error with
its status and code (and nothing stored), rate limits and the write-key cache."""

from __future__ import annotations

import base64
import gzip
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import redis
import time_machine

from engagement_site.workspaces.models import ApiKey
from engagement_site.workspaces.services import api_key_create, api_key_revoke
from segments.models import (
    Event,
    EventMessageId,
    IngestionSettings,
    RejectedEvent,
)
from tests.conftest import SETUP
from tests.segments.stored import NOTHING, stored

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Content-Encoding",
    "Access-Control-Max-Age": "86400",
}


@pytest.fixture
def write_key(workspace) -> str:
    _, raw_key = api_key_create(workspace=workspace, kind="write", name="Website", context=SETUP)
    return raw_key


def basic(key: str, *, colon: bool = True) -> str:
    credentials = f"{key}:" if colon else key
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def post(client, path, body, *, key=None, content_type="application/json", **headers):
    if not isinstance(body, bytes):
        body = orjson.dumps(body)
    if key is not None:
        headers["Authorization"] = basic(key)
    return client.post(path, data=body, content_type=content_type, headers=headers)


def track(message_id: str, **fields) -> dict:
    return {
        "type": "track",
        "userId": "ada",
        "event": "Signed Up",
        "messageId": message_id,
        **fields,
    }


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert (body["code"], set(body)) == (code, {"code", "message"})
    assert body["message"]
    assert response["Access-Control-Allow-Origin"] == "*"


# --------------------------------------------------------------------------- success


def test_a_batch_with_basic_auth_answers_exactly_200_success(client, workspace, write_key):
    response = post(client, "/v1/batch", {"batch": [track("m-1"), track("m-2")]}, key=write_key)

    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert {name: response[name] for name in CORS} == CORS
    assert sorted(
        Event.objects.filter(workspace=workspace).values_list("message_id", flat=True)
    ) == [
        "m-1",
        "m-2",
    ]


def test_basic_auth_without_the_colon_is_accepted(client, workspace, write_key):
    response = client.post(
        "/v1/batch",
        data=orjson.dumps({"batch": [track("m-1")]}),
        content_type="application/json",
        headers={"Authorization": basic(write_key, colon=False)},
    )

    assert response.status_code == 200
    assert Event.objects.get().message_id == "m-1"


def test_a_browser_style_text_plain_body_with_the_write_key_inside(client, workspace, write_key):
    body = {
        "batch": [track("m-1", anonymousId="browser-1", userId=None)],
        "writeKey": write_key,
        "sentAt": "2026-11-20T12:00:00.000Z",
    }

    response = post(client, "/v1/batch", body, content_type="text/plain;charset=UTF-8")

    assert response.status_code == 200
    assert Event.objects.get().profile.anonymous_ids == ["browser-1"]


def test_a_gzip_body(client, workspace, write_key):
    body = gzip.compress(orjson.dumps({"batch": [track("m-1")]}))

    response = post(client, "/v1/batch", body, key=write_key, **{"Content-Encoding": "gzip"})

    assert response.status_code == 200
    assert Event.objects.get().message_id == "m-1"


@pytest.mark.parametrize(
    ("path", "fields", "expected"),
    [
        ("/v1/track", {"event": "Signed Up"}, ("track", "Signed Up")),
        ("/v1/identify/", {"traits": {"plan": "pro"}}, ("identify", "")),
        ("/v1/page", {"name": "Home"}, ("page", "Home")),
        ("/v1/screen/", {"name": "Settings"}, ("screen", "Settings")),
        ("/v1/group", {"groupId": "g-1"}, ("group", "")),
        ("/v1/alias", {"previousId": "anon-1"}, ("alias", "")),
    ],
)
def test_single_call_endpoints_take_their_type_from_the_path(
    client, workspace, write_key, path, fields, expected
):
    body = {"userId": "ada", "messageId": "m-1", "writeKey": write_key, **fields}

    response = post(client, path, body)

    assert (response.status_code, response.json()) == (200, {"success": True})
    stored_event = Event.objects.get()
    assert (stored_event.type, stored_event.name) == expected
    assert stored_event.profile.user_id == "ada"


def test_cors_preflight(client, db):
    response = client.options(
        "/v1/batch",
        headers={
            "Origin": "https://shop.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )

    assert response.status_code == 204
    assert response.content == b""
    assert {name: response[name] for name in CORS} == CORS


def test_a_four_megabyte_batch_is_accepted(client, workspace, write_key):
    # RudderStack's clients send up to 4 MB: beyond Django's 2.5 MB form-data limit.
    events = [track(f"m-{n}", properties={"blob": "x" * 20_000}) for n in range(200)]
    body = orjson.dumps({"batch": events})
    assert 3_900_000 < len(body) <= 4 * 1024 * 1024

    response = post(client, "/v1/batch", body, key=write_key)

    assert response.status_code == 200
    assert Event.objects.count() == 200


def test_an_invalid_event_in_a_good_batch_is_quarantined_and_the_request_succeeds(
    client, workspace, write_key
):
    big = track("m-big", properties={"blob": "x" * 33_000})
    body = {"batch": [track("m-1"), {"type": "track", "userId": "ada"}, big]}

    response = post(client, "/v1/batch", body, key=write_key)

    assert (response.status_code, response.json()) == (200, {"success": True})
    assert list(Event.objects.values_list("message_id", flat=True)) == ["m-1"]
    assert sorted(RejectedEvent.objects.values_list("code", "reason")) == [
        (
            "event_too_large",
            f"event: {len(orjson.dumps(big))} bytes, over the limit of 32768 bytes",
        ),
        ("invalid_event", "event: is required for track"),
    ]


def test_a_warm_request_costs_no_query_before_ingestion(
    client, workspace, write_key, django_assert_num_queries
):
    post(client, "/v1/batch", {"batch": [track("m-0")]}, key=write_key)
    body = {"batch": [track(f"m-{n}") for n in range(1, 101)]}

    # Exactly ingest_batch's statements for a known user (see test_ingestion.py), and
    # the one that sets the batch's statement timeout.
    with django_assert_num_queries(9):
        response = post(client, "/v1/batch", body, key=write_key)

    assert response.status_code == 200


# --------------------------------------------------------------------------- errors


def test_malformed_json(client, workspace, write_key):
    response = post(client, "/v1/batch", b'{"batch": [', key=write_key)

    assert_error(response, 400, "invalid_json")
    assert stored() == NOTHING


def test_a_body_that_is_not_an_object(client, workspace, write_key):
    response = post(client, "/v1/track", b'["track"]', key=write_key)

    assert_error(response, 400, "invalid_json")
    assert stored() == NOTHING


def test_a_batch_that_is_not_a_list(client, workspace, write_key):
    response = post(client, "/v1/batch", {"batch": {"type": "track"}}, key=write_key)

    assert_error(response, 400, "invalid_batch")
    assert stored() == NOTHING


def test_a_batch_over_2500_events(client, workspace, write_key):
    body = {"batch": [track(f"m-{n}") for n in range(2501)]}

    response = post(client, "/v1/batch", body, key=write_key)

    assert_error(response, 413, "batch_too_large")
    assert response.json()["message"] == "The batch holds 2501 events; the limit is 2500."
    assert stored() == NOTHING


def test_invalid_gzip(client, workspace, write_key):
    response = post(
        client, "/v1/batch", b"not gzip at all", key=write_key, **{"Content-Encoding": "gzip"}
    )

    assert_error(response, 400, "invalid_gzip")
    assert stored() == NOTHING


def test_an_unsupported_content_encoding(client, workspace, write_key):
    response = post(client, "/v1/batch", b"...", key=write_key, **{"Content-Encoding": "br"})

    assert_error(response, 415, "unsupported_content_encoding")
    assert stored() == NOTHING


@pytest.mark.parametrize("how", ["unknown", "missing", "secret key", "other kind of auth"])
def test_a_missing_or_unknown_write_key(client, workspace, write_key, how):
    body = {"batch": [track("m-1")]}
    headers = {}
    if how == "unknown":
        headers["Authorization"] = basic("wk_nobody")
    elif how == "secret key":
        _, secret = api_key_create(workspace=workspace, kind="secret", name="CI", context=SETUP)
        headers["Authorization"] = basic(secret)
    elif how == "other kind of auth":
        headers["Authorization"] = f"Bearer {write_key}"

    response = post(client, "/v1/batch", body, **headers)

    assert_error(response, 401, "invalid_write_key")
    assert stored() == NOTHING


def test_a_revoked_write_key(client, workspace, write_key):
    api_key_revoke(api_key=ApiKey.objects.get(kind="write"), context=SETUP)

    response = post(client, "/v1/batch", {"batch": [track("m-1")]}, key=write_key)

    assert_error(response, 401, "invalid_write_key")
    assert stored() == NOTHING


def test_a_revoked_key_is_refused_once_the_cache_expires(client, workspace, write_key, settings):
    assert settings.INGESTION_WRITE_KEY_CACHE_SECONDS == 5
    start = datetime(2026, 11, 20, 12, 0, 1, tzinfo=UTC)
    with time_machine.travel(start, tick=False) as traveller:
        assert post(client, "/v1/track", track("m-1"), key=write_key).status_code == 200
        api_key_revoke(api_key=ApiKey.objects.get(kind="write"), context=SETUP)

        # Within the cache's lifetime the process still knows the key...
        traveller.shift(timedelta(seconds=4.9))
        assert post(client, "/v1/track", track("m-2"), key=write_key).status_code == 200
        # ...and refuses it from then on.
        traveller.shift(timedelta(seconds=0.2))
        response = post(client, "/v1/track", track("m-3"), key=write_key)

    assert_error(response, 401, "invalid_write_key")
    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["m-1", "m-2"]


def test_one_event_over_32_kb_on_a_single_call_endpoint(client, workspace, write_key):
    body = track("m-1", properties={"blob": "x" * (32 * 1024)})

    response = post(client, "/v1/track", body, key=write_key)

    assert_error(response, 413, "event_too_large")
    assert stored() == NOTHING


def test_a_request_over_4_mb(client, workspace, write_key):
    body = orjson.dumps({"batch": [track("m-1", properties={"blob": "x" * (4 * 1024 * 1024)})]})

    response = post(client, "/v1/batch", body, key=write_key)

    assert_error(response, 413, "request_too_large")
    assert stored() == NOTHING


def test_a_gzip_bomb_is_refused_at_4_mb_decompressed(client, workspace, write_key):
    inflated = b'{"batch": [], "padding": "' + b"0" * (5 * 1024 * 1024) + b'"}'
    bomb = gzip.compress(inflated)
    assert len(bomb) < 10_000

    response = post(client, "/v1/batch", bomb, key=write_key, **{"Content-Encoding": "gzip"})

    assert_error(response, 413, "request_too_large")
    assert stored() == NOTHING


def test_only_post_and_options(client, db):
    response = client.get("/v1/batch")

    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST, OPTIONS"


def test_over_the_workspace_rate_a_request_gets_429_with_retry_after(client, workspace, write_key):
    IngestionSettings.objects.create(workspace=workspace, rate_limit_per_second=2)
    # 2 events a second over a 10 s window: a budget of 20 events per window.
    with time_machine.travel(datetime(2026, 11, 20, 12, 0, 3, tzinfo=UTC), tick=False) as traveller:
        first = post(
            client, "/v1/batch", {"batch": [track(f"m-{n}") for n in range(15)]}, key=write_key
        )
        refused = post(
            client, "/v1/batch", {"batch": [track(f"x-{n}") for n in range(6)]}, key=write_key
        )
        fits = post(
            client, "/v1/batch", {"batch": [track(f"y-{n}") for n in range(5)]}, key=write_key
        )
        over = post(client, "/v1/track", track("z-1"), key=write_key)
        traveller.shift(timedelta(seconds=7))  # the next window
        later = post(client, "/v1/track", track("z-2"), key=write_key)

    assert first.status_code == 200
    assert_error(refused, 429, "rate_limited")
    assert refused["Retry-After"] == "7"
    # A refused request does not use up the budget.
    assert fits.status_code == 200
    assert_error(over, 429, "rate_limited")
    assert later.status_code == 200
    stored_ids = set(Event.objects.values_list("message_id", flat=True))
    assert len(stored_ids) == 21
    assert not {"x-0", "z-1"} & stored_ids
    assert EventMessageId.objects.filter(message_id__in=["x-0", "z-1"]).count() == 0


def test_the_rate_counts_per_workspace(client, workspace, other_workspace, write_key):
    IngestionSettings.objects.create(workspace=workspace, rate_limit_per_second=1)
    _, other_key = api_key_create(
        workspace=other_workspace, kind="write", name="App", context=SETUP
    )
    with time_machine.travel(datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC), tick=False):
        assert (
            post(
                client, "/v1/batch", {"batch": [track(f"m-{n}") for n in range(10)]}, key=write_key
            ).status_code
            == 200
        )
        assert post(client, "/v1/track", track("m-10"), key=write_key).status_code == 429
        assert post(client, "/v1/track", track("m-1"), key=other_key).status_code == 200


def test_a_failure_while_storing_answers_json_500_and_stores_nothing(
    client, workspace, write_key, monkeypatch
):
    def broken(**arguments):
        raise RuntimeError("database went away")

    monkeypatch.setattr("segments.tracking_views.ingest_batch", broken)

    response = post(client, "/v1/batch", {"batch": [track("m-1")]}, key=write_key)

    assert_error(response, 500, "internal_error")
    assert stored() == NOTHING


def test_with_redis_unreachable_the_rate_limit_lets_events_through(
    client, workspace, write_key, monkeypatch
):
    IngestionSettings.objects.create(workspace=workspace, rate_limit_per_second=1)

    def unreachable():
        raise redis.ConnectionError("no Redis")

    monkeypatch.setattr("segments.tracking_views._redis", unreachable)
    batch = {"batch": [track(f"m-{n}") for n in range(20)]}

    assert post(client, "/v1/batch", batch, key=write_key).status_code == 200
    assert Event.objects.count() == 20
