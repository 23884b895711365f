"""Drafts, checks against the workspace, publishing (pinned templates), and what
happens to profiles in flight when a new version is published: they stay on their
version, or they move by node id and by the mapping the publisher chose."""

from __future__ import annotations

import copy

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from content import services as content_services
from engagement_site.workspaces.models import AuditLog
from engagement_site.workspaces.services import AuditContext
from journeys import services
from journeys.graph import DefinitionError
from journeys.models import Enrollment, Journey, JourneyVersion
from segments.models import Profile, Segment
from tests.journeys.test_graph import ABANDONED_CART

pytestmark = pytest.mark.django_db

EDITOR = AuditContext.system("test marketer")


@pytest.fixture
def email_template(workspace):
    return content_services.template_create(
        workspace=workspace,
        name="Cart reminder",
        channel="email",
        content={"default": {"subject": "Your cart", "html": "<p>v1</p>"}},
        context=EDITOR,
    )


def _cart(template_id: int) -> dict:
    definition = copy.deepcopy(ABANDONED_CART)
    definition["nodes"][3]["action"]["template_id"] = template_id
    return definition


def _journey(workspace, definition) -> Journey:
    return services.journey_create(
        workspace=workspace, name="Abandoned cart", context=EDITOR, definition=definition
    )


def _enroll(journey, version, profile, node, *, state="waiting", next_run_at=None) -> Enrollment:
    return Enrollment.objects.create(
        workspace=journey.workspace, journey=journey, version=version, profile=profile,
        current_node=node, state=state, next_run_at=next_run_at or timezone.now(),
    )  # fmt: skip


def test_publish_freezes_the_draft_and_pins_the_templates(workspace, email_template):
    journey = _journey(workspace, _cart(email_template.pk))
    version = services.journey_publish(journey=journey, context=EDITOR, note="first")
    journey.refresh_from_db()
    assert (journey.status, journey.live_version, version.number) == ("live", version, 1)
    assert version.template_versions == {str(email_template.pk): email_template.current_version.pk}
    assert [node["id"] for node in version.definition["nodes"]] == [
        "cart",
        "hour",
        "ordered",
        "email",
        "done",
    ]

    # Editing the template does not touch the published version; publishing again does.
    content_services.template_save(
        template=email_template,
        content={"default": {"subject": "Your cart", "html": "<p>v2</p>"}},
        context=EDITOR,
    )
    version.refresh_from_db()
    assert version.template_versions == {
        str(email_template.pk): email_template.versions.get(number=1).pk
    }
    second = services.journey_publish(journey=journey, context=EDITOR)
    assert second.template_versions == {
        str(email_template.pk): email_template.versions.get(number=2).pk
    }
    assert AuditLog.objects.filter(workspace=workspace, action="journey.publish").count() == 2


def test_publish_refuses_an_invalid_draft_and_stores_nothing(
    workspace, email_template, other_workspace
):
    definition = _cart(email_template.pk)
    definition["edges"] = [edge for edge in definition["edges"] if edge.get("port") != "no"]
    journey = _journey(workspace, definition)
    with pytest.raises(DefinitionError) as caught:
        services.journey_publish(journey=journey, context=EDITOR)
    assert [str(error) for error in caught.value.errors] == [
        "node 'ordered': output 'no' goes nowhere; connect it",
        "node 'email': cannot be reached from the trigger",
    ]
    assert not JourneyVersion.objects.exists()
    assert Journey.objects.get(pk=journey.pk).status == "draft"


def test_references_must_exist_in_the_workspace_and_fit_their_node(
    workspace, other_workspace, email_template
):
    foreign = content_services.template_create(
        workspace=other_workspace, name="Theirs", channel="email",
        content={"default": {"subject": "x", "html": "x"}}, context=EDITOR,
    )  # fmt: skip
    sms = content_services.template_create(
        workspace=workspace,
        name="Text",
        channel="sms",
        content={"default": {"body": "x"}},
        context=EDITOR,
    )
    dynamic = Segment.objects.create(
        workspace=workspace,
        name="Pro",
        definition={"type": "attribute", "trait": "plan", "op": "eq", "value": "pro"},
    )
    definition = _cart(foreign.pk)
    definition["nodes"].append(
        {"id": "tag", "type": "action", "action": {"kind": "segment", "segment_id": dynamic.pk}}
    )
    definition["nodes"].append(
        {
            "id": "text",
            "type": "action",
            "action": {"kind": "message", "channel": "email", "template_id": sms.pk},
        }
    )
    definition["edges"] = [edge for edge in definition["edges"] if edge["source"] != "email"]
    definition["edges"] += [
        {"source": "email", "target": "tag"}, {"source": "tag", "target": "text"}, {"source": "text", "target": "done"},
    ]  # fmt: skip
    journey = _journey(workspace, definition)
    with pytest.raises(DefinitionError) as caught:
        services.journey_check(journey=journey)
    assert [str(error) for error in caught.value.errors] == [
        f"node 'email': template {foreign.pk} does not exist",
        "node 'tag': segment 'Pro' is dynamic; only static segments take members",
        "node 'text': template 'Text' is a SMS template, not email",
    ]


