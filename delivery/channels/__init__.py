"""The channel registry: the classes named by settings.DELIVERY_CHANNELS (dotted
paths) and by the `engagement.channels` entry point group of installed packages, so
a third party adds a channel without touching this code (docs/plugins.md)."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from django.conf import settings
from django.utils.module_loading import import_string

from delivery.channels.base import Channel, ChannelConfig, Outgoing, SendResult

ENTRY_POINT_GROUP = "engagement.channels"

__all__ = ["Channel", "ChannelConfig", "Outgoing", "SendResult", "channel_class", "channels"]


class UnknownChannel(LookupError):
    pass


class ChannelUnavailable(Exception):
    """A channel a workspace cannot send through now; `reason` is the short code its
    messages fail with (no_channel, channel_disabled, channel_not_configured,
    channel_misconfigured)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


@cache
def channels() -> dict[str, type[Channel]]:
    """Every registered channel class by id; two with one id is a start-up error."""
    found: dict[str, type[Channel]] = {}
    classes = [import_string(path) for path in settings.DELIVERY_CHANNELS]
    classes += [point.load() for point in entry_points(group=ENTRY_POINT_GROUP)]
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, Channel) and getattr(cls, "id", "")):
            raise TypeError(f"{cls!r} is not a delivery channel (a Channel subclass with an id)")
        if cls.id in found and found[cls.id] is not cls:
            raise ValueError(f"two delivery channels have the id {cls.id!r}")
        found[cls.id] = cls
    return found


def channel_class(channel_id: str) -> type[Channel]:
    try:
        return channels()[channel_id]
    except KeyError:
        raise UnknownChannel(f"no delivery channel {channel_id!r} is installed") from None
