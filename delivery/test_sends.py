"""Test sends from the content editor through a workspace's provider channels: SMS
and WhatsApp to a phone number, a webhook to the template's own URL. The saved
version is rendered by the editor and sent once, through the same channel object and
settings a journey's message would use, but no Message is written: a test is not
part of anyone's history, counts against no cap, and is never retried.

Push and in-app go to a person's devices or inbox, which only a real message has, so
they refuse a test here (the preview shows them).
"""

from __future__ import annotations

from uuid import uuid4

PHONE_CHANNELS = ("sms", "whatsapp")
SENDABLE = (*PHONE_CHANNELS, "webhook")


class TestSendRefused(ValueError):
    """The test cannot go out; `field` is the input at fault ("to") or ""."""

    __test__ = False  # not a pytest class

    def __init__(self, message: str, *, field: str = "", unavailable: bool = False):
        super().__init__(message)
        self.field = field
        self.unavailable = unavailable


def channel_test_send(*, workspace, channel: str, fields: dict, to: str) -> str:
    """Send rendered `fields` once to `to` on the workspace's channel; returns what was
    done. TestSendRefused names the problem: a bad number, a channel not set up or
    switched off, or the provider's refusal."""
    from delivery.channels import ChannelUnavailable
    from delivery.channels.base import Outgoing
    from delivery.policies import normalised_address
    from delivery.selectors import channel_instance

    if channel not in SENDABLE:
        raise TestSendRefused(
            f"Test sends on {channel} go to a person's devices or inbox, which only a "
            "journey's message has. Use the preview to check the message.",
            unavailable=True,
        )
    address = ""
    if channel in PHONE_CHANNELS:
        address = normalised_address(channel=channel, address=(to or "").strip())
        if not address:
            raise TestSendRefused(
                f"{to!r} is not a phone number in international form, e.g. +15555550123.",
                field="to",
            )
        from delivery.models import Suppression

        suppressed = (
            Suppression.objects.filter(workspace=workspace, channel=channel, address=address)
            .values_list("reason", flat=True)
            .first()
        )
        if suppressed:
            raise TestSendRefused(
                f"{address} is on the {channel} suppression list ({suppressed}): nothing is "
                "sent to it, tests included.",
                field="to",
            )
    try:
        instance = channel_instance(workspace_id=workspace.pk, channel=channel)
    except ChannelUnavailable as error:
        raise TestSendRefused(
            f"The {channel} channel cannot send ({error.reason}: {error}). Set it up in "
            "Settings → Channels.",
            unavailable=True,
        ) from None
    outgoing = Outgoing(
        message_id=0,
        idempotency_key=f"test-send:{uuid4().hex}",
        workspace_id=workspace.pk,
        to=address,
        fields=fields,
        extra={"test_send": True},
    )
    result = next(iter(instance.send_batch([outgoing])), None)
    if result is None or result.status != "sent":
        raise TestSendRefused(
            f"The provider did not take the test: {result.error if result else 'no answer'}"
        )
    target = address or fields.get("url", "the webhook URL")
    provider = f" (provider id {result.provider_message_id})" if result.provider_message_id else ""
    return f"Sent to {target}{provider}."
