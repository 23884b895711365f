"""Writes of the segments app (keyword-only, typed, audited where they change state).

Segments: create / update / delete dynamic segments, static segments from a CSV of ids
or emails or from a snapshot of another segment, and adding / removing members of a
static segment. Every write that a person (or an API key) makes is audited here.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import django_rq
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from engagement_site.workspaces.models import Workspace
from engagement_site.workspaces.services import AuditContext, audit_record
from segments.models import Identity, Profile, Segment, SegmentMembership
from segments.rules import Membership, Rule, RuleError, iter_leaves, parse_definition

MIN_RECOMPUTE_SECONDS = 60
MAX_RECOMPUTE_SECONDS = 7 * 24 * 3600
MAX_STATIC_CSV_BYTES = 20 * 1024 * 1024
MAX_STATIC_CSV_ROWS = 1_000_000
IDENTIFIER_COLUMNS = ("user_id", "email", "anonymous_id", "profile_id")


class SegmentInUse(ValidationError):
    """The segment is referenced by others (see selectors.segment_usages)."""


def segment_definition_check(
    *, workspace: Workspace, definition: Any, segment: Segment | None = None
) -> Rule:
    """Parse a definition and check its references: every membership rule names a
    segment of this workspace, never the segment itself, and no chain of membership
    rules leads back to it. Raises RuleError naming the problem."""
    rule = parse_definition(definition)
    referenced = {leaf.segment_id for leaf in iter_leaves(rule) if isinstance(leaf, Membership)}
    if not referenced:
        return rule
    others = {
        other.pk: other
        for other in Segment.objects.filter(workspace=workspace).only(
            "pk", "name", "kind", "definition"
        )
    }
    for segment_id in sorted(referenced):
        if segment is not None and segment_id == segment.pk:
            raise RuleError("a membership rule cannot name the segment itself")
        if segment_id not in others:
            raise RuleError(f"a membership rule names segment {segment_id}, which does not exist")
    if segment is not None:
        # Follow membership references from the referenced segments: reaching this
        # segment again would make membership depend on itself.
        seen, stack = set(), list(referenced)
        while stack:
            current = others.get(stack.pop())
            if current is None or current.pk in seen:
                continue
            seen.add(current.pk)
            for child in _referenced_segment_ids(current):
                if child == segment.pk:
                    raise RuleError(
                        f"a membership rule names {current.name!r}, which depends on "
                        "this segment: segments cannot depend on each other in a loop"
                    )
                stack.append(child)
    return rule


def _referenced_segment_ids(segment: Segment) -> set[int]:
    if segment.kind != Segment.Kind.DYNAMIC:
        return set()
    try:
        rule = parse_definition(segment.definition)
    except RuleError:
        return set()
    return {leaf.segment_id for leaf in iter_leaves(rule) if isinstance(leaf, Membership)}


def _check_name(*, workspace: Workspace, name: str, segment: Segment | None = None) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "A segment needs a name."})
    if len(name) > 200:
        raise ValidationError({"name": "A segment name has at most 200 characters."})
    clash = Segment.objects.filter(workspace=workspace, name=name)
    if segment is not None:
        clash = clash.exclude(pk=segment.pk)
    if clash.exists():
        raise ValidationError({"name": f"A segment named {name!r} already exists."})
    return name


def _check_interval(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError({"recompute_interval_seconds": "Needs a whole number of seconds."})
    if not MIN_RECOMPUTE_SECONDS <= value <= MAX_RECOMPUTE_SECONDS:
        raise ValidationError(
            {
                "recompute_interval_seconds": f"Must be between {MIN_RECOMPUTE_SECONDS} and "
                f"{MAX_RECOMPUTE_SECONDS} seconds."
            }
        )
    return value


def segment_recompute_enqueue(*, segment: Segment) -> None:
    """Queue a full evaluation of a dynamic segment after the current transaction
    commits (the scheduler's job id, so it is never queued twice)."""
    segment_id = segment.pk

    def enqueue() -> None:
        django_rq.get_queue("default", commit_mode="auto").enqueue(
            "segments.tasks.segment_recompute",
            segment_id,
            job_id=f"segment-recompute-{segment_id}",
            result_ttl=60,
            failure_ttl=3600,
        )

    transaction.on_commit(enqueue, robust=True)


def _audit_fields(segment: Segment) -> dict[str, Any]:
    return {
        "name": segment.name,
        "kind": segment.kind,
        "description": segment.description,
        "definition": segment.definition,
        "recompute_interval_seconds": segment.recompute_interval_seconds,
    }


def segment_create(
    *,
    workspace: Workspace,
    name: str,
    context: AuditContext,
    definition: Any,
    description: str = "",
    recompute_interval_seconds: int = 300,
) -> Segment:
    """Create a dynamic segment; its members are computed by a job queued on commit.
    Raises ValidationError (name, interval) or RuleError (definition)."""
    name = _check_name(workspace=workspace, name=name)
    interval = _check_interval(recompute_interval_seconds)
    segment_definition_check(workspace=workspace, definition=definition)
    with transaction.atomic():
        try:
            segment = Segment.objects.create(
                workspace=workspace,
                name=name,
                description=description or "",
                kind=Segment.Kind.DYNAMIC,
                definition=definition,
                recompute_interval_seconds=interval,
                created_by=context.actor,
            )
        except IntegrityError:  # a concurrent create took the name
            raise ValidationError({"name": f"A segment named {name!r} already exists."}) from None
        audit_record(
            context=context,
            action="segment.create",
            workspace=workspace,
            target=segment,
            changes=_audit_fields(segment),
        )
        segment_recompute_enqueue(segment=segment)
    return segment


def segment_update(*, segment: Segment, context: AuditContext, **fields: Any) -> Segment:
    """Change name, description, definition (dynamic only) or recompute interval. A new
    definition is re-evaluated at once (a job queued on commit); the members stay as
    they were until it runs. Raises ValidationError / RuleError."""
    allowed = {"name", "description", "definition", "recompute_interval_seconds"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValidationError(f"Cannot change {', '.join(sorted(unknown))}.")
    workspace = segment.workspace
    before = _audit_fields(segment)
    if "name" in fields:
        fields["name"] = _check_name(workspace=workspace, name=fields["name"], segment=segment)
    if "recompute_interval_seconds" in fields:
        fields["recompute_interval_seconds"] = _check_interval(fields["recompute_interval_seconds"])
    if "definition" in fields:
        if segment.kind != Segment.Kind.DYNAMIC:
            raise ValidationError(
                {"definition": "A static segment has no rule; its members are a fixed list."}
            )
        segment_definition_check(
            workspace=workspace, definition=fields["definition"], segment=segment
        )
    if "description" in fields:
        fields["description"] = fields["description"] or ""
    for key, value in fields.items():
        setattr(segment, key, value)
    after = _audit_fields(segment)
    changes = {key: [before[key], after[key]] for key in after if before[key] != after[key]}
    if not changes:
        return segment
    redefined = "definition" in changes
    with transaction.atomic():
        if redefined:
            segment.last_error = ""
        try:
            segment.save()
        except IntegrityError:
            raise ValidationError(
                {"name": f"A segment named {segment.name!r} already exists."}
            ) from None
        audit_record(
            context=context,
            action="segment.update",
            workspace=workspace,
            target=segment,
            changes=changes,
        )
        if redefined:
            segment_recompute_enqueue(segment=segment)
    return segment


def segment_delete(*, segment: Segment, context: AuditContext) -> None:
    """Delete a segment and its membership history. Refused (SegmentInUse) while other
    segments use it."""
    from segments.selectors import segment_usages

    usages = segment_usages(workspace=segment.workspace, segment=segment)
    if usages:
        names = ", ".join(usage.name for usage in usages)
        raise SegmentInUse(f"{segment.name!r} is used by {names}: change those first.")
    with transaction.atomic():
        audit_record(
            context=context,
            action="segment.delete",
            workspace=segment.workspace,
            target=segment,
            changes={**_audit_fields(segment), "member_count": segment.member_count},
        )
        segment.delete()


# --------------------------------------------------------------------------- static


@dataclass
class CsvMatchReport:
    """What a CSV of identifiers resolved to."""

    column: str = ""
    rows: int = 0
    matched: int = 0
    duplicates: int = 0
    unmatched: int = 0
    unmatched_examples: list[str] = field(default_factory=list)
    profile_ids: set[int] = field(default_factory=set)


def _read_csv(data: bytes) -> tuple[str, list[str]]:
    """The identifier column of a CSV (by its header, or a single unnamed column) and
    its non-empty values. Raises ValidationError naming what is wrong."""
    if len(data) > MAX_STATIC_CSV_BYTES:
        raise ValidationError(
            {"file": f"The file is {len(data)} bytes; at most {MAX_STATIC_CSV_BYTES} are taken."}
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError({"file": "The file is not UTF-8 text."}) from None
    if "\x00" in text:
        raise ValidationError({"file": "The file is binary, not CSV text."})
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as error:
        raise ValidationError({"file": f"The CSV cannot be read: {error}."}) from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise ValidationError({"file": "The file is empty."})
    header = [cell.strip().lower() for cell in rows[0]]
    column = next((name for name in IDENTIFIER_COLUMNS if name in header), None)
    if column is not None:
        index = header.index(column)
        body = rows[1:]
    elif len(header) == 1:
        # One column without a known header: emails if the first value looks like one.
        index, body = 0, rows
        column = "email" if "@" in rows[0][0] else "user_id"
    else:
        raise ValidationError(
            {
                "file": "No identifier column: name one of the columns "
                + ", ".join(IDENTIFIER_COLUMNS)
                + "."
            }
        )
    if len(body) > MAX_STATIC_CSV_ROWS:
        raise ValidationError({"file": f"The file has more than {MAX_STATIC_CSV_ROWS} rows."})
    values = [row[index].strip() for row in body if index < len(row) and row[index].strip()]
    if not values:
        raise ValidationError({"file": f"The {column} column holds no values."})
    return column, values


def profiles_match_identifiers(
    *, workspace: Workspace, column: str, values: list[str]
) -> CsvMatchReport:
    """Resolve user ids (including ids merged into another profile), emails (ignoring
    case), anonymous ids or profile ids to the workspace's profiles."""
    report = CsvMatchReport(column=column, rows=len(values))
    unique: list[str] = []
    seen: set[str] = set()
    for value in values:
        key = value.lower() if column == "email" else value
        if key in seen:
            report.duplicates += 1
        else:
            seen.add(key)
            unique.append(key)
    found: dict[str, int] = {}
    for start in range(0, len(unique), 10_000):
        chunk = unique[start : start + 10_000]
        if column == "email":
            rows = (
                Profile.objects.filter(workspace=workspace)
                .annotate(email_lower=Lower("email"))
                .filter(email_lower__in=chunk)
                .values_list("email_lower", "pk")
            )
        elif column == "profile_id":
            numbers = [int(value) for value in chunk if value.isdigit() and len(value) < 19]
            rows = [
                (str(pk), pk)
                for pk in Profile.objects.filter(workspace=workspace, pk__in=numbers).values_list(
                    "pk", flat=True
                )
            ]
        else:
            rows = Identity.objects.filter(
                workspace=workspace, kind=column, value__in=chunk
            ).values_list("value", "profile_id")
        found.update(rows)
    for value in unique:
        if value in found:
            report.profile_ids.add(found[value])
        else:
            report.unmatched += 1
            if len(report.unmatched_examples) < 5:
                report.unmatched_examples.append(value[:100])
    report.matched = len(unique) - report.unmatched
    return report


def _static_members_add(*, segment: Segment, profile_ids: Iterable[int], at) -> int:
    """Open membership rows for those profiles that are not members yet."""
    profile_ids = set(profile_ids)
    members = set(
        SegmentMembership.objects.filter(
            segment=segment, exited_at__isnull=True, profile_id__in=profile_ids
        ).values_list("profile_id", flat=True)
    )
    new = sorted(profile_ids - members)
    SegmentMembership.objects.bulk_create(
        (
            SegmentMembership(
                workspace_id=segment.workspace_id, segment=segment, profile_id=pk, entered_at=at
            )
            for pk in new
        ),
        batch_size=5000,
    )
    return len(new)


def _static_finish(*, segment: Segment, entered: set[int], exited: set[int], at) -> None:
    from segments.membership import segment_membership_changed, segment_size_record

    segment.member_count = SegmentMembership.objects.filter(
        segment=segment, exited_at__isnull=True
    ).count()
    segment.last_computed_at = at
    segment.save(update_fields=["member_count", "last_computed_at", "updated_at"])
    segment_size_record(segment=segment, at=at, entered=len(entered), exited=len(exited))
    if entered or exited:
        transaction.on_commit(
            lambda: segment_membership_changed(
                segment=segment, entered_ids=entered, exited_ids=exited, at=at
            )
        )


def _static_create(
    *, workspace: Workspace, name: str, description: str, source: str, context: AuditContext
) -> Segment:
    try:
        with transaction.atomic():
            return Segment.objects.create(
                workspace=workspace,
                name=name,
                description=description,
                kind=Segment.Kind.STATIC,
                definition={},
                source=source,
                created_by=context.actor,
            )
    except IntegrityError:  # a concurrent create took the name
        raise ValidationError({"name": f"A segment named {name!r} already exists."}) from None


def static_segment_create_from_csv(
    *,
    workspace: Workspace,
    name: str,
    data: bytes,
    filename: str,
    context: AuditContext,
    description: str = "",
) -> tuple[Segment, CsvMatchReport]:
    """A static segment of the profiles a CSV names (a user_id, email, anonymous_id or
    profile_id column; or one unnamed column). Rows naming nobody are counted, not
    fatal; a file that matches nobody is refused, and nothing is stored."""
    name = _check_name(workspace=workspace, name=name)
    column, values = _read_csv(data)
    report = profiles_match_identifiers(workspace=workspace, column=column, values=values)
    if not report.profile_ids:
        raise ValidationError(
            {"file": f"None of the {report.rows} values in the {column} column is a known profile."}
        )
    now = timezone.now()
    with transaction.atomic():
        segment = _static_create(
            workspace=workspace,
            name=name,
            description=description or "",
            source=f"CSV upload: {filename}"[:200],
            context=context,
        )
        _static_members_add(segment=segment, profile_ids=report.profile_ids, at=now)
        _static_finish(segment=segment, entered=report.profile_ids, exited=set(), at=now)
        audit_record(
            context=context,
            action="segment.create",
            workspace=workspace,
            target=segment,
            changes={
                "kind": "static",
                "source": segment.source,
                "column": column,
                "rows": report.rows,
                "matched": report.matched,
                "unmatched": report.unmatched,
            },
        )
    return segment, report


def static_segment_snapshot(
    *, segment: Segment, name: str, context: AuditContext, description: str = ""
) -> Segment:
    """Freeze a segment's current members into a new static segment."""
    workspace = segment.workspace
    name = _check_name(workspace=workspace, name=name)
    now = timezone.now()
    with transaction.atomic():
        members = set(
            SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True).values_list(
                "profile_id", flat=True
            )
        )
        snapshot = _static_create(
            workspace=workspace,
            name=name,
            description=description or f"Members of {segment.name} on {now:%Y-%m-%d %H:%M} UTC",
            source=f"Snapshot of {segment.name}"[:200],
            context=context,
        )
        _static_members_add(segment=snapshot, profile_ids=members, at=now)
        _static_finish(segment=snapshot, entered=members, exited=set(), at=now)
        audit_record(
            context=context,
            action="segment.snapshot",
            workspace=workspace,
            target=snapshot,
            changes={"from_segment": segment.pk, "members": len(members)},
        )
    return snapshot


def static_segment_members_change(
    *,
    segment: Segment,
    add: Iterable[int] = (),
    remove: Iterable[int] = (),
    context: AuditContext | None = None,
) -> tuple[set[int], set[int]]:
    """Add and remove members of a static segment (profile ids of its workspace; others
    are ignored). Returns (entered, exited). Idempotent: adding a member or removing a
    non-member changes nothing. Audited when a context is given (journeys pass none:
    their step log records it)."""
    if segment.kind != Segment.Kind.STATIC:
        raise ValidationError("Only a static segment's members can be changed by hand.")
    now = timezone.now()
    add, remove = set(add), set(remove)
    if add & remove:
        raise ValidationError("A profile cannot be both added and removed.")
    with transaction.atomic():
        segment = Segment.objects.select_for_update().get(pk=segment.pk)
        valid = set(
            Profile.objects.filter(
                workspace_id=segment.workspace_id, pk__in=add | remove
            ).values_list("pk", flat=True)
        )
        add, remove = add & valid, remove & valid
        open_rows = SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True)
        exited = set(open_rows.filter(profile_id__in=remove).values_list("profile_id", flat=True))
        if exited:
            open_rows.filter(profile_id__in=exited).update(exited_at=now)
        members = set(open_rows.filter(profile_id__in=add).values_list("profile_id", flat=True))
        entered = add - members
        _static_members_add(segment=segment, profile_ids=entered, at=now)
        if entered or exited:
            _static_finish(segment=segment, entered=entered, exited=exited, at=now)
            if context is not None:
                audit_record(
                    context=context,
                    # AuditLog.action holds at most 20 characters.
                    action="segment.members",
                    workspace=segment.workspace,
                    target=segment,
                    changes={"added": len(entered), "removed": len(exited)},
                )
    return entered, exited