def test_draft_saves_detect_conflicts(workspace, email_template):
    journey = _journey(workspace, _cart(email_template.pk))
    draft = services.journey_draft_save(
        journey=journey, context=EDITOR, definition={"nodes": []}, base_revision=1
    )
    assert draft.revision == 2
    with pytest.raises(
        services.DraftConflict, match="saved revision 2 after you opened revision 1"
    ):
        services.journey_draft_save(
            journey=journey, context=EDITOR, definition={"nodes": [1]}, base_revision=1
        )
    journey.draft.refresh_from_db()
    assert journey.draft.definition == {"nodes": []}


def test_in_flight_profiles_stay_on_their_version(workspace, email_template):
    journey = _journey(workspace, _cart(email_template.pk))
    first = services.journey_publish(journey=journey, context=EDITOR)
    profile = Profile.objects.create(workspace=workspace, user_id="u1")
    waiting = _enroll(journey, first, profile, "hour")
    services.journey_draft_save(
        journey=journey, context=EDITOR, definition=_cart(email_template.pk) | {"settings": {}}
    )
    second = services.journey_publish(journey=journey, context=EDITOR, in_flight="stay")
    waiting.refresh_from_db()
    assert (waiting.version_id, waiting.current_node, waiting.state) == (
        first.pk,
        "hour",
        "waiting",
    )
    assert (
        AuditLog.objects.filter(action="journey.publish")
        .order_by("sequence")
        .last()
        .changes["in_flight"]
        == "stay"
    )
    assert second.number == 2


def test_in_flight_profiles_move_by_node_id_and_by_the_chosen_mapping(workspace, email_template):
    journey = _journey(workspace, _cart(email_template.pk))
    first = services.journey_publish(journey=journey, context=EDITOR)
    people = [
        Profile.objects.create(workspace=workspace, user_id=f"u{index}") for index in range(3)
    ]
    wake = timezone.now() + timezone.timedelta(minutes=30)
    at_wait = _enroll(journey, first, people[0], "hour", next_run_at=wake)
    at_condition = _enroll(journey, first, people[1], "ordered", state="active")
    finished = _enroll(journey, first, people[2], "done", state="completed")

    # v2 replaces the condition "ordered" by "bought" (a different id).
    new = _cart(email_template.pk)
    new["nodes"][2]["id"] = "bought"
    new["edges"] = [
        {**edge, "source": "bought" if edge["source"] == "ordered" else edge["source"],
         "target": "bought" if edge["target"] == "ordered" else edge["target"]}
        for edge in new["edges"]
    ]  # fmt: skip
    services.journey_draft_save(journey=journey, context=EDITOR, definition=new)

    # Profiles sit at the removed node: publishing without a target is refused.
    with pytest.raises(DefinitionError) as caught:
        services.journey_publish(journey=journey, context=EDITOR, in_flight="migrate")
    assert [str(error) for error in caught.value.errors] == [
        "node 'ordered': was removed and profiles are there: choose the node they move to"
    ]
    assert JourneyVersion.objects.filter(journey=journey).count() == 1
    with pytest.raises(DefinitionError, match="is mapped to 'nowhere'"):
        services.journey_publish(
            journey=journey, context=EDITOR, in_flight="migrate", node_map={"ordered": "nowhere"}
        )

    second = services.journey_publish(
        journey=journey, context=EDITOR, in_flight="migrate", node_map={"ordered": "bought"}
    )
    at_wait.refresh_from_db()
    at_condition.refresh_from_db()
    finished.refresh_from_db()
    # Same id, same wait: keeps its place and its wake-up time.
    assert (at_wait.version_id, at_wait.current_node, at_wait.state, at_wait.next_run_at) == (
        second.pk,
        "hour",
        "waiting",
        wake,
    )
    # Mapped: runs the chosen node now on the new version.
    assert (at_condition.version_id, at_condition.current_node, at_condition.state) == (
        second.pk,
        "bought",
        "active",
    )
    # Finished enrollments are history: untouched.
    assert finished.version_id == first.pk
    audit = AuditLog.objects.filter(action="journey.publish").order_by("sequence").last().changes
    assert (audit["in_flight"], audit["moved"], audit["node_map"]) == (
        "migrate",
        2,
        {"ordered": "bought"},
    )


def test_pause_resume_stop_and_archive(workspace, email_template):
    journey = _journey(workspace, _cart(email_template.pk))
    with pytest.raises(ValidationError, match=r"The journey is draft; it cannot be paused\."):
        services.journey_pause(journey=journey, context=EDITOR)
    version = services.journey_publish(journey=journey, context=EDITOR)
    profile = Profile.objects.create(workspace=workspace, user_id="u1")
    open_one = _enroll(journey, version, profile, "hour")
    assert (
        services.journey_pause(
            journey=journey, context=EDITOR, reason="too many errors"
        ).paused_reason
        == "too many errors"
    )
    assert services.journey_resume(journey=journey, context=EDITOR).status == "live"
    services.journey_stop(journey=journey, context=EDITOR)
    open_one.refresh_from_db()
    assert (open_one.state, open_one.exit_reason, open_one.next_run_at) == (
        "exited",
        "journey_stopped",
        None,
    )
    assert AuditLog.objects.get(action="journey.exit_all").changes == {"exited": 1}
    with pytest.raises(ValidationError, match="it cannot be resumed"):
        services.journey_resume(journey=journey, context=EDITOR)
    assert services.journey_archive(journey=journey, context=EDITOR).status == "archived"
    with pytest.raises(ValidationError, match="archived journey cannot be published"):
        services.journey_publish(journey=journey, context=EDITOR)
