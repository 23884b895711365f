"""Per-workspace channel settings: checked against the channel's schema, secrets
encrypted at rest and kept when left empty, audited without their values, readable
after a key rotation, and what the send path configures channels with."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr, ValidationError

from delivery.channels import ChannelUnavailable
from delivery.channels.base import Channel, ChannelConfig, SendResult
from delivery.models import ChannelSettings
from delivery.selectors import channel_instance
from delivery.services import channel_settings_save
from engagement_site.workspaces.models import AuditLog
from engagement_site.workspaces.services import AuditContext

pytestmark = pytest.mark.django_db

CONTEXT = AuditContext.system("test")


class PagerConfig(ChannelConfig):
    base_url: str = "https://pager.example"
    api_key: SecretStr
    sender: str = ""


class PagerChannel(Channel):
    id = "pager"
    Config = PagerConfig
    requires_settings = True

    def send(self, outgoing):
        return SendResult.sent("p-1")


@pytest.fixture(autouse=True)
def pager(add_channel):
    add_channel("tests.delivery.test_channel_settings.PagerChannel")


def test_secrets_are_encrypted_at_rest_and_kept_when_left_empty(workspace):
    row = channel_settings_save(
        workspace=workspace,
        channel="pager",
        config={"api_key": "key-123-very-secret", "sender": "ACME"},
        context=CONTEXT,
    )
    stored = ChannelSettings.objects.get(pk=row.pk)
    assert stored.config == {"base_url": "https://pager.example", "sender": "ACME"}
    assert "key-123-very-secret" not in stored.secrets
    assert len(stored.hook_token) == 43
    channel = channel_instance(workspace_id=workspace.pk, channel="pager")
    assert channel.config.secret("api_key") == "key-123-very-secret"

    # Saving again with the secret empty keeps it; the audit row names no value.
    channel_settings_save(
        workspace=workspace,
        channel="pager",
        config={"api_key": "", "sender": "ACME2"},
        rate_per_second=10,
        context=CONTEXT,
    )
    channel = channel_instance(workspace_id=workspace.pk, channel="pager")
    assert (channel.config.secret("api_key"), channel.config.sender) == (
        "key-123-very-secret",
        "ACME2",
    )
    assert channel.rate_per_second == 10
    first, second = AuditLog.objects.filter(object_type="delivery.channelsettings").order_by("pk")
    assert first.changes["secrets_changed"] == ["api_key"]
    assert second.changes["secrets_changed"] == []
    assert "key-123" not in str(first.changes) + str(second.changes)


def test_a_bad_config_names_the_field_and_stores_nothing(workspace):
    with pytest.raises(ValidationError, match="api_key"):
        channel_settings_save(
            workspace=workspace, channel="pager", config={"sender": "x"}, context=CONTEXT
        )
    with pytest.raises(ValidationError, match="colour"):
        channel_settings_save(
            workspace=workspace,
            channel="pager",
            config={"api_key": "k", "colour": "red"},
            context=CONTEXT,
        )
    assert ChannelSettings.objects.count() == 0
    assert AuditLog.objects.filter(object_type="delivery.channelsettings").count() == 0


def test_a_channel_without_settings_or_switched_off_is_unavailable(workspace, other_workspace):
    with pytest.raises(ChannelUnavailable) as missing:
        channel_instance(workspace_id=workspace.pk, channel="pager")
    assert missing.value.reason == "channel_not_configured"
    channel_settings_save(
        workspace=workspace,
        channel="pager",
        config={"api_key": "k"},
        enabled=False,
        context=CONTEXT,
    )
    with pytest.raises(ChannelUnavailable) as off:
        channel_instance(workspace_id=workspace.pk, channel="pager")
    assert off.value.reason == "channel_disabled"
    # One workspace's settings are not another's.
    with pytest.raises(ChannelUnavailable) as foreign:
        channel_instance(workspace_id=other_workspace.pk, channel="pager")
    assert foreign.value.reason == "channel_not_configured"


def test_secrets_survive_a_key_rotation_and_a_lost_key_is_reported(workspace, settings):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [old_key]
    channel_settings_save(
        workspace=workspace, channel="pager", config={"api_key": "k-1"}, context=CONTEXT
    )
    settings.ENCRYPTION_KEYS = [new_key, old_key]  # rotated: the new key first
    assert (
        channel_instance(workspace_id=workspace.pk, channel="pager").config.secret("api_key")
        == "k-1"
    )
    settings.ENCRYPTION_KEYS = [new_key]  # the old key dropped too early
    with pytest.raises(ChannelUnavailable) as lost:
        channel_instance(workspace_id=workspace.pk, channel="pager")
    assert lost.value.reason == "channel_misconfigured"
