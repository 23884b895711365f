"""Reads of the segments app; every function takes the workspace."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import datetime

import orjson
from django.db.models import F, Q, QuerySet
from django.http import Http404
from django.utils.dateparse import parse_datetime

from engagement_site.workspaces.models import Workspace
from segments.models import (
    Event,
    EventSchema,
    Identity,
    Profile,
    ProfileMerge,
    RejectedEvent,
    Segment,
    SegmentMembership,
    SegmentSize,
    TraitChange,
)

# --------------------------------------------------------------------------- profiles


def profile_search(*, workspace: Workspace, query: str) -> QuerySet[Profile]:
    """The workspace's profiles, most recently seen first; a non-blank query keeps those
    whose user id, email or name trait contains it (case-insensitive).

    Substring matching scans the workspace's profiles: fine for thousands, and the place
    for a trigram index once workspaces hold millions."""
    profiles = Profile.objects.filter(workspace=workspace)
    query = query.strip()
    if query:
        profiles = profiles.filter(
            Q(user_id__icontains=query)
            | Q(email__icontains=query)
            | Q(traits__name__icontains=query)
        )
    # id breaks ties so that pages do not overlap when last_seen values are equal.
    return profiles.order_by("-last_seen", "-id")


def profile_list(
    *, workspace: Workspace, user_id: str = "", email: str = "", search: str = ""
) -> QuerySet[Profile]:
    """The workspace's profiles for the API: `user_id` and `email` match exactly (both
    are indexed with the workspace), `search` as in `profile_search`. Unordered: the
    caller's paginator orders."""
    profiles = profile_search(workspace=workspace, query=search).order_by()
    if user_id:
        profiles = profiles.filter(user_id=user_id)
    if email:
        profiles = profiles.filter(email=email)
    return profiles


def profile_get(*, workspace: Workspace, profile_id: int) -> Profile:
    profile = Profile.objects.filter(workspace=workspace, pk=profile_id).first()
    if profile is None:
        raise Http404("No such profile")
    return profile


def profile_identities(*, workspace: Workspace, profile: Profile) -> QuerySet[Identity]:
    return Identity.objects.filter(workspace=workspace, profile=profile).order_by(
        "kind", "created_at", "id"
    )


def profile_merges(*, workspace: Workspace, profile: Profile) -> QuerySet[ProfileMerge]:
    """Profiles folded into this one, newest first."""
    return ProfileMerge.objects.filter(workspace=workspace, profile=profile).order_by(
        "-merged_at", "-id"
    )


def profile_trait_changes(*, workspace: Workspace, profile: Profile) -> QuerySet[TraitChange]:
    """The profile's trait history, newest first."""
    return TraitChange.objects.filter(workspace=workspace, profile=profile).order_by(
        "-changed_at", "-id"
    )


def profile_known_ids(*, workspace: Workspace, profile: Profile) -> list[str]:
    """Every id the profile is known by: its user id, its anonymous ids and every id
    recorded for it in the identity table (aliases included)."""
    ids = {profile.user_id, *profile.anonymous_ids}
    ids.update(
        Identity.objects.filter(workspace=workspace, profile=profile).values_list(
            "value", flat=True
        )
    )
    ids.discard("")
    return sorted(ids)


def profile_rejected_events(
    *, workspace: Workspace, known_ids: list[str]
) -> QuerySet[RejectedEvent]:
    """Quarantined events that carry one of these ids as userId, anonymousId or
    previousId (matched by JSON containment, so a number sent as userId 42 matches the
    id "42" too), or, for payloads that were not JSON, whose raw text holds one of them
    as a JSON string. Privacy export and erase both use this, so they agree."""
    if not known_ids:
        return RejectedEvent.objects.none()
    matches = Q()
    for value in known_ids:
        for key in ("userId", "anonymousId", "previousId"):
            matches |= Q(payload__contains={key: value})
            if value.isascii() and value.isdigit() and len(value) < 16:
                matches |= Q(payload__contains={key: int(value)})
        matches |= Q(payload__isnull=True, raw__contains=orjson.dumps(value).decode())
    return RejectedEvent.objects.filter(matches, workspace=workspace).order_by(
        "-received_at", "-id"
    )


