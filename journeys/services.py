"""Writes of the journeys app (keyword-only, typed, audited).

Journeys: create, save the draft (with conflict detection), check it, publish it as a
version (pinning the template versions it sends; users in flight stay on their version
or are moved by a node mapping), pause, resume, stop, archive.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from engagement_site.workspaces.models import Workspace
from engagement_site.workspaces.services import AuditContext, audit_record
from journeys.graph import (
    DefinitionError,
    GraphError,
    check_definition,
    segment_ids,
    template_ids,
)
from journeys.models import Enrollment, Journey, JourneyDraft, JourneyVersion
from journeys.nodes import Definition, WaitNode

MAX_NAME_LENGTH = 200
IN_FLIGHT_CHOICES = ("stay", "migrate")


class DraftConflict(ValidationError):
    """Someone saved the draft after the editor loaded it."""


class JourneyStateError(ValidationError):
    """The journey's status does not allow this (e.g. resume a journey that is live)."""


def empty_definition() -> dict[str, Any]:
    return {"nodes": [], "edges": [], "settings": {}}


def _check_name(*, workspace: Workspace, name: str, journey: Journey | None = None) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "A journey needs a name."})
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationError({"name": f"Names are at most {MAX_NAME_LENGTH} characters."})
    others = Journey.objects.filter(workspace=workspace, name=name)
    if journey is not None:
        others = others.exclude(pk=journey.pk)
    if others.exists():
        raise ValidationError({"name": f"A journey named {name!r} already exists."})
    return name


def journey_create(
    *,
    workspace: Workspace,
    name: str,
    context: AuditContext,
    description: str = "",
    definition: dict | None = None,
    layout: dict | None = None,
) -> Journey:
    """A new journey in draft, with its (possibly empty) draft definition."""
    name = _check_name(workspace=workspace, name=name)
    definition = definition if definition is not None else empty_definition()
    if not isinstance(definition, dict):
        raise ValidationError({"definition": "A definition is a JSON object."})
    with transaction.atomic():
        try:
            journey = Journey.objects.create(
                workspace=workspace,
                name=name,
                description=(description or "")[:500],
                created_by=context.actor,
            )
        except IntegrityError:
            raise ValidationError({"name": f"A journey named {name!r} already exists."}) from None
        JourneyDraft.objects.create(
            journey=journey, definition=definition, layout=layout or {}, updated_by=context.actor
        )
        audit_record(context=context, action="journey.create", workspace=workspace, target=journey)
    return journey


COPY_SUFFIX = " (copy)"


def _copy_name(*, workspace: Workspace, name: str) -> str:
    """`name (copy)`, or `name (copy 2)`, `name (copy 3)`... the first one no journey of
    the workspace has; the name is shortened so the suffix fits."""
    taken = set(Journey.objects.filter(workspace=workspace).values_list("name", flat=True))
    number = 1
    while True:
        suffix = COPY_SUFFIX if number == 1 else f" (copy {number})"
        candidate = name[: MAX_NAME_LENGTH - len(suffix)].rstrip() + suffix
        if candidate not in taken:
            return candidate
        number += 1


def journey_duplicate(
    *, journey: Journey, context: AuditContext, name: str | None = None
) -> Journey:
    """A new draft journey with a copy of the journey's draft definition and layout (not
    of its versions, enrollments or status). Named `name`, or by default the journey's
    name with " (copy)" (numbered when that is taken)."""
    import copy

    workspace = journey.workspace
    draft = JourneyDraft.objects.get(journey=journey)
    if name is None:
        name = _copy_name(workspace=workspace, name=journey.name)
    with transaction.atomic():
        duplicate = journey_create(
            workspace=workspace,
            name=name,
            context=context,
            description=journey.description,
            definition=copy.deepcopy(draft.definition),
            layout=copy.deepcopy(draft.layout),
        )
        audit_record(
            context=context,
            action="journey.duplicate",
            workspace=workspace,
            target=duplicate,
            changes={"source": journey.pk, "source_name": journey.name},
        )
    return duplicate


