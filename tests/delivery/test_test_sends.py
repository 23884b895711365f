"""Test sends from the content editor through the workspace's provider channels: an
SMS reaches the local Twilio once with the rendered body, a webhook reaches its
receiver; bad numbers, channels not set up and provider refusals are answered
naming the problem; no Message is written and nothing is retried."""

from __future__ import annotations

import json

import pytest

from content import services as content_services
from delivery.models import Message
from engagement_site.workspaces.models import AuditLog
from tests.conftest import logged_in
from tests.delivery.test_sms import ADA, SENDER, sms_registered, sms_settings  # noqa: F401
from tests.journeys.test_executor import EDITOR

pytestmark = pytest.mark.django_db(transaction=True)


def _template(workspace, channel: str, content: dict):
    return content_services.template_create(
        workspace=workspace, name=f"Test {channel}", channel=channel,
        content={"default": content}, context=EDITOR,
    )  # fmt: skip


def _test_send(client, workspace, template, to: str):
    response = client.post(
        f"/w/{workspace.slug}/content/templates/{template.pk}/test-send", {"to": to}
    )
    return response.status_code, response.content.decode()


def test_an_sms_test_goes_once_to_the_number_through_the_workspaces_twilio(
    workspace,
    owner,
    twilio_api,
    sms_settings,  # noqa: F811
):
    template = _template(workspace, "sms", {"body": "Hi {{ profile.first_name }}, code 4417."})
    client = logged_in(owner)
    status, page = _test_send(client, workspace, template, "+1 (415) 555-0123")
    assert status == 200
    assert f"Sent version 1 (default): Sent to {ADA} (provider id SM" in page
    [request] = twilio_api.received
    assert (request.form["To"], request.form["From"]) == (ADA, SENDER)
    assert request.form["Body"].endswith(", code 4417.") and request.form["Body"].startswith("Hi ")
    assert not Message.objects.exists()
    audit = AuditLog.objects.get(workspace=workspace, action="template.test_send")
    assert audit.changes["channel"] == "sms" and ADA not in json.dumps(audit.changes)

    # A number that is not one is refused before anything is sent, and so is one
    # that texted STOP: tests obey the suppression list too.
    assert _test_send(client, workspace, template, "call me")[0] == 400
    from delivery.models import Suppression

    Suppression.objects.create(
        workspace=workspace, channel="sms", address="+14155550177", reason="keyword"
    )
    status, page = _test_send(client, workspace, template, "+14155550177")
    assert status == 400 and "suppression list (keyword)" in page
    assert len(twilio_api.received) == 1
    # Twilio's refusal is shown as it was given, and not retried.
    twilio_api.answers.append(503)
    status, page = _test_send(client, workspace, template, ADA)
    assert status == 502 and "The provider did not take the test" in page
    assert len(twilio_api.received) == 2
    assert AuditLog.objects.filter(action="template.test_send").count() == 1


def test_a_webhook_test_reaches_the_templates_url(workspace, owner, receiver):
    template = _template(
        workspace,
        "webhook",
        {"url": f"{receiver.url}/hooks/crm", "body": '{"email": {{ profile.email | json }}}'},
    )
    status, page = _test_send(logged_in(owner), workspace, template, "")
    assert status == 200 and f"Sent to {receiver.url}/hooks/crm" in page
    [request] = receiver.requests
    assert request["path"] == "/hooks/crm"
    assert request["headers"]["Idempotency-Key"].startswith("test-send:")
    assert not Message.objects.exists()


def test_channels_not_set_up_and_push_refuse_a_test_and_send_nothing(workspace, owner, twilio_api):
    client = logged_in(owner)
    sms = _template(workspace, "sms", {"body": "Hi"})
    status, page = _test_send(client, workspace, sms, ADA)
    assert status == 409
    assert "The sms channel cannot send (channel_not_configured" in page
    push = _template(workspace, "push", {"title": "Hi", "body": "There"})
    status, page = _test_send(client, workspace, push, ADA)
    assert status == 409 and "only a journey" in page
    assert twilio_api.received == [] and not Message.objects.exists()
    assert not AuditLog.objects.filter(action="template.test_send").exists()
