"""Segment list and detail pages: sizes, members, and workspace scoping."""

from __future__ import annotations

from django.urls import reverse

from segments.demo import DEMO_SEGMENTS, demo_dataset_load, demo_segments_create
from segments.models import Segment, SegmentMembership
from tests.conftest import logged_in


def test_demo_segments_list_and_members(workspace, make_member):
    demo_dataset_load(workspace=workspace, profile_count=200, seed=5)
    assert demo_segments_create(workspace=workspace) == len(DEMO_SEGMENTS)
    client = logged_in(make_member("viewer"))
    listing = client.get(
        reverse("segment_list", kwargs={"workspace_slug": "acme"})
    ).content.decode()
    for name, _, _ in DEMO_SEGMENTS:
        assert name in listing
    streak = Segment.objects.get(workspace=workspace, name=DEMO_SEGMENTS[0][0])
    members = SegmentMembership.objects.filter(segment=streak, exited_at=None).count()
    assert streak.member_count == members
    detail = client.get(
        reverse("segment_detail", kwargs={"workspace_slug": "acme", "segment_id": streak.pk})
    )
    assert detail.status_code == 200
    assert detail.context["page"].paginator.count == members
    assert "&quot;type&quot;: &quot;streak&quot;" in detail.content.decode()


def test_another_workspaces_segment_is_404(workspace, other_workspace, owner):
    theirs = Segment.objects.create(
        workspace=other_workspace,
        name="Theirs",
        definition={"type": "attribute", "trait": "plan", "op": "exists"},
    )
    response = logged_in(owner).get(
        reverse("segment_detail", kwargs={"workspace_slug": "acme", "segment_id": theirs.pk})
    )
    assert response.status_code == 404
    assert "Theirs" not in response.content.decode()