def journey_draft_save(
    *,
    journey: Journey,
    context: AuditContext,
    definition: dict,
    layout: dict | None = None,
    base_revision: int | None = None,
) -> JourneyDraft:
    """Store the draft as it is (it may be incomplete: check it with journey_check).
    With `base_revision`, a save made by someone else since then raises DraftConflict
    and nothing is written."""
    if not isinstance(definition, dict):
        raise ValidationError({"definition": "A definition is a JSON object."})
    if layout is not None and not isinstance(layout, dict):
        raise ValidationError({"layout": "A layout is a JSON object."})
    with transaction.atomic():
        draft = JourneyDraft.objects.select_for_update().get(journey=journey)
        if base_revision is not None and base_revision != draft.revision:
            by = draft.updated_by.get_username() if draft.updated_by else "someone else"
            raise DraftConflict(
                f"{by} saved revision {draft.revision} after you opened revision "
                f"{base_revision}. Reload to see their changes; yours were not saved."
            )
        if draft.definition == definition and (layout is None or draft.layout == layout):
            return draft
        draft.definition = definition
        if layout is not None:
            draft.layout = layout
        draft.revision += 1
        draft.updated_by = context.actor
        draft.updated_at = timezone.now()
        draft.save(update_fields=["definition", "layout", "revision", "updated_by", "updated_at"])
        Journey.objects.filter(pk=journey.pk).update(updated_at=draft.updated_at)
        audit_record(
            context=context,
            action="journey.draft_save",
            workspace=journey.workspace,
            target=journey,
            changes={"revision": draft.revision},
        )
    return draft


def _reference_errors(*, workspace: Workspace, definition: Definition) -> list[GraphError]:
    """Templates and segments the definition names must exist in the workspace (and a
    template must suit the channel its node sends on)."""
    from content.models import Template
    from segments.models import Segment

    errors: list[GraphError] = []
    templates = {
        template.pk: template
        for template in Template.objects.filter(
            workspace=workspace, pk__in=template_ids(definition)
        )
    }
    segments = {
        segment.pk: segment
        for segment in Segment.objects.filter(workspace=workspace, pk__in=segment_ids(definition))
    }
    for node in definition.nodes:
        wanted: list[tuple[int, str]] = []
        action = getattr(node, "action", None)
        if action is not None and action.kind == "message":
            wanted.append((action.template_id, action.channel))
            wanted.extend(
                (template_id, action.channel) for template_id in action.variant_templates.values()
            )
        elif action is not None and action.kind == "webhook":
            wanted.append((action.template_id, "webhook"))
        for step in getattr(node, "chain", []):
            wanted.append((step.template_id, step.channel))
        for template_id, channel in wanted:
            template = templates.get(template_id)
            if template is None:
                errors.append(GraphError(node.id, f"template {template_id} does not exist"))
            elif template.archived_at is not None:
                errors.append(GraphError(node.id, f"template {template.name!r} is archived"))
            elif template.channel != channel:
                errors.append(
                    GraphError(
                        node.id,
                        f"template {template.name!r} is a {template.get_channel_display()} "
                        f"template, not {channel}",
                    )
                )
        for part in (getattr(node, "trigger", None), getattr(node, "wait", None), action):
            segment_id = getattr(part, "segment_id", None)
            if not segment_id:
                continue
            segment = segments.get(segment_id)
            if segment is None:
                errors.append(GraphError(node.id, f"segment {segment_id} does not exist"))
            elif part is action and segment.kind != Segment.Kind.STATIC:
                errors.append(
                    GraphError(
                        node.id,
                        f"segment {segment.name!r} is dynamic; only static segments take members",
                    )
                )
    return errors


def journey_check(*, journey: Journey, definition: dict | None = None) -> Definition:
    """Check a definition (default: the draft) fully. Raises DefinitionError with
    every problem, each naming its node."""
    if definition is None:
        definition = journey.draft.definition
    parsed = check_definition(definition)
    errors = _reference_errors(workspace=journey.workspace, definition=parsed)
    if errors:
        raise DefinitionError(errors)
    return parsed


