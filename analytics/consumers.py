"""`/ws/analytics/<workspace slug>/?start=&end=&channel=&journey=`: the overview's
numbers for those filters, live. Refused (closed before the handshake) without a
session, for a workspace the user is not a member of, or for a role without
analytics.view; bad filters fall back to the page's defaults, as on the page."""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.db import database_sync_to_async

from journeys import live
from journeys.consumers import LiveNumbersConsumer


@database_sync_to_async
def _membership(user, slug: str, permission: str):
    from engagement_site.workspaces.models import Membership
    from engagement_site.workspaces.roles import role_has_permission

    if not user.is_authenticated:
        return None
    membership = (
        Membership.objects.filter(workspace__slug=slug, user=user)
        .select_related("workspace")
        .first()
    )
    if membership is None or not role_has_permission(membership.role, permission):
        return None
    return membership


@database_sync_to_async
def _overview(workspace, query: dict) -> dict:
    from analytics import reports
    from analytics.filters import ReportFilters

    filters = ReportFilters(query, workspace=workspace)
    report = reports.overview(
        workspace=workspace,
        date_range=filters.date_range(),
        channel=filters.value("channel"),
        journey_id=filters.value("journey"),
    )
    return {
        "type": "overview",
        "totals": report["totals"],
        "rates": report["rates"],
        "revenue": float(report["revenue"]),
        "charts": [chart.data() for chart in report["charts"]],
    }


class WorkspaceMetricsConsumer(LiveNumbersConsumer):
    # Read by tests/workspaces/test_isolation_websockets.py, like a view's declaration.
    required_permission = "analytics.view"

    async def authorize(self) -> str | None:
        slug = self.scope["url_route"]["kwargs"]["workspace_slug"]
        membership = await _membership(self.scope.get("user"), slug, self.required_permission)
        if membership is None:
            return None
        self.workspace = membership.workspace
        raw = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.query = {
            name: values[-1]
            for name, values in raw.items()
            if name in ("start", "end", "channel", "journey") and values[-1]
        }
        return live.workspace_group_name(self.workspace.pk)

    def frame_key(self) -> tuple:
        # Pages of one workspace share frames only when their filters match.
        return (self.group, *sorted(self.query.items()))

    async def metrics_changed(self, event):
        await self.numbers_changed(event)

    async def frame(self) -> dict:
        return await _overview(self.workspace, self.query)
