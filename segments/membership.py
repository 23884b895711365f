"""Materialised membership of dynamic segments: SegmentMembership rows opened when a
profile starts matching a segment and closed (exited_at) when it stops; closed rows
are history and never reopened.

Two paths keep the rows current: the ingestion hook (segments_for_ingested_batch, for
the profiles a batch touched) and a full recompute (segment_membership_refresh without
profile_ids) for rules that change with time alone: sliding windows, streaks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.models import DurationField, ExpressionWrapper, F, Q
from django.utils import timezone

from segments.evaluation import segment_evaluate_all, segment_evaluate_for_profiles
from segments.models import Event, Segment, SegmentMembership
from segments.rules import (
    Attribute,
    Membership,
    RuleError,
    Sequence,
    iter_leaves,
    parse_definition,
)

logger = logging.getLogger(__name__)


def segment_membership_changed(
    *, segment: Segment, entered_ids: set[int], exited_ids: set[int], at: datetime
) -> None:
    """Profiles entered and left `segment` at `at`: the journey engine's segment
    triggers and waits for a segment change (one job queued here). Called after the membership rows are committed, once
    per refresh that changed something. For now it only logs; it must stay cheap and
    must not raise (enqueue jobs here, do not run them)."""
    from journeys.tasks import segment_change_enqueue

    segment_change_enqueue(
        workspace_id=segment.workspace_id,
        segment_id=segment.pk,
        entered_ids=sorted(entered_ids),
        exited_ids=sorted(exited_ids),
    )
    logger.info(
        "segment %s (workspace %s): %d entered, %d exited at %s",
        segment.pk,
        segment.workspace_id,
        len(entered_ids),
        len(exited_ids),
        at.isoformat(),
    )


def segment_membership_refresh(
    *,
    segment: Segment,
    profile_ids: Iterable[int] | None = None,
    now: datetime | None = None,
) -> tuple[set[int], set[int]]:
    """Re-evaluate a dynamic segment for all of its workspace's profiles (profile_ids
    None) or for the given ones, and open / close membership rows to match, in one
    transaction. Returns (entered_ids, exited_ids).

    Refreshes of one segment are serialised by a lock on its row, so the ingestion
    hook and a scheduled recompute cannot both open a row for the same profile.
    Static segments are left alone. Raises RuleError for an invalid definition."""
    if segment.kind != Segment.Kind.DYNAMIC:
        return set(), set()
    now = now or timezone.now()
    ids = None if profile_ids is None else sorted(set(profile_ids))
    with transaction.atomic():
        segment = (
            Segment.objects.select_related("workspace")
            .select_for_update(of=("self",))
            .get(pk=segment.pk)
        )
        if ids is None:
            matching = segment_evaluate_all(
                segment_or_definition=segment, workspace=segment.workspace, now=now
            )
        else:
            matching = segment_evaluate_for_profiles(
                segment_or_definition=segment,
                workspace=segment.workspace,
                profile_ids=ids,
                now=now,
            )
        open_rows = SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True)
        if ids is not None:
            open_rows = open_rows.filter(profile_id__in=ids)
        members = set(open_rows.values_list("profile_id", flat=True))
        entered, exited = matching - members, members - matching
        if exited:
            open_rows.filter(profile_id__in=exited).update(exited_at=now)
        SegmentMembership.objects.bulk_create(
            SegmentMembership(
                workspace_id=segment.workspace_id,
                segment=segment,
                profile_id=profile_id,
                entered_at=now,
            )
            for profile_id in sorted(entered)
        )
        segment.member_count = SegmentMembership.objects.filter(
            segment=segment, exited_at__isnull=True
        ).count()
        update_fields = ["member_count"]
        if ids is None:
            segment.last_computed_at = now
            segment.last_error = ""
            update_fields += ["last_computed_at", "last_error"]
        segment.save(update_fields=update_fields)
        if entered or exited or ids is None:
            segment_size_record(segment=segment, at=now, entered=len(entered), exited=len(exited))
        if entered or exited:
            transaction.on_commit(
                lambda: segment_membership_changed(
                    segment=segment, entered_ids=entered, exited_ids=exited, at=now
                )
            )
    return entered, exited


def segment_size_record(*, segment: Segment, at: datetime, entered: int, exited: int) -> None:
    """Upsert the segment's SegmentSize row for the hour of `at`: the current member
    count, plus this refresh's entries and exits."""
    hour = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO segments_segmentsize (segment_id, hour, member_count, entered, exited)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (segment_id, hour) DO UPDATE SET
                member_count = EXCLUDED.member_count,
                entered = segments_segmentsize.entered + EXCLUDED.entered,
                exited = segments_segmentsize.exited + EXCLUDED.exited
            """,
            [segment.pk, hour, segment.member_count, entered, exited],
        )


def segment_record_error(
    *, segment: Segment, error: Exception, now: datetime | None = None
) -> None:
    """A full recompute that could not run (an invalid definition, such as a membership
    rule naming a deleted segment): keep the reason for the segment page, and count the
    attempt so that the scheduler waits a full interval before trying again."""
    Segment.objects.filter(pk=segment.pk).update(
        last_error=str(error)[:2000], last_computed_at=now or timezone.now()
    )


# Calls that can change traits, profile columns or merge profiles (moving events of any
# name to the survivor): a batch with one of them may change any segment.
_PROFILE_CHANGING_TYPES = {Event.Type.IDENTIFY, Event.Type.ALIAS, Event.Type.GROUP}


def _leaves(segment: Segment) -> list:
    try:
        return list(iter_leaves(parse_definition(segment.definition)))
    except RuleError:
        return []  # refreshed anyway, so that the error is logged


def _depends_on_membership(segment: Segment) -> bool:
    return any(isinstance(leaf, Membership) for leaf in _leaves(segment))


def _is_affected(segment: Segment, event_names: set[str]) -> bool:
    """Whether a batch of track / page / screen calls with these event names can change
    the segment: rules on the profile (last_seen moves with every call) or on other
    segments always can; event rules only when they name one of the events."""
    leaves = _leaves(segment)
    if not leaves:
        return True
    for leaf in leaves:
        if isinstance(leaf, Attribute | Membership):
            return True
        if isinstance(leaf, Sequence):
            if {leaf.first.event, leaf.then.event} & event_names:
                return True
        elif getattr(leaf, "event", None) in event_names:
            return True
    return False


def segments_for_ingested_batch(
    *, workspace_id: int, profile_ids: list[int], event_ids: list[int]
) -> None:
    """Ingestion hook (settings.INGESTION_HOOKS): re-evaluate every dynamic segment of
    the workspace for the profiles the batch touched that the batch can affect (see
    _is_affected; every segment when the batch holds identify, alias or group calls).
    Idempotent: a second run finds the rows already matching.

    Segments that read other segments' membership run last, so they see this batch's
    changes to the segments they read (one level deep). A segment with an invalid
    definition is logged and skipped; the others still run."""
    if not profile_ids:
        return
    segments = list(
        Segment.objects.filter(workspace_id=workspace_id, kind=Segment.Kind.DYNAMIC)
        .select_related("workspace")
        .order_by("pk")
    )
    calls = set(
        Event.objects.filter(workspace_id=workspace_id, id__in=event_ids).values_list(
            "type", "name"
        )
    )
    if not event_ids or any(call_type in _PROFILE_CHANGING_TYPES for call_type, _ in calls):
        affected = segments
    else:
        event_names = {name for _, name in calls}
        affected = [segment for segment in segments if _is_affected(segment, event_names)]
    affected.sort(key=_depends_on_membership)
    for segment in affected:
        try:
            segment_membership_refresh(segment=segment, profile_ids=profile_ids)
        except RuleError:
            logger.exception("segment %s has an invalid definition; skipped", segment.pk)


def segments_due_for_recompute(*, now: datetime | None = None) -> list[int]:
    """Dynamic segments whose interval has passed since their last full evaluation (or
    that were never evaluated), oldest first. Time-based rules (sliding windows, streaks
    that break at midnight) need these full runs; the ingestion hook alone cannot see
    time pass."""
    now = now or timezone.now()
    due = Q(last_computed_at__isnull=True) | Q(
        last_computed_at__lte=now
        - ExpressionWrapper(
            F("recompute_interval_seconds") * timedelta(seconds=1), output_field=DurationField()
        )
    )
    return list(
        Segment.objects.filter(due, kind=Segment.Kind.DYNAMIC)
        .order_by(F("last_computed_at").asc(nulls_first=True))
        .values_list("pk", flat=True)
    )


def scheduler_duty() -> None:
    """Queue a full recompute for each due segment. A segment's job has a fixed id while
    it waits, so a slow worker never gets the same segment queued twice; segments fall
    due at their own times, which staggers them."""
    import django_rq

    from engagement_site.jobs import enqueue_unless_pending

    queue = django_rq.get_queue("default")
    for segment_id in segments_due_for_recompute():
        enqueue_unless_pending(
            queue,
            "segments.tasks.segment_recompute",
            segment_id,
            job_id=f"segment-recompute-{segment_id}",
            result_ttl=60,
            failure_ttl=3600,
        )
