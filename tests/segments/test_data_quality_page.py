"""The quarantine page shows this workspace's rejected events with reason and payload."""

from __future__ import annotations

from django.urls import reverse

from segments.models import EventSchema, RejectedEvent
from tests.conftest import logged_in


def test_quarantine_lists_rejected_events_of_this_workspace_only(
    workspace, other_workspace, make_member
):
    RejectedEvent.objects.create(
        workspace=workspace, code="invalid_event", reason="event: a track call needs an event name",
        event_type="track", payload={"type": "track", "userId": "u-1"}, message_id="m-1",
    )  # fmt: skip
    RejectedEvent.objects.create(
        workspace=other_workspace, code="event_too_large", reason="elsewhere", raw="{..."
    )
    EventSchema.objects.create(
        workspace=workspace,
        event_name="order_completed",
        properties={"revenue": {"type": "number", "required": True}},
    )
    response = logged_in(make_member("viewer")).get(
        reverse("data_quality", kwargs={"workspace_slug": "acme"})
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="rejected-count">1<' in page
    assert "event: a track call needs an event name" in page
    assert "&quot;userId&quot;: &quot;u-1&quot;" in page
    assert "elsewhere" not in page
    assert "<code>revenue</code>: number (required)" in page


def test_quarantine_filters_by_reason(workspace, owner):
    RejectedEvent.objects.create(
        workspace=workspace, code="invalid_event", reason="first reason", payload={}
    )
    RejectedEvent.objects.create(
        workspace=workspace, code="schema_violation", reason="second reason", payload={}
    )
    page = (
        logged_in(owner)
        .get(
            reverse("data_quality", kwargs={"workspace_slug": "acme"}), {"code": "schema_violation"}
        )
        .content.decode()
    )
    assert "second reason" in page
    assert "first reason" not in page