def _node_mapping(
    *, old: Definition, new: Definition, node_map: dict[str, str], occupied: set[str]
) -> dict[str, str]:
    """Where profiles at each old node go: the node with the same id, else the one the
    person chose. Raises DefinitionError for a node with profiles and no target."""
    new_ids = {node.id for node in new.nodes}
    mapping: dict[str, str] = {}
    errors: list[GraphError] = []
    for node in old.nodes:
        target = node_map.get(node.id) or (node.id if node.id in new_ids else None)
        if target is not None and target not in new_ids:
            errors.append(
                GraphError(node.id, f"is mapped to {target!r}, which the new version does not have")
            )
        elif target is None and node.id in occupied:
            errors.append(
                GraphError(
                    node.id, "was removed and profiles are there: choose the node they move to"
                )
            )
        elif target is not None:
            mapping[node.id] = target
    if errors:
        raise DefinitionError(errors)
    return mapping


def journey_publish(
    *,
    journey: Journey,
    context: AuditContext,
    in_flight: str = "stay",
    node_map: dict[str, str] | None = None,
    note: str = "",
) -> JourneyVersion:
    """Freeze the draft as the next version and make it live.

    The template versions it sends are pinned now: editing a template later does not
    change this version. Profiles already in the journey either stay on the version
    they entered (`stay`) or move to the new one (`migrate`): to the node with the same
    id, or to the node `node_map` names for nodes the new version removed."""
    from content.services import template_version_for_publish

    if in_flight not in IN_FLIGHT_CHOICES:
        raise ValidationError({"in_flight": f"Use one of {', '.join(IN_FLIGHT_CHOICES)}."})
    node_map = dict(node_map or {})
    with transaction.atomic():
        journey = Journey.objects.select_for_update().get(pk=journey.pk)
        if journey.status == Journey.Status.ARCHIVED:
            raise JourneyStateError("An archived journey cannot be published; unarchive it first.")
        draft = JourneyDraft.objects.get(journey=journey)
        definition = journey_check(journey=journey, definition=draft.definition)
        pins = {
            str(template_id): template_version_for_publish(
                workspace=journey.workspace, template_id=template_id
            ).pk
            for template_id in sorted(template_ids(definition))
        }
        last = journey.versions.order_by("-number").values_list("number", flat=True).first() or 0
        version = JourneyVersion.objects.create(
            journey=journey,
            number=last + 1,
            definition=definition.model_dump(mode="json"),
            template_versions=pins,
            note=(note or "")[:200],
            published_by=context.actor,
        )
        previous = journey.live_version
        moved = 0
        if previous is not None and in_flight == "migrate":
            moved = _migrate(previous=previous, version=version, new=definition, node_map=node_map)
        journey.live_version = version
        journey.status = Journey.Status.LIVE
        journey.paused_reason = ""
        journey.updated_at = timezone.now()
        journey.save(update_fields=["live_version", "status", "paused_reason", "updated_at"])
        audit_record(
            context=context,
            action="journey.publish",
            workspace=journey.workspace,
            target=journey,
            changes={
                "version": version.number,
                "from_version": previous.number if previous else None,
                "in_flight": in_flight if previous else None,
                "moved": moved,
                "node_map": node_map,
                "templates": pins,
            },
        )
    return version


def _migrate(
    *, previous: JourneyVersion, version: JourneyVersion, new: Definition, node_map: dict
) -> int:
    """Move the open enrollments of every earlier version to `version`."""
    from journeys.graph import parse_definition

    now = timezone.now()
    moved = 0
    open_enrollments = Enrollment.objects.filter(
        journey_id=version.journey_id, state__in=Enrollment.OPEN_STATES
    ).exclude(version=version)
    by_version: dict[int, set[str]] = {}
    for version_id, node in open_enrollments.values_list("version_id", "current_node").distinct():
        by_version.setdefault(version_id, set()).add(node)
    new_nodes = {node.id: node for node in new.nodes}
    for old_version in JourneyVersion.objects.filter(pk__in=by_version):
        old = parse_definition(old_version.definition)
        old_nodes = {node.id: node for node in old.nodes}
        mapping = _node_mapping(
            old=old, new=new, node_map=node_map, occupied=by_version[old_version.pk]
        )
        for source, target in mapping.items():
            rows = open_enrollments.filter(version=old_version, current_node=source)
            same_kind = (
                source == target
                and isinstance(old_nodes[source], WaitNode)
                and isinstance(new_nodes[target], WaitNode)
                and old_nodes[source].wait == new_nodes[target].wait
            )
            if same_kind:
                # Waiting at an unchanged wait: keep the place and the wake-up time.
                moved += rows.update(version=version, updated_at=now)
            else:
                moved += rows.update(
                    version=version,
                    current_node=target,
                    state=Enrollment.State.ACTIVE,
                    next_run_at=now,
                    locked_until=None,
                    updated_at=now,
                )
    return moved


