"""Reads of the journeys app; every function takes the workspace."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from engagement_site.workspaces.models import Workspace
from journeys.models import Enrollment, Journey, JourneyVersion, StepLog


def workspace_journeys(*, workspace: Workspace, status: str = "") -> QuerySet[Journey]:
    journeys = Journey.objects.filter(workspace=workspace).select_related("live_version")
    if status:
        journeys = journeys.filter(status=status)
    return journeys.order_by("-updated_at", "pk")


def journey_get(*, workspace: Workspace, journey_id: int) -> Journey:
    journey = (
        Journey.objects.filter(workspace=workspace, pk=journey_id)
        .select_related("live_version", "draft")
        .first()
    )
    if journey is None:
        raise Http404("No such journey in this workspace.")
    return journey


def journey_versions(*, workspace: Workspace, journey: Journey) -> QuerySet[JourneyVersion]:
    return JourneyVersion.objects.filter(journey__workspace=workspace, journey=journey).order_by(
        "-number"
    )


def journey_enrollments(
    *, workspace: Workspace, journey: Journey, state: str = ""
) -> QuerySet[Enrollment]:
    enrollments = Enrollment.objects.filter(workspace=workspace, journey=journey).select_related(
        "profile", "version"
    )
    if state:
        enrollments = enrollments.filter(state=state)
    return enrollments.order_by("-entered_at", "-pk")


def profile_trace(*, workspace: Workspace, profile_id: int) -> list[dict]:
    """Every journey the profile entered, newest first, each with its steps in order
    and, for messages not sent, why."""
    enrollments = list(
        Enrollment.objects.filter(workspace=workspace, profile_id=profile_id)
        .select_related("journey", "version")
        .order_by("-entered_at", "-pk")[:200]
    )
    steps: dict[int, list[StepLog]] = {}
    for step in StepLog.objects.filter(enrollment__in=enrollments).order_by("created_at", "pk"):
        steps.setdefault(step.enrollment_id, []).append(step)
    return [
        {"enrollment": enrollment, "steps": steps.get(enrollment.pk, [])}
        for enrollment in enrollments
    ]


def _template_ids_in(value) -> set[int]:
    """Template ids anywhere in a (possibly unfinished) definition's JSON."""
    found: set[int] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "template_id" and isinstance(item, int):
                found.add(item)
            elif key == "variant_templates" and isinstance(item, dict):
                found.update(v for v in item.values() if isinstance(v, int))
            else:
                found |= _template_ids_in(item)
    elif isinstance(value, list):
        for item in value:
            found |= _template_ids_in(item)
    return found


def journeys_using_template(*, workspace: Workspace, template) -> list[str]:
    """Names of the journeys whose draft or any published version sends the template."""
    names = set(
        JourneyVersion.objects.filter(
            journey__workspace=workspace, template_versions__has_key=str(template.pk)
        ).values_list("journey__name", flat=True)
    )
    for name, definition in Journey.objects.filter(workspace=workspace).values_list(
        "name", "draft__definition"
    ):
        if template.pk in _template_ids_in(definition):
            names.add(name)
    return sorted(names)