# --------------------------------------------------------------------------- events


def profile_events(*, workspace: Workspace, profile: Profile, name: str = "") -> QuerySet[Event]:
    """The profile's events, newest first, optionally of one event name."""
    events = Event.objects.filter(workspace=workspace, profile=profile)
    if name:
        events = events.filter(name=name)
    return events.order_by("-timestamp", "-id")


def profile_events_latest(
    *, workspace: Workspace, profile: Profile, limit: int = 100
) -> list[Event]:
    """The profile's latest events, newest first."""
    return list(profile_events(workspace=workspace, profile=profile)[:limit])


def profile_event_names(*, workspace: Workspace, profile: Profile) -> list[str]:
    """The distinct names of the profile's events (non-blank), alphabetically."""
    return list(
        Event.objects.filter(workspace=workspace, profile=profile)
        .exclude(name="")
        .order_by("name")
        .values_list("name", flat=True)
        .distinct()
    )


def workspace_events(
    *,
    workspace: Workspace,
    user_id: str = "",
    name: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Event]:
    """The workspace's events, newest first. `user_id` is the profile's user id (an
    unknown one matches nothing); `since` is inclusive and `until` exclusive, so the
    partitions outside the range are never read."""
    events = Event.objects.filter(workspace=workspace)
    if user_id:
        events = events.filter(
            profile__in=Profile.objects.filter(workspace=workspace, user_id=user_id).values("pk")
        )
    if name:
        events = events.filter(name=name)
    if since is not None:
        events = events.filter(timestamp__gte=since)
    if until is not None:
        events = events.filter(timestamp__lt=until)
    return events.order_by("-timestamp", "-id")


def rejected_events(*, workspace: Workspace, code: str = "") -> QuerySet[RejectedEvent]:
    rows = RejectedEvent.objects.filter(workspace=workspace)
    if code:
        rows = rows.filter(code=code)
    return rows.order_by("-received_at", "-id")


# --------------------------------------------------------------------------- keyset pages


@dataclass(frozen=True)
class TimeCursor:
    """A position in a newest-first list ordered by (a time column, id): the last row
    seen. Opaque to clients (url-safe base64). Unlike an offset, a row arriving at the
    top while someone scrolls neither repeats nor skips a row, and every page is an
    index range scan that also prunes partitions on the time column."""

    time: datetime
    id: int

    def encode(self) -> str:
        raw = orjson.dumps([self.time.isoformat(), self.id])
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> TimeCursor | None:
        """The cursor, or None when the text is not one we made."""
        try:
            time_text, row_id = orjson.loads(
                base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            )
            time = parse_datetime(time_text)
        except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
            return None
        if time is None or time.tzinfo is None or not isinstance(row_id, int):
            return None
        return cls(time=time, id=row_id)


def newest_first_page(
    rows: QuerySet, *, time_field: str, after: TimeCursor | None, size: int
) -> tuple[list, TimeCursor | None]:
    """One page of `rows` ordered by (time_field, id) descending, starting after the
    cursor, and the cursor of the next page (None on the last page)."""
    rows = rows.order_by(f"-{time_field}", "-id")
    if after is not None:
        # The redundant `<=` bound lets PostgreSQL prune partitions and use a range scan.
        rows = rows.filter(
            Q(**{f"{time_field}__lt": after.time})
            | Q(**{time_field: after.time, "id__lt": after.id}),
            **{f"{time_field}__lte": after.time},
        )
    page = list(rows[: size + 1])
    if len(page) <= size:
        return page, None
    page = page[:size]
    last = page[-1]
    return page, TimeCursor(time=getattr(last, time_field), id=last.id)


# --------------------------------------------------------------------------- event schemas


