"""The demo dataset is deterministic and idempotent; the profile pages are scoped and lean."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db.models import Count, Max, Min
from django.urls import reverse

from engagement_site.demo import DEMO_USERNAME, demo_credentials
from engagement_site.workspaces.models import Workspace
from segments.demo import demo_dataset_load
from segments.models import Event, Profile
from tests.conftest import logged_in


def _snapshot(workspace):
    profiles = list(
        Profile.objects.filter(workspace=workspace)
        .order_by("user_id")
        .values_list("user_id", "email", "traits", "first_seen", "last_seen")
    )
    events = list(
        Event.objects.filter(workspace=workspace)
        .order_by("message_id")
        .values_list("message_id", "profile__user_id", "name", "timestamp", "properties")
    )
    return profiles, events


def test_the_same_seed_gives_the_same_rows_and_a_rerun_adds_nothing(workspace):
    first_counts = demo_dataset_load(workspace=workspace, profile_count=40, seed=7)
    first = _snapshot(workspace)
    second_counts = demo_dataset_load(workspace=workspace, profile_count=40, seed=7)
    second = _snapshot(workspace)
    assert first_counts == second_counts
    assert first_counts["profiles"] == 40 == Profile.objects.count()
    assert first_counts["events"] == Event.objects.count()
    assert first == second
    assert Event.objects.values("message_id").annotate(n=Count("id")).filter(n__gt=1).count() == 0


def test_profiles_span_their_events_and_every_brief_event_exists(workspace):
    demo_dataset_load(workspace=workspace, profile_count=60, seed=11)
    spans = Event.objects.values("profile_id").annotate(
        first=Min("timestamp"), last=Max("timestamp")
    )
    by_profile = {row["profile_id"]: (row["first"], row["last"]) for row in spans}
    for profile in Profile.objects.filter(workspace=workspace):
        assert (profile.first_seen, profile.last_seen) == by_profile[profile.pk]
    names = set(Event.objects.filter(type="track").values_list("name", flat=True))
    assert {
        "signed_up",
        "logged_in",
        "product_viewed",
        "added_to_cart",
        "checkout_started",
        "order_completed",
    } <= names
    trait_keys = set(Profile.objects.first().traits)
    assert {
        "name",
        "email",
        "phone",
        "country",
        "plan",
        "signed_up_at",
        "locale",
        "time_zone",
    } <= trait_keys


def test_load_demo_command_creates_the_owner_and_the_workspace(db, capsys, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    call_command("load_demo", "--profiles", "10")
    workspace = Workspace.objects.get(slug="demo")
    credentials = demo_credentials()
    assert credentials["username"] == DEMO_USERNAME
    assert workspace.memberships.get().user.check_password(credentials["password"])
    assert workspace.memberships.get().role == "owner"
    assert Profile.objects.filter(workspace=workspace).count() == 10
    assert f"Log in as {DEMO_USERNAME} / {credentials['password']}" in capsys.readouterr().out


@pytest.fixture
def demo_profiles(workspace, other_workspace):
    demo_dataset_load(workspace=workspace, profile_count=120, seed=3)
    demo_dataset_load(workspace=other_workspace, profile_count=5, seed=4)


def test_profile_list_is_scoped_paginated_and_searchable(
    demo_profiles, owner, django_assert_num_queries
):
    client = logged_in(owner)
    url = reverse("profile_list", kwargs={"workspace_slug": "acme"})
    with django_assert_num_queries(9):
        page = client.get(url)
    assert page.status_code == 200
    assert len(page.context["page"].object_list) == 50
    assert page.context["page"].paginator.count == 120
    target = Profile.objects.filter(workspace__slug="acme").order_by("pk")[7]
    found = client.get(url, {"q": target.email.upper()})
    assert [p.pk for p in found.context["page"].object_list] == [target.pk]
    foreign = Profile.objects.filter(workspace__slug="globex").first()
    assert list(client.get(url, {"q": foreign.email}).context["page"].object_list) == []


def test_profile_detail_answers_404_for_another_workspaces_profile(demo_profiles, owner):
    client = logged_in(owner)
    mine = Profile.objects.filter(workspace__slug="acme").first()
    theirs = Profile.objects.filter(workspace__slug="globex").first()
    ok = client.get(
        reverse("profile_detail", kwargs={"workspace_slug": "acme", "profile_id": mine.pk})
    )
    leak = client.get(
        reverse("profile_detail", kwargs={"workspace_slug": "acme", "profile_id": theirs.pk})
    )
    assert ok.status_code == 200
    assert mine.email in ok.content.decode()
    assert leak.status_code == 404
    assert theirs.email not in leak.content.decode()
