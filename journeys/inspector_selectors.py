"""Reads of the builder's inspector; every function takes the workspace.

segments.selectors.workspace_event_names lists every distinct name (alphabetical, one
index probe per name) but says nothing of how often each happens; the inspector's
autocomplete puts the most used names first, so it ranks those names by their count
among the workspace's most recent events (a bounded read of the (workspace, timestamp)
index, cached briefly like the other autocompletes)."""

from __future__ import annotations

from django.core.cache import cache
from django.db import connection

from engagement_site.workspaces.models import Workspace

EVENT_NAMES_LIMIT = 20
# How many of the newest events the ranking counts: enough to tell the busy names from
# the rare ones, small enough to stay quick on a workspace with billions of events.
RANKING_SAMPLE = 50_000


def _recent_event_counts(*, workspace: Workspace) -> dict[str, int]:
    key = f"journeys:inspector:event-counts:{workspace.pk}"
    counts = cache.get(key)
    if counts is None:
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT name, count(*) FROM (
                    SELECT name FROM segments_event
                    WHERE workspace_id = %s
                    ORDER BY timestamp DESC LIMIT %s
                ) recent
                WHERE name > ''
                GROUP BY name
                """,
                [workspace.pk, RANKING_SAMPLE],
            )
            counts = {name: count for name, count in cursor.fetchall()}
        from segments.selectors import AUTOCOMPLETE_CACHE_SECONDS

        cache.set(key, counts, AUTOCOMPLETE_CACHE_SECONDS)
    return counts


def event_name_suggestions(
    *, workspace: Workspace, query: str = "", limit: int = EVENT_NAMES_LIMIT
) -> list[str]:
    """Up to `limit` event names of the workspace containing `query` (any case), the
    most frequent among recent events first, then the others alphabetically."""
    from segments.selectors import workspace_event_names

    needle = query.strip().casefold()
    counts = _recent_event_counts(workspace=workspace)
    names = set(workspace_event_names(workspace=workspace, limit=5000)) | set(counts)
    matching = [name for name in names if needle in name.casefold()]
    matching.sort(key=lambda name: (-counts.get(name, 0), name))
    return matching[:limit]