def event_schemas(*, workspace: Workspace) -> QuerySet[EventSchema]:
    return EventSchema.objects.filter(workspace=workspace).order_by("event_name")


def event_schema_get(*, workspace: Workspace, event_schema_id: int) -> EventSchema:
    schema = event_schemas(workspace=workspace).filter(pk=event_schema_id).first()
    if schema is None:
        raise Http404("No such event schema")
    return schema


def rejected_event_codes(*, workspace: Workspace) -> list[str]:
    return list(
        RejectedEvent.objects.filter(workspace=workspace)
        .order_by("code")
        .values_list("code", flat=True)
        .distinct()
    )


def workspace_segments(*, workspace: Workspace) -> QuerySet[Segment]:
    return Segment.objects.filter(workspace=workspace).order_by("name")


def segment_names(*, workspace: Workspace) -> dict[int, str]:
    """Segment names by id, for the summaries of membership rules: one query."""
    return dict(workspace_segments(workspace=workspace).values_list("pk", "name"))


def profile_count(*, workspace: Workspace) -> int:
    return Profile.objects.filter(workspace=workspace).count()


def segment_get(*, workspace: Workspace, segment_id: int) -> Segment:
    segment = Segment.objects.filter(workspace=workspace, pk=segment_id).first()
    if segment is None:
        raise Http404("No such segment")
    return segment


def segment_members(*, workspace: Workspace, segment: Segment) -> QuerySet[SegmentMembership]:
    """Current members, most recent entries first."""
    return (
        SegmentMembership.objects.filter(
            workspace=workspace, segment=segment, exited_at__isnull=True
        )
        .select_related("profile")
        .order_by("-entered_at", "-id")
    )


def segment_usages(*, workspace: Workspace, segment: Segment) -> list[Segment]:
    """Where a segment is used: the dynamic segments whose rule names it. (Journeys
    add their triggers and conditions here once they exist.)"""
    from segments.rules import Membership, RuleError, iter_leaves, parse_definition

    users = []
    for other in Segment.objects.filter(workspace=workspace, kind=Segment.Kind.DYNAMIC).exclude(
        pk=segment.pk
    ):
        try:
            leaves = iter_leaves(parse_definition(other.definition))
        except RuleError:
            continue
        if any(isinstance(leaf, Membership) and leaf.segment_id == segment.pk for leaf in leaves):
            users.append(other)
    return users


def segment_sizes(*, workspace: Workspace, segment: Segment, since) -> QuerySet[SegmentSize]:
    """The segment's hourly size rows since `since`, oldest first."""
    return SegmentSize.objects.filter(
        segment__workspace=workspace, segment=segment, hour__gte=since
    ).order_by("hour")


def segment_size_series(
    *, workspace: Workspace, segment_ids: list[int], since
) -> dict[int, list[int]]:
    """Member counts over time for several segments (one value per stored hour, oldest
    first): the list page's sparklines, in one query."""
    series: dict[int, list[int]] = {pk: [] for pk in segment_ids}
    rows = (
        SegmentSize.objects.filter(
            segment__workspace=workspace, segment_id__in=segment_ids, hour__gte=since
        )
        .order_by("segment_id", "hour")
        .values_list("segment_id", "member_count")
    )
    for segment_id, count in rows:
        series[segment_id].append(count)
    return series


def profiles_by_ids(*, workspace: Workspace, profile_ids: list[int]) -> list[Profile]:
    """Profiles in the order of the given ids (ids of other workspaces are dropped)."""
    found = Profile.objects.filter(workspace=workspace, pk__in=profile_ids).in_bulk()
    return [found[pk] for pk in profile_ids if pk in found]


def segment_members_for_export(*, workspace: Workspace, segment: Segment):
    """Current members with the columns of a CSV export, streamed in id order."""
    return (
        SegmentMembership.objects.filter(
            workspace=workspace, segment=segment, exited_at__isnull=True
        )
        .order_by("profile_id")
        .values_list(
            "profile_id",
            "profile__user_id",
            "profile__email",
            "profile__phone",
            "profile__time_zone",
            "entered_at",
        )
        .iterator(chunk_size=5000)
    )


