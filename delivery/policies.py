"""What delivery knows before it sends: whether a profile can be reached on a channel.

The journey engine asks this when it decides a message, so a fallback chain skips a
channel the person has no address for without a round trip through the send queue.
The checks at send time (consent, unsubscribes, caps, quiet hours) stay delivery's
own and are made again when the message goes out.
"""

from __future__ import annotations

# Channels whose address is a column of the profile.
_ADDRESS = {"email": "email", "sms": "phone", "whatsapp": "phone"}


def profile_address(*, profile, channel: str) -> str:
    """The profile's address on a channel whose address is a profile column ("" for
    the others and for none)."""
    column = _ADDRESS.get(channel)
    return (getattr(profile, column, "") or "").strip() if column else ""


def normalised_address(*, channel: str, address: str) -> str:
    """How an address is compared and kept on the suppression list: emails in lower
    case, phone numbers as digits with a leading +."""
    address = (address or "").strip()
    if _ADDRESS.get(channel) == "phone":
        address = address.removeprefix("whatsapp:")
        digits = "".join(ch for ch in address if ch.isdigit())
        return f"+{digits}" if digits else ""
    return address.lower()


def unreachable_reason(*, profile, channel: str) -> str:
    """Why the profile cannot get a message on the channel (a short code), or "" when
    nothing known now stands in the way."""
    column = _ADDRESS.get(channel)
    if column is not None and not (getattr(profile, column) or "").strip():
        return "no_email_address" if column == "email" else "no_phone_number"
    return ""


# What each channel can report back. Clicks come from tracked links, which any channel
# with a text or a URL carries; an SMS has no way to tell that it was read.
_ENGAGEMENTS = {
    "email": {"opened", "clicked"},
    "sms": {"clicked"},
    "whatsapp": {"opened", "clicked"},  # read receipts
    "push": {"opened", "clicked"},
    "web_push": {"opened", "clicked"},
    "in_app": {"opened", "clicked"},
    "webhook": set(),
}


def reports_engagement(*, channel: str, engagement: str) -> bool:
    """Whether the channel can ever report `engagement` ("opened" or "clicked")."""
    return engagement in _ENGAGEMENTS.get(channel, set())


def send_time_block(*, message, now, unsubscribed: set[tuple[int, str]]) -> str:
    """Why this message must not leave now (checked when it is sent, not only when the
    journey decided it), or "". `unsubscribed` holds the (profile id, channel) pairs of
    the batch's people who said no."""
    reason = unreachable_reason(profile=message.profile, channel=message.channel)
    if reason:
        return reason
    if (message.profile_id, message.channel) in unsubscribed:
        return "unsubscribed"
    return ""
