"""The visual journey builder's page: the palette, the canvas (static/js/journey_editor,
on @antv/x6) and the inspector panel (journeys.inspector). The page carries the draft
as the canvas needs it; saving, checking, simulating and publishing go through the
journey REST API (journeys.api) with the page's session."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from engagement_site.workspaces.access import member_can, workspace_view
from journeys import editor, selectors


def summary_names(*, workspace) -> dict[str, dict[int, str]]:
    """Template and segment names by id, for node summaries (two queries)."""
    from content.selectors import workspace_templates
    from segments.selectors import segment_names

    return {
        "templates": dict(
            workspace_templates(workspace=workspace, include_archived=True).values_list(
                "pk", "name"
            )
        ),
        "segments": segment_names(workspace=workspace),
    }


@workspace_view("journeys.view")
def journey_editor(request: HttpRequest, journey_id: int) -> HttpResponse:
    workspace = request.workspace
    journey = selectors.journey_get(workspace=workspace, journey_id=journey_id)
    draft = journey.draft
    definition = draft.definition or {}
    names = summary_names(workspace=workspace)
    nodes = [node for node in definition.get("nodes", []) if isinstance(node, dict)]
    api = f"/api/v1/journeys/{journey.pk}/"
    live = journey.live_version
    data = {
        "journey": {
            "id": journey.pk,
            "name": journey.name,
            "status": journey.status,
            "liveVersion": live.number if live else None,
        },
        "workspace": workspace.slug,
        "draft": {
            "definition": {
                "nodes": nodes,
                "edges": definition.get("edges", []),
                "settings": definition.get("settings", {}),
            },
            "layout": draft.layout or {},
            "revision": draft.revision,
        },
        "live": live.definition if live else None,
        "meta": {
            str(node.get("id")): {
                "summary": editor.node_summary(node, names=names),
                "ports": editor.ports(node),
                "look": editor.palette_key(node),
            }
            for node in nodes
        },
        "palette": editor.palette(),
        "urls": {
            "draft": api + "draft",
            "check": api + "check",
            "simulate": api + "simulate",
            "publish": api + "publish",
            "inspector": reverse(
                "journey_inspector",
                kwargs={"workspace_slug": workspace.slug, "journey_id": journey.pk},
            ),
            "list": reverse("journey_list", kwargs={"workspace_slug": workspace.slug}),
            "settings": reverse(
                "journey_settings",
                kwargs={"workspace_slug": workspace.slug, "journey_id": journey.pk},
            ),
        },
        "canEdit": member_can(request, "journeys.edit"),
        "canPublish": member_can(request, "journeys.publish"),
    }
    return render(
        request,
        "journeys/editor.html",
        {"area": "journeys", "journey": journey, "editor_data": data},
    )
