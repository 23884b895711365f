"""The profile page: identities, merges, trait history, a filterable event timeline with
infinite scroll (htmx), placeholders, and export / erase for those allowed."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from engagement_site.workspaces.models import AuditLog
from engagement_site.workspaces.roles import Role
from segments.models import Event, Identity, Profile, ProfileMerge, TraitChange
from segments.views import TIMELINE_PAGE_SIZE
from tests.conftest import logged_in

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
NAMES = ["logged_in", "product_viewed", "order_completed"]


def _url(name: str, profile: Profile, workspace_slug: str = "acme") -> str:
    return reverse(name, kwargs={"workspace_slug": workspace_slug, "profile_id": profile.pk})


def _row_ids(html: str) -> list[int]:
    return [int(value) for value in re.findall(r'data-event-id="(\d+)"', html)]


def _next_link(html: str) -> str | None:
    match = re.search(
        r'<tr data-testid="timeline-more" hx-get="([^"]+)" hx-trigger="intersect once" hx-swap="outerHTML">',
        html,
    )
    return match.group(1).replace("&amp;", "&") if match else None


@pytest.fixture
def profile(workspace) -> Profile:
    """A profile with 120 events: names in turn, one minute apart, newest last created."""
    profile = Profile.objects.create(
        workspace=workspace,
        user_id="ida-9",
        anonymous_ids=["anon-ida"],
        email="ida@example.com",
        traits={"name": "Ida Timeline", "plan": "pro"},
    )
    Identity.objects.create(workspace=workspace, profile=profile, kind="user_id", value="ida-9")
    Identity.objects.create(
        workspace=workspace, profile=profile, kind="anonymous_id", value="anon-ida"
    )
    ProfileMerge.objects.create(
        workspace=workspace,
        profile=profile,
        merged_profile_id=31337,
        merged_identities=[{"kind": "anonymous_id", "value": "anon-ida-phone"}],
        events_moved=7,
        reason="alias",
    )
    TraitChange.objects.create(
        workspace=workspace,
        profile=profile,
        trait="plan",
        before="free",
        after="pro",
        source="identify",
    )
    TraitChange.objects.create(
        workspace=workspace,
        profile=profile,
        trait="coupon",
        before="WELCOME10",
        after=None,
        source="api",
    )
    Event.objects.bulk_create(
        Event(
            workspace=workspace,
            profile=profile,
            name=NAMES[number % 3],
            message_id=f"ida-{number}",
            timestamp=T0 + timedelta(minutes=number),
        )
        for number in range(120)
    )
    return profile


def _newest_first(profile: Profile, name: str = "") -> list[int]:
    events = Event.objects.filter(profile=profile)
    if name:
        events = events.filter(name=name)
    return list(events.order_by("-timestamp", "-id").values_list("id", flat=True))


def test_the_page_shows_identities_merges_history_segments_journeys_and_messages(profile, owner):
    html = logged_in(owner).get(_url("profile_detail", profile)).content.decode()
    identities = html[html.index('data-testid="identities"') : html.index('data-testid="merges"')]
    assert "anon-ida" in identities and "ida-9" in identities
    merges = html[html.index('data-testid="merges"') : html.index('data-testid="trait-history"')]
    assert "#31337" in merges and "anon-ida-phone" in merges and ">7<" in merges
    history = html[
        html.index('data-testid="trait-history"') : html.index('data-testid="profile-segments"')
    ]
    assert "WELCOME10" in history and "removed" in history and "identify" in history
    assert "In no segment." in html
    assert "Not in any journey yet." in html
    assert "No message yet." in html


def test_the_timeline_select_lists_the_profiles_event_names(profile, owner, workspace):
    other = Profile.objects.create(workspace=workspace, user_id="someone-else")
    Event.objects.create(
        workspace=workspace, profile=other, name="not_mine", message_id="x", timestamp=T0
    )
    html = logged_in(owner).get(_url("profile_detail", profile)).content.decode()
    select = html[html.index('<select id="timeline-name"') : html.index("</select>")]
    assert re.findall(r'<option value="([^"]*)"', select) == [
        "",
        "logged_in",
        "order_completed",
        "product_viewed",
    ]


def test_the_timeline_shows_the_newest_page_then_scrolls_through_every_event(profile, owner):
    client = logged_in(owner)
    page = client.get(_url("profile_detail", profile)).content.decode()
    expected = _newest_first(profile)
    assert _row_ids(page) == expected[:TIMELINE_PAGE_SIZE]

    seen = _row_ids(page)
    link = _next_link(page)
    fragments = 0
    while link:
        fragment = client.get(link, headers={"HX-Request": "true"}).content.decode()
        assert "<html" not in fragment and "<tbody" not in fragment
        seen += _row_ids(fragment)
        link = _next_link(fragment)
        fragments += 1
    assert fragments == 2
    assert seen == expected


def test_the_timeline_filter_keeps_its_name_while_scrolling(profile, owner):
    client = logged_in(owner)
    page = client.get(_url("profile_detail", profile), {"name": "order_completed"}).content.decode()
    expected = _newest_first(profile, "order_completed")
    assert len(expected) == 40
    assert '<option value="order_completed" selected>' in page
    assert _row_ids(page) == expected
    assert _next_link(page) is None

    everything = client.get(_url("profile_detail", profile), {"name": "logged_in"}).content.decode()
    assert _row_ids(everything) == _newest_first(profile, "logged_in")


def test_a_filtered_scroll_fragment_holds_only_that_name(profile, owner, workspace):
    Event.objects.bulk_create(
        Event(
            workspace=workspace,
            profile=profile,
            name="logged_in",
            message_id=f"more-{n}",
            timestamp=T0 - timedelta(days=1, minutes=n),
        )
        for n in range(30)
    )
    client = logged_in(owner)
    page = client.get(_url("profile_detail", profile), {"name": "logged_in"}).content.decode()
    link = _next_link(page)
    assert "name=logged_in" in link
    fragment = client.get(link, headers={"HX-Request": "true"}).content.decode()
    assert _row_ids(page) + _row_ids(fragment) == _newest_first(profile, "logged_in")
    assert _next_link(fragment) is None


def test_an_unknown_name_shows_an_empty_timeline(profile, owner):
    html = logged_in(owner).get(_url("profile_detail", profile), {"name": "nope"}).content.decode()
    assert _row_ids(html) == []
    assert "No “nope” events for this profile." in html


def test_a_bad_cursor_starts_from_the_newest_event(profile, owner):
    html = (
        logged_in(owner).get(_url("profile_detail", profile), {"after": "garbage"}).content.decode()
    )
    assert _row_ids(html) == _newest_first(profile)[:TIMELINE_PAGE_SIZE]


def test_the_page_reads_a_fixed_number_of_queries(profile, owner, django_assert_num_queries):
    client = logged_in(owner)
    client.get(_url("profile_detail", profile))
    # session, user, membership, profile, events page, identities, merges, trait
    # history, event names, segment memberships, journey enrollments, messages, the
    # switcher's memberships; the fragment stops after the events page.
    with django_assert_num_queries(13):
        client.get(_url("profile_detail", profile))
    with django_assert_num_queries(5):
        client.get(_url("profile_detail", profile), headers={"HX-Request": "true"})


@pytest.mark.parametrize(
    ("role", "export_shown", "erase_shown"),
    [
        (Role.VIEWER, False, False),
        (Role.CONTENT_EDITOR, False, False),
        (Role.MARKETER, False, False),
        (Role.ANALYST, True, False),
        (Role.ADMIN, True, True),
    ],
)
def test_export_and_erase_buttons_follow_their_permissions(
    profile, make_member, role, export_shown, erase_shown
):
    html = logged_in(make_member(role)).get(_url("profile_detail", profile)).content.decode()
    assert ('data-testid="export-profile"' in html) is export_shown
    assert ('data-testid="erase-profile"' in html) is erase_shown
    assert (_url("profile_erase", profile) in html) is erase_shown


def test_a_viewer_cannot_erase_or_export_from_the_ui(profile, make_member):
    client = logged_in(make_member(Role.VIEWER))
    erase = client.post(_url("profile_erase", profile))
    export = client.get(_url("profile_export", profile))
    assert (erase.status_code, export.status_code) == (403, 403)
    assert Profile.objects.filter(pk=profile.pk).exists()
    assert Event.objects.filter(profile=profile).count() == 120
    assert AuditLog.objects.filter(action__in=["profile.export", "profile.erase"]).count() == 0


def test_erase_from_the_ui_needs_a_post_then_erases_and_returns_to_the_list(profile, owner):
    client = logged_in(owner)
    assert client.get(_url("profile_erase", profile)).status_code == 405
    assert Profile.objects.filter(pk=profile.pk).exists()

    response = client.post(_url("profile_erase", profile), follow=True)
    assert response.redirect_chain == [
        (reverse("profile_list", kwargs={"workspace_slug": "acme"}), 302)
    ]
    assert (
        f"Profile {profile.pk} erased with its 120 events, identities and history."
        in response.content.decode()
    )
    assert Profile.objects.filter(pk=profile.pk).exists() is False
    assert Event.objects.filter(profile_id=profile.pk).count() == 0
    audit = AuditLog.objects.get(action="profile.erase")
    assert (audit.actor, audit.object_repr) == (owner, f"Profile {profile.pk}")


def test_export_from_the_ui_downloads_json_and_is_audited(profile, owner):
    response = logged_in(owner).get(_url("profile_export", profile))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == f'attachment; filename="profile-{profile.pk}.json"'
    document = response.json()
    assert (
        document["profile"]["user_id"],
        len(document["events"]),
        len(document["identities"]),
    ) == (
        "ida-9",
        120,
        2,
    )
    audit = AuditLog.objects.get(action="profile.export")
    assert (audit.actor, audit.object_id) == (owner, str(profile.pk))


def test_another_workspaces_profile_cannot_be_seen_exported_or_erased(
    profile, outsider, other_workspace
):
    client = logged_in(outsider)
    responses = [
        client.get(_url("profile_detail", profile, "globex")),
        client.get(_url("profile_detail", profile, "globex"), headers={"HX-Request": "true"}),
        client.get(_url("profile_export", profile, "globex")),
        client.post(_url("profile_erase", profile, "globex")),
    ]
    assert [response.status_code for response in responses] == [404, 404, 404, 404]
    assert Profile.objects.filter(pk=profile.pk).exists()
    assert AuditLog.objects.filter(action__in=["profile.export", "profile.erase"]).count() == 0