def _set_status(
    *,
    journey: Journey,
    context: AuditContext,
    status: str,
    allowed_from: tuple[str, ...],
    action: str,
    verb: str,
    changes: dict | None = None,
) -> Journey:
    with transaction.atomic():
        journey = Journey.objects.select_for_update().get(pk=journey.pk)
        if journey.status not in allowed_from:
            raise JourneyStateError(
                f"The journey is {journey.get_status_display().lower()}; it cannot be {verb}."
            )
        journey.status = status
        if status != Journey.Status.PAUSED:
            journey.paused_reason = ""
        journey.updated_at = timezone.now()
        journey.save(update_fields=["status", "paused_reason", "updated_at"])
        audit_record(
            context=context,
            action=action,
            workspace=journey.workspace,
            target=journey,
            changes=changes or {},
        )
    return journey


def journey_pause(*, journey: Journey, context: AuditContext, reason: str = "") -> Journey:
    """Stop advancing: nobody enters, nobody moves; waits keep their place."""
    journey = _set_status(
        journey=journey, context=context, status=Journey.Status.PAUSED,
        allowed_from=(Journey.Status.LIVE,), action="journey.pause", verb="paused",
        changes={"reason": reason} if reason else None,
    )  # fmt: skip
    if reason:
        Journey.objects.filter(pk=journey.pk).update(paused_reason=reason[:2000])
        journey.paused_reason = reason[:2000]
    return journey


def journey_resume(*, journey: Journey, context: AuditContext) -> Journey:
    """Continue: entries resume, and enrollments whose time came while paused run now."""
    return _set_status(
        journey=journey, context=context, status=Journey.Status.LIVE,
        allowed_from=(Journey.Status.PAUSED,), action="journey.resume", verb="resumed",
    )  # fmt: skip


def journey_stop(*, journey: Journey, context: AuditContext) -> Journey:
    """End the journey: nobody enters again and everyone in it exits now."""
    with transaction.atomic():
        journey = _set_status(
            journey=journey, context=context, status=Journey.Status.STOPPED,
            allowed_from=(Journey.Status.LIVE, Journey.Status.PAUSED), action="journey.stop", verb="stopped",
        )  # fmt: skip
        now = timezone.now()
        exited = Enrollment.objects.filter(
            journey=journey, state__in=Enrollment.OPEN_STATES
        ).update(
            state=Enrollment.State.EXITED,
            exit_reason="journey_stopped",
            exited_at=now,
            next_run_at=None,
            locked_until=None,
            updated_at=now,
        )
        audit_record(
            context=context, action="journey.exit_all", workspace=journey.workspace, target=journey,
            changes={"exited": exited},
        )  # fmt: skip
    return journey


def journey_archive(*, journey: Journey, context: AuditContext) -> Journey:
    """Hide a journey that is not running (draft or stopped)."""
    return _set_status(
        journey=journey, context=context, status=Journey.Status.ARCHIVED,
        allowed_from=(Journey.Status.DRAFT, Journey.Status.STOPPED), action="journey.archive", verb="archived",
    )  # fmt: skip


def journey_enroll(
    *, journey: Journey, profile_id: int, context: AuditContext, properties: dict | None = None
) -> Enrollment | None:
    """Enter a profile into a live journey with an API trigger. Returns the enrollment,
    or None when the journey's entry rules keep the profile out (already in it,
    re-entry, entry limit)."""
    from journeys.executor import enroll, version_definition
    from journeys.nodes import ApiTrigger, TriggerNode
    from segments.models import Profile

    if journey.status != Journey.Status.LIVE or journey.live_version is None:
        raise JourneyStateError("Only a live journey takes entries.")
    definition = version_definition(journey.live_version)
    trigger = next(node for node in definition.nodes if isinstance(node, TriggerNode)).trigger
    if not isinstance(trigger, ApiTrigger):
        raise JourneyStateError("This journey starts from its own trigger, not from the API.")
    if not Profile.objects.filter(workspace_id=journey.workspace_id, pk=profile_id).exists():
        raise ValidationError({"profile_id": "No such profile in this workspace."})
    with transaction.atomic():
        enrollment = enroll(
            journey=journey,
            version=journey.live_version,
            profile_id=profile_id,
            event={"name": "api", "properties": properties or {}},
        )
        if enrollment is not None:
            audit_record(
                context=context,
                action="journey.enroll",
                workspace=journey.workspace,
                target=journey,
                changes={"profile_id": profile_id, "enrollment": enrollment.pk},
            )
    return enrollment


