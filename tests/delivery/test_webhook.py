"""Webhooks from a journey to a real local HTTP server (the receiver in local_http.py,
served by the `receiver` fixture): the rendered JSON body, the
signature a receiver can check, the idempotency key; 5xx and 429 retried, other 4xx
final; a job run twice calls once."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest
import time_machine

from content import services as content_services
from delivery.channels.webhook import SIGNATURE_HEADER, signing_secret
from delivery.models import Message
from delivery.services import RETRY_DELAYS, messages_enqueue
from journeys import services
from segments.models import Profile
from tests.delivery.conftest import _one_step_journey
from tests.delivery.test_email import _run_retries, _work
from tests.journeys.test_executor import EDITOR

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.fixture
def hook_journey(workspace, receiver):
    template = content_services.template_create(
        workspace=workspace, name="CRM sync", channel="webhook",
        content={"default": {
            "method": "POST", "url": f"{receiver.url}/crm/{{{{ profile.user_id }}}}",
            "headers": {"X-Source": "engagement"},
            "body": '{"user": {{ profile.user_id | json }}, "plan": {{ profile.plan | json }}}',
        }},
        context=EDITOR,
    )  # fmt: skip
    return _one_step_journey(workspace, "Sync", {"kind": "webhook", "template_id": template.pk})


def _enter(journey, workspace) -> Profile:
    ada = Profile.objects.create(workspace=workspace, user_id="ada", traits={"plan": "pro"})
    services.journey_enroll(journey=journey, profile_id=ada.pk, context=EDITOR)
    return ada


def test_a_journey_webhook_arrives_signed_with_its_idempotency_key(
    workspace, hook_journey, receiver
):
    with time_machine.travel(T0, tick=False):
        ada = _enter(hook_journey, workspace)
        _work()
    [request] = receiver.requests
    message = Message.objects.get(profile=ada)
    assert request["path"] == "/crm/ada"
    assert json.loads(request["body"]) == {"user": "ada", "plan": "pro"}
    headers = request["headers"]
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Source"] == "engagement"
    assert headers["Idempotency-Key"] == message.idempotency_key
    # A receiver checks the signature with the workspace's secret.
    stamp, mac = (part.split("=", 1)[1] for part in headers[SIGNATURE_HEADER].split(","))
    expected = hmac.new(
        signing_secret(workspace.pk).encode(),
        f"{stamp}.".encode() + request["body"],
        hashlib.sha256,
    ).hexdigest()
    assert hmac.compare_digest(mac, expected) and int(stamp) == int(T0.timestamp())
    assert signing_secret(workspace.pk) != signing_secret(workspace.pk + 1)
    assert (message.status, message.provider_message_id) == ("sent", "req-1")
    # The same send queued again calls nobody.
    messages_enqueue([message.pk], channel="webhook")
    _work()
    assert len(receiver.requests) == 1


def test_busy_receivers_are_retried_and_refusals_are_final(workspace, hook_journey, receiver):
    receiver.answers = [503, 429]
    with time_machine.travel(T0, tick=False):
        ada = _enter(hook_journey, workspace)
        _work()
    message = Message.objects.get(profile=ada)
    assert (message.status, message.attempts) == ("queued", 1)
    assert message.last_error.startswith("503 Service Unavailable")
    _run_retries(T0, RETRY_DELAYS[:2])
    message.refresh_from_db()
    assert (message.status, message.attempts, message.provider_message_id) == ("sent", 3, "req-3")
    assert [r["headers"]["Idempotency-Key"] for r in receiver.requests] == [
        message.idempotency_key
    ] * 3

    receiver.requests.clear()
    receiver.answers = [410]
    bo = Profile.objects.create(workspace=workspace, user_id="bo", traits={"plan": "free"})
    services.journey_enroll(journey=hook_journey, profile_id=bo.pk, context=EDITOR)
    _work()
    refused = Message.objects.get(profile=bo)
    assert (refused.status, refused.reason) == ("failed", "provider_refused")
    assert refused.last_error.startswith("410 Gone")
    assert len(receiver.requests) == 1
