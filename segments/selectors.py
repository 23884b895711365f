"""Reads of the segments app; every function takes the workspace."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.http import Http404

from engagement_site.workspaces.models import Workspace
from segments.models import Event, Profile


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


def profile_get(*, workspace: Workspace, profile_id: int) -> Profile:
    profile = Profile.objects.filter(workspace=workspace, pk=profile_id).first()
    if profile is None:
        raise Http404("No such profile")
    return profile


def profile_events_latest(
    *, workspace: Workspace, profile: Profile, limit: int = 100
) -> list[Event]:
    """The profile's latest events, newest first."""
    events = Event.objects.filter(workspace=workspace, profile=profile).order_by(
        "-timestamp", "-id"
    )
    return list(events[:limit])