def journey_update(
    *,
    journey: Journey,
    context: AuditContext,
    name: str | None = None,
    description: str | None = None,
) -> Journey:
    changes: dict[str, Any] = {}
    if name is not None and name.strip() != journey.name:
        changes["name"] = [
            journey.name,
            _check_name(workspace=journey.workspace, name=name, journey=journey),
        ]
        journey.name = changes["name"][1]
    if description is not None and description != journey.description:
        changes["description"] = [journey.description, description[:500]]
        journey.description = description[:500]
    if not changes:
        return journey
    with transaction.atomic():
        try:
            journey.save(update_fields=["name", "description"])
        except IntegrityError:
            raise ValidationError(
                {"name": f"A journey named {journey.name!r} already exists."}
            ) from None
        audit_record(
            context=context,
            action="journey.update",
            workspace=journey.workspace,
            target=journey,
            changes=changes,
        )
    return journey


MAX_SIMULATED = 10_000


def journey_simulate(
    *,
    journey: Journey,
    definition: dict | None = None,
    segment_id: int | None = None,
    profile_ids: list[int] | None = None,
    sample: int | None = None,
    generated: dict | None = None,
    start=None,
):
    """Run the draft (or `definition`) over the members of a segment, given profiles,
    a sample of the most recently seen profiles, or generated ones, on simulated time.
    Sends nothing, stores nothing. Raises DefinitionError for a draft that does not
    check, ValidationError for an audience that is not one."""
    from pydantic import ValidationError as PydanticError

    from journeys.simulation import GeneratedAudience, generated_profiles_create, simulate
    from segments.models import Profile, Segment, SegmentMembership

    workspace = journey.workspace
    parsed = journey_check(journey=journey, definition=definition)
    chosen = [value is not None for value in (segment_id, profile_ids, sample, generated)]
    if sum(chosen) != 1:
        raise ValidationError(
            {"audience": "Give one of segment_id, profile_ids, sample or generated."}
        )
    start = start or timezone.now()
    if generated is not None:
        try:
            audience = GeneratedAudience.model_validate(generated)
        except PydanticError as error:
            raise ValidationError(
                {
                    "generated": [
                        f"{'.'.join(str(part) for part in problem['loc']) or 'generated'}: "
                        f"{problem['msg']}"
                        for problem in error.errors()
                    ]
                }
            ) from None
        # The made-up profiles and events live only inside this savepoint.
        with transaction.atomic():
            ids = generated_profiles_create(workspace=workspace, audience=audience, start=start)
            result = simulate(
                workspace=workspace,
                definition=parsed,
                journey_id=journey.pk,
                profile_ids=ids,
                start=start,
                generated=True,
            )
            transaction.set_rollback(True)
        return result
    if segment_id is not None:
        if not Segment.objects.filter(workspace=workspace, pk=segment_id).exists():
            raise ValidationError({"segment_id": "No such segment in this workspace."})
        ids = list(
            SegmentMembership.objects.filter(
                workspace=workspace, segment_id=segment_id, exited_at__isnull=True
            )
            .order_by("profile_id")
            .values_list("profile_id", flat=True)[:MAX_SIMULATED]
        )
    elif profile_ids is not None:
        ids = list(
            Profile.objects.filter(
                workspace=workspace, pk__in=profile_ids[:MAX_SIMULATED]
            ).values_list("pk", flat=True)
        )
    else:
        ids = list(
            Profile.objects.filter(workspace=workspace)
            .order_by("-last_seen", "-id")
            .values_list("pk", flat=True)[: min(sample, MAX_SIMULATED)]
        )
    return simulate(
        workspace=workspace,
        definition=parsed,
        journey_id=journey.pk,
        profile_ids=ids,
        start=start,
    )
