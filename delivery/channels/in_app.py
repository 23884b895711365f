"""In-app cards: a message that goes to the profile's inbox inside the customer's app.

Nothing leaves the platform. "Sending" makes the message visible: delivery has
already stored what it rendered in `Message.rendered`, which is what
`GET /api/v1/inbox/<user_id>` serves (delivery.inbox), so the channel only answers
that the message is out. The address is the profile's user_id: the app asks for its
inbox by the user it knows, so a profile without one (an anonymous visitor) cannot
have one.
"""

from __future__ import annotations

from collections.abc import Iterator

from delivery.channels.base import Channel, ChannelConfig, Outgoing, SendResult

NO_USER_ID = "the profile has no user_id; in-app messages need a known user"


class InAppConfig(ChannelConfig):
    # When on, inbox requests must prove who they are for with X-User-Hash
    # (HMAC-SHA256 of the user_id under the workspace's inbox secret, computed by the
    # customer's server), so a write key alone cannot read someone else's inbox.
    require_user_hash: bool = False


class InAppChannel(Channel):
    id = "in_app"
    name = "In-app"
    Config = InAppConfig

    def address(self, profile) -> str:
        return (profile.user_id or "").strip()

    def send_batch(self, batch: list[Outgoing]) -> Iterator[SendResult]:
        for outgoing in batch:
            yield self.send(outgoing)

    def send(self, outgoing: Outgoing) -> SendResult:
        if not outgoing.to:
            # Final: retrying will not give the profile a user_id; a fallback chain
            # moves on to its next channel.
            return SendResult.permanent(NO_USER_ID)
        return SendResult.sent(provider_message_id=f"inapp-{outgoing.message_id}")