AUTOCOMPLETE_CACHE_SECONDS = 60


def workspace_event_names(*, workspace: Workspace, limit: int = 500) -> list[str]:
    """The distinct event names the workspace has received (a skip scan of the
    (workspace, name, timestamp) index, so it costs one index probe per name)."""
    from django.core.cache import cache
    from django.db import connection

    key = f"segments:event-names:{workspace.pk}"
    names = cache.get(key)
    if names is None:
        with connection.cursor() as cursor:
            cursor.execute(
                """
                WITH RECURSIVE names(name) AS (
                    (SELECT name FROM segments_event WHERE workspace_id = %s AND name > ''
                     ORDER BY name LIMIT 1)
                    UNION ALL
                    SELECT (SELECT e.name FROM segments_event e
                            WHERE e.workspace_id = %s AND e.name > names.name
                            ORDER BY e.name LIMIT 1)
                    FROM names WHERE names.name IS NOT NULL
                )
                SELECT name FROM names WHERE name IS NOT NULL LIMIT %s
                """,
                [workspace.pk, workspace.pk, limit],
            )
            names = [row[0] for row in cursor.fetchall()]
        cache.set(key, names, AUTOCOMPLETE_CACHE_SECONDS)
    return names


def workspace_trait_keys(*, workspace: Workspace, sample: int = 2000) -> list[str]:
    """Top-level trait names of the most recently seen profiles."""
    from django.core.cache import cache
    from django.db import connection

    key = f"segments:trait-keys:{workspace.pk}"
    keys = cache.get(key)
    if keys is None:
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT DISTINCT k FROM (
                    SELECT traits FROM segments_profile WHERE workspace_id = %s
                    ORDER BY last_seen DESC LIMIT %s
                ) p, jsonb_object_keys(CASE WHEN jsonb_typeof(p.traits) = 'object'
                                       THEN p.traits ELSE '{}'::jsonb END) k
                ORDER BY k LIMIT 500
                """,
                [workspace.pk, sample],
            )
            keys = [row[0] for row in cursor.fetchall()]
        cache.set(key, keys, AUTOCOMPLETE_CACHE_SECONDS)
    return keys


def workspace_event_properties(
    *, workspace: Workspace, names: list[str], sample: int = 500
) -> dict[str, list[str]]:
    """Property names seen on the latest events of each name."""
    from django.core.cache import cache
    from django.db import connection

    names = sorted({name for name in names if name})[:50]
    if not names:
        return {}
    digest = hashlib.sha1("\n".join(names).encode(), usedforsecurity=False).hexdigest()
    key = f"segments:event-properties:{workspace.pk}:{digest}"
    found = cache.get(key)
    if found is None:
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT n.name, array(
                    SELECT DISTINCT k FROM (
                        SELECT properties FROM segments_event
                        WHERE workspace_id = %s AND name = n.name
                        ORDER BY timestamp DESC LIMIT %s
                    ) e, jsonb_object_keys(CASE WHEN jsonb_typeof(e.properties) = 'object'
                                           THEN e.properties ELSE '{}'::jsonb END) k
                    ORDER BY k LIMIT 200
                )
                FROM unnest(%s::text[]) AS n(name)
                """,
                [workspace.pk, sample, names],
            )
            found = {name: list(keys) for name, keys in cursor.fetchall()}
        cache.set(key, found, AUTOCOMPLETE_CACHE_SECONDS)
    return found


def profile_segment_memberships(
    *, workspace: Workspace, profile: Profile
) -> QuerySet[SegmentMembership]:
    """The profile's stays in segments, current ones first, then the latest."""
    return (
        SegmentMembership.objects.filter(workspace=workspace, profile=profile)
        .select_related("segment")
        .order_by(F("exited_at").desc(nulls_first=True), "-entered_at")
    )
