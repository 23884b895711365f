"""What delivery knows before it sends: whether a profile can be reached on a channel.

The journey engine asks this when it decides a message, so a fallback chain skips a
channel the person has no address for without a round trip through the send queue.
The checks at send time (consent, unsubscribes, caps, quiet hours) stay delivery's
own and are made again when the message goes out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
    if channel in ("push", "web_push"):
        from delivery.devices import device_unreachable_reason

        return device_unreachable_reason(profile=profile, channel=channel)
    if channel == "in_app" and not (profile.user_id or "").strip():
        return "no_user_id"
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


@dataclass
class BatchFacts:
    """What the send-time checks of one batch need, read once for the batch: the
    people's answers (profile, channel, topic) -> status, the suppressed addresses
    (workspace, channel, address), each workspace's delivery settings and opt-in
    topics."""

    consents: dict[tuple[int, str, str], str] = field(default_factory=dict)
    suppressed: dict[tuple[int, str, str], str] = field(default_factory=dict)
    settings: dict[int, object] = field(default_factory=dict)
    opt_in_topics: set[tuple[int, str]] = field(default_factory=set)
    caps: dict[int, list] = field(default_factory=dict)


def batch_facts(messages) -> BatchFacts:
    from delivery.models import Consent, FrequencyCap, Suppression, Topic
    from delivery.selectors import delivery_settings

    facts = BatchFacts()
    profile_ids = {message.profile_id for message in messages}
    for profile_id, channel, topic, status in Consent.objects.filter(
        profile_id__in=profile_ids
    ).values_list("profile_id", "channel", "topic", "status"):
        facts.consents[(profile_id, channel, topic)] = status
    addresses = {
        (message.workspace_id, message.channel, address)
        for message in messages
        if (
            address := normalised_address(
                channel=message.channel,
                address=profile_address(profile=message.profile, channel=message.channel),
            )
        )
    }
    if addresses:
        for workspace_id, channel, address, reason in Suppression.objects.filter(
            workspace_id__in={key[0] for key in addresses},
            address__in={key[2] for key in addresses},
        ).values_list("workspace_id", "channel", "address", "reason"):
            facts.suppressed[(workspace_id, channel, address)] = reason
    for message in messages:
        if message.workspace_id not in facts.settings:
            facts.settings[message.workspace_id] = delivery_settings(workspace=message.workspace)
    for cap in FrequencyCap.objects.filter(workspace_id__in=set(facts.settings)):
        facts.caps.setdefault(cap.workspace_id, []).append(cap)
    topics = {(message.workspace_id, message.topic) for message in messages if message.topic}
    if topics:
        facts.opt_in_topics = set(
            Topic.objects.filter(
                workspace_id__in={key[0] for key in topics},
                key__in={key[1] for key in topics},
                opt_in=True,
            ).values_list("workspace_id", "key")
        )
    return facts


def send_time_block(*, message, facts: BatchFacts) -> str:
    """Why this message must not leave (checked when it is sent, not only when the
    journey decided it), or "": no address, an unsubscribe from the channel or the
    topic, no yes where a yes is needed, an address on the suppression list."""
    reason = unreachable_reason(profile=message.profile, channel=message.channel)
    if reason:
        return reason
    answers = facts.consents
    profile, channel, topic = message.profile_id, message.channel, message.topic
    unsubscribed = "unsubscribed"
    if answers.get((profile, channel, "")) == unsubscribed:
        return "unsubscribed"
    if topic and unsubscribed in (
        answers.get((profile, channel, topic)),
        answers.get((profile, "", topic)),
    ):
        return "unsubscribed_topic"
    options = facts.settings[message.workspace_id]
    answer = answers.get((profile, channel, ""))
    if message.purpose == "opt_in_confirmation":
        # The one message that asks for the yes: only to someone who asked for it.
        if answer != "pending":
            return "not_pending"
    elif answer != "subscribed" and (
        channel in options.opt_in_channels or (channel == "email" and options.email_double_opt_in)
    ):
        return "opt_in_pending" if answer == "pending" else "no_opt_in"
    if (
        topic
        and (message.workspace_id, topic) in facts.opt_in_topics
        and "subscribed"
        not in (answers.get((profile, channel, topic)), answers.get((profile, "", topic)))
    ):
        return "no_opt_in_topic"
    address = normalised_address(
        channel=channel, address=profile_address(profile=message.profile, channel=channel)
    )
    suppressed = facts.suppressed.get((message.workspace_id, channel, address))
    if suppressed:
        return f"suppressed_{suppressed}"
    return ""


# --------------------------------------------------------------------------- quiet hours


def quiet_until(*, start: time, end: time, zone: str, now: datetime) -> datetime | None:
    """When the quiet window around `now` ends (aware, UTC), or None when `now` is not
    in it. The window is start..end in `zone`'s local time and may cross midnight
    (21:00-08:00); start == end means no window."""
    if start == end:
        return None
    try:
        tz = ZoneInfo(zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    local = now.astimezone(tz)
    clock = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= clock < end
        end_day = local.date()
    else:
        inside = clock >= start or clock < end
        end_day = local.date() + timedelta(days=1) if clock >= start else local.date()
    if not inside:
        return None
    return datetime.combine(end_day, end, tzinfo=tz).astimezone(UTC)


def quiet_hold(*, message, facts: BatchFacts, now: datetime) -> datetime | None:
    """Until when a marketing message must wait for the end of quiet hours in the
    person's time zone (the workspace's on its channels, the journey's on all), or None."""
    if message.transactional:
        return None
    zone_of_profile = message.profile.time_zone
    holds = []
    options = facts.settings[message.workspace_id]
    if (
        options.quiet_hours_start is not None
        and options.quiet_hours_end is not None
        and message.channel in options.quiet_hours_channels
    ):
        holds.append(
            quiet_until(
                start=options.quiet_hours_start,
                end=options.quiet_hours_end,
                zone=zone_of_profile or options.fallback_time_zone,
                now=now,
            )
        )
    journey_quiet = journey_settings(message)
    if journey_quiet is not None and journey_quiet.quiet_hours is not None:
        quiet = journey_quiet.quiet_hours
        holds.append(
            quiet_until(
                start=quiet.start,
                end=quiet.end,
                zone=zone_of_profile or quiet.fallback_time_zone,
                now=now,
            )
        )
    holds = [hold for hold in holds if hold is not None]
    return max(holds) if holds else None


