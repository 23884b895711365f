"""Reads of the delivery app; every function takes the workspace."""

from __future__ import annotations

from django.db.models import QuerySet

from delivery.models import Message
from engagement_site.workspaces.models import Workspace


def profile_messages(*, workspace: Workspace, profile_id: int) -> QuerySet[Message]:
    """The messages journeys decided for a profile, newest first."""
    return (
        Message.objects.filter(workspace=workspace, profile_id=profile_id)
        .select_related("journey", "template_version__template")
        .order_by("-created_at", "-pk")
    )


def template_message_count(*, workspace: Workspace, template) -> int:
    """How many messages were made from any version of this template (the message log
    keeps the exact version each one used, so those versions cannot be deleted)."""
    return Message.objects.filter(
        workspace=workspace, template_version__template_id=template.pk
    ).count()


def message_keys_in_workspace(*, workspace: Workspace, keys: set[str]) -> set[str]:
    """Those of these idempotency keys that name a message of the workspace."""
    return set(
        Message.objects.filter(workspace=workspace, idempotency_key__in=keys).values_list(
            "idempotency_key", flat=True
        )
    )


def delivery_settings(*, workspace: Workspace):
    """The workspace's delivery settings, or the defaults (not saved) when it has none."""
    from delivery.models import DeliverySettings

    found = DeliverySettings.objects.filter(workspace=workspace).first()
    return found if found is not None else DeliverySettings(workspace=workspace)


def channel_settings(*, workspace: Workspace, channel: str):
    """The workspace's saved settings for the channel, or None."""
    from delivery.models import ChannelSettings

    return ChannelSettings.objects.filter(workspace=workspace, channel=channel).first()


def channel_settings_all(*, workspace: Workspace) -> dict:
    """The workspace's saved channel settings by channel id."""
    from delivery.models import ChannelSettings

    return {row.channel: row for row in ChannelSettings.objects.filter(workspace=workspace)}


def channel_costs(*, workspace: Workspace) -> dict:
    """{channel: cost per message} for the channels whose cost the workspace entered."""
    from delivery.models import ChannelSettings

    return dict(
        ChannelSettings.objects.filter(
            workspace=workspace, cost_per_message__isnull=False
        ).values_list("channel", "cost_per_message")
    )


def channel_settings_for_hook(*, channel: str, hook_token: str):
    """The settings a provider's callback URL names (the token is its credential, as an
    unsubscribe token is), with the workspace; None for an unknown token."""
    from delivery.models import ChannelSettings

    if not hook_token:
        return None
    return (
        ChannelSettings.objects.select_related("workspace")
        .filter(channel=channel, hook_token=hook_token)
        .first()
    )


def channel_config(*, row, cls):
    """The channel's Config from saved settings (secrets decrypted); pydantic's
    ValidationError when what is stored no longer fits the channel's schema."""
    from engagement_site.crypto import decrypt_json

    return cls.Config.model_validate({**(row.config or {}), **decrypt_json(row.secrets)})


def channel_instance(*, workspace_id: int, channel: str):
    """A channel object configured for the workspace; ChannelUnavailable (with a short
    reason code) when it is not installed, switched off, or not set up."""
    from pydantic import ValidationError

    from delivery.channels import ChannelUnavailable, UnknownChannel, channel_class
    from delivery.models import ChannelSettings
    from delivery.tokens import hook_url
    from engagement_site.crypto import SecretsUnreadable

    try:
        cls = channel_class(channel)
    except UnknownChannel as error:
        raise ChannelUnavailable("no_channel", str(error)) from None
    row = ChannelSettings.objects.filter(workspace_id=workspace_id, channel=channel).first()
    if row is None:
        if cls.requires_settings:
            raise ChannelUnavailable(
                "channel_not_configured", f"the {channel} channel has no settings yet"
            )
        return cls(workspace_id=workspace_id)
    if not row.enabled:
        raise ChannelUnavailable("channel_disabled", f"the {channel} channel is switched off")
    try:
        instance = cls(channel_config(row=row, cls=cls), workspace_id=workspace_id)
    except (ValidationError, SecretsUnreadable) as error:
        raise ChannelUnavailable("channel_misconfigured", str(error)) from None
    instance.rate_per_second = row.rate_per_second
    instance.hook_url = hook_url(channel=channel, token=row.hook_token)
    return instance


PREFERENCE_CHANNELS = (
    ("email", "Email"),
    ("sms", "Text messages (SMS)"),
    ("whatsapp", "WhatsApp"),
    ("push", "App notifications"),
    ("web_push", "Browser notifications"),
)


def profile_preferences(*, workspace: Workspace, profile) -> dict:
    """What the preference centre shows a person: each channel they can be reached on
    and each of the workspace's topics, with whether they get it now (no answer means
    yes, except on opt-in channels and topics)."""
    from delivery.models import Consent, Device, Topic
    from delivery.policies import profile_address

    answers = {
        (channel, topic): status
        for channel, topic, status in Consent.objects.filter(
            workspace=workspace, profile=profile
        ).values_list("channel", "topic", "status")
    }
    opt_in_channels = set(delivery_settings(workspace=workspace).opt_in_channels)
    devices = set(
        Device.objects.filter(
            workspace=workspace, profile=profile, disabled_at__isnull=True
        ).values_list("kind", flat=True)
    )
    reachable = {
        "email": bool(profile_address(profile=profile, channel="email")),
        "sms": bool(profile_address(profile=profile, channel="sms")),
        "whatsapp": bool(profile_address(profile=profile, channel="whatsapp")),
        "push": "fcm" in devices,
        "web_push": "web_push" in devices,
    }

    def wanted(answer: str | None, opt_in: bool) -> bool:
        return answer == "subscribed" if opt_in else answer != "unsubscribed"

    return {
        "channels": [
            {
                "id": channel,
                "label": label,
                "subscribed": wanted(answers.get((channel, "")), channel in opt_in_channels),
            }
            for channel, label in PREFERENCE_CHANNELS
            if reachable[channel]
        ],
        "topics": [
            {
                "key": topic.key,
                "name": topic.name,
                "description": topic.description,
                "subscribed": wanted(answers.get(("", topic.key)), topic.opt_in),
            }
            for topic in Topic.objects.filter(workspace=workspace).order_by("name")
        ],
    }
