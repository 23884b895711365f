"""The channel registry: a channel from an installed package's entry point (a real
distribution on sys.path, outside the project's apps) sends messages; bad
registrations fail loudly."""

from __future__ import annotations

import sys
import textwrap
from typing import ClassVar

import pytest

from delivery import channels as registry
from delivery.channels import Channel, SendResult
from delivery.models import Message
from delivery.services import messages_send
from segments.models import Profile

pytestmark = pytest.mark.django_db

POSTCARD = """
from delivery.channels import Channel, ChannelConfig, SendResult

SENT = []


class PostcardConfig(ChannelConfig):
    printer: str = "local"


class PostcardChannel(Channel):
    id = "postcard"
    name = "Postcard"
    Config = PostcardConfig

    def address(self, profile):
        return profile.traits.get("street", "")

    def render(self, *, version, locale, context):
        return {"front": "Hello " + context["profile"].get("first_name", "")}

    def send(self, outgoing):
        if not outgoing.to:
            return SendResult.permanent("no street address")
        SENT.append((outgoing.idempotency_key, outgoing.to, outgoing.fields["front"]))
        return SendResult.sent(f"card-{len(SENT)}")
"""


@pytest.fixture
def postcard_package(tmp_path, monkeypatch):
    """Install a tiny distribution the way pip would leave it: a module and a
    dist-info folder whose entry_points.txt names the channel."""
    (tmp_path / "engagement_postcard.py").write_text(POSTCARD)
    info = tmp_path / "engagement_postcard-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: engagement-postcard\nVersion: 1.0\n"
    )
    (info / "entry_points.txt").write_text(
        textwrap.dedent(
            """
            [engagement.channels]
            postcard = engagement_postcard:PostcardChannel
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.channels.cache_clear()
    yield sys.modules.get("engagement_postcard")
    registry.channels.cache_clear()
    sys.modules.pop("engagement_postcard", None)


def test_a_channel_from_an_installed_package_sends(workspace, postcard_package):
    assert set(registry.channels()) == {
        "email", "sms", "whatsapp", "push", "web_push", "in_app", "webhook", "postcard"
    }  # fmt: skip
    module = sys.modules["engagement_postcard"]
    assert registry.channel_class("postcard").validate({"printer": "lab"}).printer == "lab"
    home = Profile.objects.create(
        workspace=workspace, user_id="h", traits={"first_name": "Ada", "street": "1 Main St"}
    )
    homeless = Profile.objects.create(workspace=workspace, user_id="n", traits={})
    messages = [
        Message.objects.create(
            workspace=workspace,
            idempotency_key=f"card:{person.pk}",
            profile=person,
            channel="postcard",
        )
        for person in (home, homeless)
    ]
    assert messages_send(message_ids=[m.pk for m in messages]) == {"sent": 1, "failed": 1}
    sent_cards = module.SENT
    assert sent_cards == [(f"card:{home.pk}", "1 Main St", "Hello Ada")]
    sent, refused = (Message.objects.get(pk=m.pk) for m in messages)
    assert (sent.status, sent.provider_message_id, sent.rendered) == (
        "sent", "card-1", {"front": "Hello Ada"},
    )  # fmt: skip
    assert (refused.status, refused.reason, refused.last_error) == (
        "failed", "provider_refused", "no street address",
    )  # fmt: skip
    assert messages_send(message_ids=[m.pk for m in messages]) == {}
    assert len(module.SENT) == 1


def test_bad_registrations_fail_loudly(settings):
    registry.channels.cache_clear()
    settings.DELIVERY_CHANNELS = ["delivery.channels.email.EmailChannel", "delivery.models.Message"]
    with pytest.raises(TypeError, match="is not a delivery channel"):
        registry.channels()
    registry.channels.cache_clear()
    settings.DELIVERY_CHANNELS = ["delivery.channels.email.EmailChannel"]
    with pytest.raises(registry.UnknownChannel, match="no delivery channel 'fax' is installed"):
        registry.channel_class("fax")
    registry.channels.cache_clear()


class FlakyChannel(Channel):
    """Renders nothing for a profile named "broken"; its provider dies after one send."""

    id = "flaky"
    sent: ClassVar[list[str]] = []

    def address(self, profile):
        return profile.user_id

    def render(self, *, version, locale, context):
        if context["profile"]["user_id"] == "broken":
            raise KeyError("no_such_field")
        return {"body": "hi"}

    def send_batch(self, batch):
        for outgoing in batch:
            if len(self.sent) == 1:
                raise ConnectionResetError("the provider hung up")
            self.sent.append(outgoing.to)
            yield SendResult.sent(f"f-{outgoing.to}")


def test_a_broken_message_or_a_dying_provider_costs_only_what_it_must(workspace, settings):
    """One message the channel cannot render fails alone; when the provider dies in the
    middle of a batch, what it already took stays sent (committed one by one) and the
    rest waits for a retry: nothing is sent twice, nothing is lost."""
    registry.channels.cache_clear()
    settings.DELIVERY_CHANNELS = ["tests.delivery.test_channels.FlakyChannel"]
    FlakyChannel.sent.clear()
    people = [
        Profile.objects.create(workspace=workspace, user_id=name)
        for name in ("first", "broken", "second", "third")
    ]
    messages = [
        Message.objects.create(
            workspace=workspace, idempotency_key=f"f:{person.pk}", profile=person, channel="flaky"
        )
        for person in people
    ]
    try:
        counts = messages_send(message_ids=[m.pk for m in messages])
    finally:
        registry.channels.cache_clear()
    assert counts == {"failed": 1, "sent": 1, "retry": 2}
    rows = {m.profile.user_id: m for m in Message.objects.select_related("profile")}
    assert (rows["first"].status, rows["first"].provider_message_id) == ("sent", "f-first")
    assert (rows["broken"].status, rows["broken"].reason) == ("failed", "internal_error")
    assert "KeyError" in rows["broken"].last_error
    for name in ("second", "third"):
        assert (rows[name].status, rows[name].attempts) == ("queued", 1)
    assert "the provider hung up" in rows["second"].last_error
    assert rows["third"].last_error == "the channel gave no answer for this message"
    assert FlakyChannel.sent == ["first"]


def test_a_channel_that_cannot_load_fails_the_start_up_checks(settings):
    from delivery.apps import channels_check

    settings.DELIVERY_CHANNELS = ["delivery.channels.email.EmailChannel", "no.such.Channel"]
    try:
        [error] = channels_check()
    finally:
        settings.DELIVERY_CHANNELS = ["delivery.channels.email.EmailChannel"]
        registry.channels.cache_clear()
    assert error.id == "delivery.E001"
    assert "No module named 'no'" in error.msg
    assert channels_check() == []
    registry.channels.cache_clear()