def journey_settings(message):
    if message.journey_version_id is None:
        return None
    from journeys.executor import version_definition

    return version_definition(message.journey_version).settings


# --------------------------------------------------------------------------- frequency caps

CAP_LOCK_NAMESPACE = 7301  # pg_advisory_xact_lock(namespace, profile id)


def caps_for(*, message, facts: BatchFacts) -> list[tuple[str, int, int, int | None]]:
    """The caps a marketing message falls under: (channel or "", limit, window seconds,
    journey id or None), from the workspace's caps and its journey's settings."""
    if message.transactional:
        return []
    caps = [
        (cap.channel, cap.limit, cap.window_seconds, None)
        for cap in facts.caps.get(message.workspace_id, [])
        if cap.channel in ("", message.channel)
    ]
    journey = journey_settings(message)
    if journey is not None and journey.frequency_cap is not None:
        cap = journey.frequency_cap
        caps.append(("", cap.messages, cap.per_seconds, message.journey_id))
    return caps


def caps_reserve(*, messages, facts: BatchFacts, now: datetime) -> set[int]:
    """Take each message's place under its frequency caps, in order; returns the ids
    of the messages a full cap refuses ("frequency_cap"). Serialised per profile
    (advisory locks, taken in profile order so two workers cannot deadlock), so two
    workers sending to one person at once cannot both take the last place. A message
    that already holds its place (a retry) keeps it. One transaction and three
    queries for the whole chunk, however many messages it has."""
    from django.db import connection, transaction

    from delivery.models import Message

    wanted = [
        (message, caps)
        for message in messages
        if message.cap_counted_at is None and (caps := caps_for(message=message, facts=facts))
    ]
    if not wanted:
        return set()
    profile_ids = sorted({message.profile_id for message, _ in wanted})
    longest = max(window for _, caps in wanted for _, _, window, _ in caps)
    refused: set[int] = set()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, (id %% 2147483647)::int) "
                "FROM unnest(%s::bigint[]) WITH ORDINALITY AS p(id, n) ORDER BY n",
                [CAP_LOCK_NAMESPACE, profile_ids],
            )
        counted = Message.objects.filter(
            profile_id__in=profile_ids,
            cap_counted_at__gt=now - timedelta(seconds=longest),
            transactional=False,
        ).exclude(status="failed")
        shadow_mode = {
            workspace_id: options.shadow_mode for workspace_id, options in facts.settings.items()
        }
        # In shadow mode the shadow messages count (the log shows what the caps would
        # have done); out of it, only messages that really went.
        taken: dict[int, list[tuple[str, int | None, datetime]]] = {}
        for profile_id, workspace_id, channel, journey_id, at, status, is_shadow in (
            counted.values_list(
                "profile_id", "workspace_id", "channel", "journey_id", "cap_counted_at",
                "status", "is_shadow",
            )
        ):  # fmt: skip
            if status == "suppressed" and not (shadow_mode.get(workspace_id) and is_shadow):
                continue
            taken.setdefault(profile_id, []).append((channel, journey_id, at))
        reserved = []
        for message, caps in wanted:
            mine = taken.setdefault(message.profile_id, [])
            full = any(
                sum(
                    1
                    for channel, journey, at in mine
                    if at > now - timedelta(seconds=window)
                    and (not cap_channel or channel == cap_channel)
                    and (journey_id is None or journey == journey_id)
                )
                >= limit
                for cap_channel, limit, window, journey_id in caps
            )
            if full:
                refused.add(message.pk)
                continue
            mine.append((message.channel, message.journey_id, now))
            message.cap_counted_at = now
            reserved.append(message.pk)
        if reserved:
            Message.objects.filter(pk__in=reserved).update(cap_counted_at=now)
    return refused
