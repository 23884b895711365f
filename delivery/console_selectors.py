"""Reads of the delivery console (message log, dead letters, channels, suppressions,
caps). Every function takes the workspace: nothing here is found by id alone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Q, QuerySet
from django.http import Http404

from delivery.models import FrequencyCap, Message, MessageEvent, Suppression
from engagement_site.workspaces.models import Workspace

# A failed message lands here when nobody but a person can decide what to do with it:
# the provider kept failing, or our own code did. Refusals (a bad address, no consent)
# are final and a retry would only repeat them.
DEAD_LETTER_REASONS = ("retries_exhausted", "internal_error")


@dataclass(frozen=True)
class MessageFilters:
    channel: str = ""
    status: str = ""
    journey_id: int | None = None
    reason: str = ""
    date_from: date | None = None
    date_to: date | None = None
    search: str = ""


def message_log(*, workspace: Workspace, filters: MessageFilters) -> QuerySet[Message]:
    """The workspace's messages, newest first, narrowed by the filters. Dates are days
    in the workspace's time zone, both ends included; the search matches a profile's
    user id exactly or the start of its email address."""
    rows = Message.objects.filter(workspace=workspace)
    if filters.channel:
        rows = rows.filter(channel=filters.channel)
    if filters.status:
        rows = rows.filter(status=filters.status)
    if filters.journey_id is not None:
        rows = rows.filter(journey_id=filters.journey_id)
    if filters.reason:
        rows = rows.filter(reason=filters.reason)
    zone = ZoneInfo(workspace.time_zone or "UTC")
    if filters.date_from is not None:
        rows = rows.filter(created_at__gte=datetime.combine(filters.date_from, time(), zone))
    if filters.date_to is not None:
        end = datetime.combine(filters.date_to + timedelta(days=1), time(), zone)
        rows = rows.filter(created_at__lt=end)
    search = filters.search.strip()
    if search:
        rows = rows.filter(Q(profile__user_id=search) | Q(profile__email__istartswith=search))
    return rows.select_related("profile", "journey", "template_version__template").order_by(
        "-created_at", "-pk"
    )


def message_get(*, workspace: Workspace, message_id: int) -> Message:
    """One of the workspace's messages; Http404 for any other id."""
    message = (
        Message.objects.filter(workspace=workspace, pk=message_id)
        .select_related("profile", "journey", "template_version__template", "enrollment")
        .first()
    )
    if message is None:
        raise Http404("No such message")
    return message


def message_timeline(*, workspace: Workspace, message: Message) -> QuerySet[MessageEvent]:
    """What happened to the message, oldest first."""
    return MessageEvent.objects.filter(workspace=workspace, message=message).order_by("at", "pk")


def message_reasons(*, workspace: Workspace) -> list[str]:
    """The reasons the workspace's messages carry, for the filter's choices."""
    return sorted(
        Message.objects.filter(workspace=workspace)
        .exclude(reason="")
        .values_list("reason", flat=True)
        .distinct()
    )


def message_journeys(*, workspace: Workspace) -> list[tuple[int, str]]:
    """(id, name) of the workspace's journeys, for the filter's choices."""
    from journeys.models import Journey

    return list(
        Journey.objects.filter(workspace=workspace).order_by("name").values_list("pk", "name")
    )


def dead_letters(*, workspace: Workspace) -> QuerySet[Message]:
    """Failed messages a person should look at: retries used up or an internal error,
    and not discarded. Newest failure first."""
    return (
        Message.objects.filter(
            workspace=workspace,
            status=Message.Status.FAILED,
            reason__in=DEAD_LETTER_REASONS,
            discarded_at__isnull=True,
        )
        .select_related("profile", "journey", "template_version__template")
        .order_by("-failed_at", "-pk")
    )


@dataclass(frozen=True)
class ChannelRow:
    id: str
    name: str
    requires_settings: bool
    settings: object | None  # ChannelSettings or None

    @property
    def is_configured(self) -> bool:
        return self.settings is not None

    @property
    def is_usable(self) -> bool:
        """Whether messages can go out now (saved and on, or needing no settings)."""
        if self.settings is None:
            return not self.requires_settings
        return self.settings.enabled


def channel_overview(*, workspace: Workspace) -> list[ChannelRow]:
    """Every registered channel with the workspace's saved settings, if any."""
    from delivery.channels import channels
    from delivery.selectors import channel_settings_all

    saved = channel_settings_all(workspace=workspace)
    return [
        ChannelRow(
            id=cls.id,
            name=cls.name or cls.id,
            requires_settings=cls.requires_settings,
            settings=saved.get(cls.id),
        )
        for cls in sorted(channels().values(), key=lambda cls: cls.id)
    ]


def suppressions(*, workspace: Workspace, search: str = "") -> QuerySet[Suppression]:
    """The workspace's suppression list, newest first; `search` matches part of the
    address."""
    rows = Suppression.objects.filter(workspace=workspace)
    if search.strip():
        rows = rows.filter(address__icontains=search.strip())
    return rows.order_by("-created_at", "-pk")


def suppression_get(*, workspace: Workspace, suppression_id: int) -> Suppression:
    row = Suppression.objects.filter(workspace=workspace, pk=suppression_id).first()
    if row is None:
        raise Http404("No such suppression")
    return row


def frequency_caps(*, workspace: Workspace) -> QuerySet[FrequencyCap]:
    return FrequencyCap.objects.filter(workspace=workspace).order_by("channel", "window_seconds")


def frequency_cap_get(*, workspace: Workspace, cap_id: int) -> FrequencyCap:
    row = FrequencyCap.objects.filter(workspace=workspace, pk=cap_id).first()
    if row is None:
        raise Http404("No such frequency cap")
    return row
