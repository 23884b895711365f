"""The journey executor: entering profiles, and advancing enrollments node by node.

The database is the source of truth. An enrollment that can move is `active` with
`next_run_at <= now`, or `waiting` whose `next_run_at` (the end of a wait, or a
timeout) has come. Workers claim due enrollments with a conditional UPDATE that sets
a lease (`locked_until`) on rows no one holds (`FOR UPDATE SKIP LOCKED`), then advance
each in its own transaction: every node executed writes its StepLog row (unique per
enrollment, node and visit) in the same transaction as the enrollment's new state, so
a crash rolls both back and a replay cannot do a step twice. A killed worker's lease
expires and the scheduler hands the enrollment to another worker.

Entries and wake-ups come from the ingestion hook (`journeys_for_ingested_batch`):
events that match an event trigger enrol their profile; events that match what a
waiting enrollment waits for wake it; events that match a journey's conversion goal
exit the profile as converted.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from engagement_site.database import (
    connection_lost,
    connection_replace,
    retry_on_connection_loss,
)
from engagement_site.jobs import get_queue
from journeys.graph import next_node, parse_definition
from journeys.matching import filters_match
from journeys.models import Enrollment, Journey, JourneyVersion, StepLog
from journeys.nodes import (
    ActionNode,
    ConditionNode,
    Definition,
    EventCondition,
    EventTrigger,
    ExitNode,
    FallbackNode,
    GoalNode,
    RuleCondition,
    SplitNode,
    TriggerNode,
    WaitDuration,
    WaitForEvent,
    WaitForSegment,
    WaitNode,
    WaitUntilDate,
    WaitUntilTime,
)

logger = logging.getLogger(__name__)

# How long a claim holds (settings.JOURNEY_LEASE_SECONDS, 5 minutes by default).
LEASE = timedelta(seconds=settings.JOURNEY_LEASE_SECONDS)
CLAIM_BATCH = 500
COMMIT_GROUP = 25
MAX_STEPS_PER_RUN = 100
MAX_ATTEMPTS = 5
RETRY_DELAYS = (30, 120, 600, 1800)
GOAL_NODE = "$goal"
BREAKER_FAILURES = 10
BREAKER_WINDOW = timedelta(minutes=10)
JOURNEYS_QUEUE = "journeys"
FALLBACK_RECHECK = timedelta(minutes=15)

_definitions: dict[int, Definition] = {}


def version_definition(version: JourneyVersion) -> Definition:
    """Published versions never change: parse each once per process."""
    definition = _definitions.get(version.pk)
    if definition is None:
        definition = _definitions[version.pk] = parse_definition(version.definition)
    return definition


def _node(definition: Definition, node_id: str):
    for node in definition.nodes:
        if node.id == node_id:
            return node
    raise KeyError(node_id)


def _event_data(event) -> dict[str, Any]:
    return {
        "id": event.id,
        "name": event.name,
        "timestamp": event.timestamp.isoformat(),
        "properties": event.properties if isinstance(event.properties, dict) else {},
    }


# --------------------------------------------------------------------------- entering


def _may_enter(*, journey: Journey, definition: Definition, profile_id: int, now: datetime) -> bool:
    reentry = definition.settings.reentry
    previous = Enrollment.objects.filter(journey=journey, profile_id=profile_id)
    if previous.filter(state__in=Enrollment.OPEN_STATES).exists():
        return False  # one enrollment at a time per journey and person
    if reentry.mode == "never" and previous.exists():
        return False
    if reentry.mode == "after_days":
        last = previous.order_by("-entered_at").values_list("entered_at", flat=True).first()
        if last is not None and last > now - timedelta(days=reentry.days):
            return False
    limit = definition.settings.entry_limit
    return not (limit is not None and Enrollment.objects.filter(journey=journey).count() >= limit)


def enroll(
    *,
    journey: Journey,
    version: JourneyVersion,
    profile_id: int,
    event=None,
    now: datetime | None = None,
    enqueue: bool = True,
) -> Enrollment | None:
    """Enter a profile at the trigger, if the journey's entry rules allow. The caller
    holds a transaction; the enrollment is advanced by a job queued on commit (or, with
    enqueue=False, by the caller, which batches many entries into one job)."""
    now = now or timezone.now()
    definition = version_definition(version)
    trigger = next(node for node in definition.nodes if isinstance(node, TriggerNode))
    # Serialise entries per journey and profile, so two batches cannot both enter.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, %s)", [journey.pk, profile_id % 2_147_483_647]
        )
    if not _may_enter(journey=journey, definition=definition, profile_id=profile_id, now=now):
        return None
    context: dict[str, Any] = {"visits": {}}
    if event is not None:
        context["event"] = event if isinstance(event, dict) else _event_data(event)
    trigger_event_id = (
        getattr(event, "id", None) if event is not None and not isinstance(event, dict) else None
    )
    if (
        trigger_event_id is not None
        and Enrollment.objects.filter(journey=journey, trigger_event_id=trigger_event_id).exists()
    ):
        return None  # this event already entered this journey (a replayed job)
    enrollment = Enrollment.objects.create(
        workspace_id=journey.workspace_id,
        journey=journey,
        version=version,
        profile_id=profile_id,
        trigger_event_id=trigger_event_id,
        state=Enrollment.State.ACTIVE,
        current_node=trigger.id,
        next_run_at=now,
        context=context,
        entered_at=now,
        updated_at=now,
    )
    reached = _goal_already_reached(enrollment, definition)
    if reached is not None:
        StepLog.objects.create(
            enrollment=enrollment, node_id=trigger.id, visit=1, outcome=StepLog.Outcome.ENTERED,
            port="next", detail={"event": (context.get("event") or {}).get("name", "")}, created_at=now,
        )  # fmt: skip
        _convert(enrollment, reached, now)
        return enrollment
    if enqueue:
        transaction.on_commit(lambda: advance_enqueue([enrollment.pk]))
    from journeys.live import journey_touched

    transaction.on_commit(
        lambda: journey_touched([enrollment.journey_id], workspace_ids=[enrollment.workspace_id])
    )
    return enrollment


# --------------------------------------------------------------------------- claiming


def enrollments_claim(
    *,
    ids: list[int] | None = None,
    now: datetime | None = None,
    limit: int = CLAIM_BATCH,
    lease_until: datetime | None = None,
) -> list[int]:
    """Take the lease of due enrollments of live journeys (those among `ids`, or any),
    until `lease_until` (now + LEASE by default). Rows already leased until exactly
    `lease_until` are taken again: a claim whose answer a lost connection swallowed,
    retried with the same lease, gets back what it may have taken."""
    now = now or timezone.now()
    lease_until = lease_until or now + LEASE
    only = "AND e.id = ANY(%s)" if ids is not None else ""
    parameters: list[Any] = [lease_until, now, now, lease_until]
    if ids is not None:
        parameters.append(list(ids))
    parameters.append(limit)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE journeys_enrollment SET locked_until = %s
            WHERE id IN (
                SELECT e.id FROM journeys_enrollment e
                JOIN journeys_journey j ON j.id = e.journey_id AND j.status = 'live'
                WHERE e.state IN ('active', 'waiting') AND e.next_run_at <= %s
                  AND (e.locked_until IS NULL OR e.locked_until < %s
                       OR e.locked_until = %s) {only}
                ORDER BY e.next_run_at
                LIMIT %s
                FOR UPDATE OF e SKIP LOCKED
            )
            RETURNING id
            """,
            parameters,
        )
        return [row[0] for row in cursor.fetchall()]


def advance_enqueue(ids: list[int]) -> None:
    """Queue a job that advances these enrollments (call after commit)."""

    from journeys.tasks import enrollments_advance_job

    if ids:
        get_queue(JOURNEYS_QUEUE, commit_mode="auto").enqueue(enrollments_advance_job, list(ids))


def advance_batch(ids: list[int] | None = None, *, now: datetime | None = None) -> int:
    """Claim and advance due enrollments (the given ones, or any). Returns how many ran.

    Enrollments are committed in groups of COMMIT_GROUP (one commit, one fsync, per
    group rather than per person); each runs inside its own savepoint, so one failing
    enrollment rolls back only its own steps. A crash loses at most the open group,
    which the lease hands to another worker later.

    A lost database connection (a server restart or failover) is not the steps'
    failure: the claim and the open group are run again on a new connection (the
    group rolled back, or committed, and a committed enrollment is no longer due at
    `now`, so nothing runs twice), rather than counting against each enrollment's
    attempts and the journey's circuit breaker."""
    now = now or timezone.now()
    lease_until = now + LEASE
    claimed = retry_on_connection_loss(
        partial(enrollments_claim, ids=ids, now=now, lease_until=lease_until),
        what="claiming enrollments",
    )
    try:
        for start in range(0, len(claimed), COMMIT_GROUP):
            retry_on_connection_loss(
                partial(_advance_group, claimed[start : start + COMMIT_GROUP], now),
                what="advancing enrollments",
            )
    except DatabaseError as error:
        if connection_lost(error):
            _lease_release(claimed, lease_until)
        raise
    return len(claimed)


def _lease_release(ids: list[int], lease_until: datetime) -> None:
    """Give up this job's lease on the enrollments it could not advance (its
    connection kept being lost), so the scheduler's next tick hands them out again
    rather than after the lease. Best effort: with the database still away, the lease
    stands."""
    try:
        connection_replace()
        Enrollment.objects.filter(pk__in=ids, locked_until=lease_until).update(locked_until=None)
    except DatabaseError:
        logger.warning("could not give up the lease of %d enrollments", len(ids), exc_info=True)


class _StepsNotWritten(Exception):
    """A group's step logs could not be inserted, for a reason other than a lost
    connection (the group's transaction is rolled back with it)."""


def _advance_group(enrollment_ids: list[int], now: datetime) -> None:
    """Advance a group in one transaction. If its step logs cannot be written (say, a
    step of one enrollment is logged already), run its enrollments again one by one,
    so that only that enrollment fails and rolls back, as when each step was its own
    insert."""
    try:
        _advance_group_once(enrollment_ids, now)
    except _StepsNotWritten as error:
        if len(enrollment_ids) == 1:
            _record_failure(enrollment_ids[0], error.__cause__ or error, now)
            return
        logger.error("journey group %s: step logs not written; one by one", enrollment_ids)
        for enrollment_id in enrollment_ids:
            _advance_group([enrollment_id], now)


def _advance_group_once(enrollment_ids: list[int], now: datetime) -> None:
    from delivery.services import messages_decided_together
    from journeys.live import journey_touched

    failures: list[tuple[int, Exception]] = []
    touched: set[int] = set()
    workspaces: set[int] = set()
    # The group's messages go to delivery in one job per channel once it commits.
    with messages_decided_together(), transaction.atomic():
        # Lock the group's rows in one query (in id order, so groups never deadlock).
        enrollments = (
            Enrollment.objects.select_for_update(of=("self",))
            .select_related("version", "journey", "profile")
            .filter(pk__in=enrollment_ids)
            .order_by("pk")
        )
        steps: list[StepLog] = []
        for enrollment in enrollments:
            touched.add(enrollment.journey_id)
            workspaces.add(enrollment.workspace_id)
            try:
                with transaction.atomic():
                    taken = _advance_one(enrollment, now)
            except Exception as error:  # the step failed: retry later, then give up
                if connection_lost(error):
                    raise  # the whole group is gone with the connection: advance_batch
                logger.exception("journey enrollment %s failed", enrollment.pk)
                failures.append((enrollment.pk, error))
            else:
                steps.extend(taken)  # a failed enrollment's steps went with its savepoint
        # The group's step logs in one insert, in the group's transaction: they commit
        # with the enrollments' new positions or not at all (nothing in a run reads
        # them back). A row per node was a quarter of a worker's time (docs/performance.md).
        try:
            StepLog.objects.bulk_create(steps, batch_size=1000)
        except Exception as error:
            if connection_lost(error):
                raise  # advance_batch runs the group again on a new connection
            raise _StepsNotWritten() from error
    for enrollment_id, error in failures:
        _record_failure(enrollment_id, error, now)
    journey_touched(touched, workspace_ids=workspaces)


# --------------------------------------------------------------------------- advancing


class _Park(Exception):
    def __init__(self, state: str, until: datetime | None, detail: dict | None = None):
        self.state, self.until, self.detail = state, until, detail or {}


def enrollment_advance(*, enrollment_id: int, now: datetime | None = None) -> None:
    """Run one enrollment's nodes until it waits or finishes, in one transaction."""
    _advance_group([enrollment_id], now or timezone.now())


def _advance_one(enrollment: Enrollment, now: datetime) -> list[StepLog]:
    """Run a locked enrollment, if it is still due and its journey live; returns the
    step logs of the nodes it ran, for the caller to write."""
    if not enrollment.is_open or enrollment.journey.status != Journey.Status.LIVE:
        return []
    if enrollment.next_run_at is None or enrollment.next_run_at > now:
        return []  # someone else moved it already
    return _run(enrollment, now)


def _run(enrollment: Enrollment, now: datetime) -> list[StepLog]:
    definition = version_definition(enrollment.version)
    context = dict(enrollment.context or {})
    context.setdefault("visits", {})
    steps: list[StepLog] = []
    for _ in range(MAX_STEPS_PER_RUN):
        node = _node(definition, enrollment.current_node)
        visit = int(context["visits"].get(node.id, 0)) + 1
        try:
            outcome, port, detail = _execute(node, enrollment, context, definition, now, visit)
        except _Park as park:
            context["parked"] = {
                "node": node.id,
                "visit": visit,
                "at": now.isoformat(),
                **park.detail,
            }
            _save(enrollment, context, now, state=park.state, next_run_at=park.until)
            return steps
        context.pop("parked", None)
        context.pop("wake", None)
        context["visits"][node.id] = visit
        steps.append(
            StepLog(
                enrollment=enrollment,
                node_id=node.id,
                visit=visit,
                outcome=outcome,
                port=port or "",
                detail=detail,
                created_at=now,
            )
        )
        target = next_node(definition, node.id, port) if port else None
        if target is None:
            finished = (
                Enrollment.State.COMPLETED
                if outcome != StepLog.Outcome.EXITED
                else Enrollment.State.EXITED
            )
            reason = detail.get("reason", "completed") if isinstance(detail, dict) else "completed"
            _save(
                enrollment,
                context,
                now,
                state=finished,
                next_run_at=None,
                exit_reason=reason,
                exited_at=now,
            )
            return steps
        enrollment.current_node = target
    # A long run of instant nodes: continue in the next job rather than hold the lock.
    _save(enrollment, context, now, state=Enrollment.State.ACTIVE, next_run_at=now)
    return steps


def _save(enrollment: Enrollment, context: dict, now: datetime, **fields) -> None:
    enrollment.context = context
    enrollment.locked_until = None
    enrollment.attempts = 0
    enrollment.last_error = ""
    enrollment.updated_at = now
    for name, value in fields.items():
        setattr(enrollment, name, value)
    enrollment.save(
        update_fields=[
            "context", "locked_until", "attempts", "last_error", "updated_at", "current_node", *fields,
        ]
    )  # fmt: skip


def _record_failure(enrollment_id: int, error: Exception, now: datetime) -> None:
    with transaction.atomic():
        enrollment = Enrollment.objects.select_for_update().filter(pk=enrollment_id).first()
        if enrollment is None:
            return
        enrollment.attempts += 1
        enrollment.last_error = f"{type(error).__name__}: {error}"[:2000]
        enrollment.locked_until = None
        enrollment.updated_at = now
        if enrollment.attempts >= MAX_ATTEMPTS:
            enrollment.state = Enrollment.State.FAILED
            enrollment.exit_reason = "error"
            enrollment.exited_at = now
            enrollment.next_run_at = None
        else:
            delay = RETRY_DELAYS[min(enrollment.attempts - 1, len(RETRY_DELAYS) - 1)]
            enrollment.next_run_at = now + timedelta(seconds=delay)
        enrollment.save(
            update_fields=[
                "attempts",
                "last_error",
                "locked_until",
                "updated_at",
                "state",
                "exit_reason",
                "exited_at",
                "next_run_at",
            ]
        )
        _circuit_breaker(enrollment.journey_id, now)


def _circuit_breaker(journey_id: int, now: datetime) -> None:
    """Many failing enrollments in one journey pause it (with the latest error as the
    reason) so a broken step does not burn through the audience; others run on."""
    failing = Enrollment.objects.filter(
        journey_id=journey_id, attempts__gt=0, updated_at__gte=now - BREAKER_WINDOW
    )
    if failing.count() < BREAKER_FAILURES:
        return
    journey = Journey.objects.filter(pk=journey_id, status=Journey.Status.LIVE).first()
    if journey is None:
        return
    from engagement_site.workspaces.services import AuditContext
    from journeys.services import journey_pause

    error = failing.order_by("-updated_at").values_list("last_error", flat=True).first()
    journey_pause(
        journey=journey,
        context=AuditContext.system("circuit breaker"),
        reason=f"Paused after {BREAKER_FAILURES} failing steps in {int(BREAKER_WINDOW.total_seconds() // 60)} minutes. Latest: {error}",
    )


# --------------------------------------------------------------------------- nodes


def _execute(
    node, enrollment: Enrollment, context: dict, definition: Definition, now: datetime, visit: int
):
    """(outcome, port, detail) of running `node`, or raise _Park to wait."""
    if isinstance(node, TriggerNode):
        return (
            StepLog.Outcome.ENTERED,
            "next",
            {"event": (context.get("event") or {}).get("name", "")},
        )
    if isinstance(node, WaitNode):
        return _wait(node, enrollment, context, now, visit)
    if isinstance(node, ConditionNode):
        result = _condition(node, enrollment, context, now)
        return StepLog.Outcome.BRANCHED, "yes" if result else "no", {}
    if isinstance(node, SplitNode):
        port = split_branch(
            node, journey_id=enrollment.journey_id, profile_id=enrollment.profile_id
        )
        winner = (enrollment.journey.split_winners or {}).get(node.id)
        if winner and port != "holdout" and winner in {v.key for v in node.variants}:
            port = winner  # the experiment is decided: everyone takes the winner
        if port == "holdout":
            context["holdout"] = True
        else:
            context["variant"] = port
        return StepLog.Outcome.BRANCHED, port, {"variant": port}
    if isinstance(node, ActionNode):
        return _action(node, enrollment, context, now, visit)
    if isinstance(node, FallbackNode):
        return _fallback(node, enrollment, context, now, visit)
    if isinstance(node, GoalNode):
        converted = _goal_event(enrollment, node.event, node.filters, node.window_seconds)
        if converted is not None:
            from analytics.services import conversion_record

            # Counted like the journey's goal: once per enrollment, with its revenue
            # and the messages within the node's window before the event.
            conversion_record(
                enrollment=enrollment, event=converted, window_seconds=node.window_seconds, now=now
            )
            return StepLog.Outcome.CONVERTED, "", {"reason": "converted", "event": converted}
        return StepLog.Outcome.EXITED, "", {"reason": "goal_not_reached"}
    if isinstance(node, ExitNode):
        return StepLog.Outcome.EXITED, "", {"reason": "exit_node"}
    raise ValueError(f"node {node.id!r}: unknown node type {node.type}")


def _parked_here(context: dict, node_id: str, visit: int) -> dict | None:
    parked = context.get("parked")
    if isinstance(parked, dict) and parked.get("node") == node_id and parked.get("visit") == visit:
        return parked
    return None


def _wait(node: WaitNode, enrollment: Enrollment, context: dict, now: datetime, visit: int):
    wait = node.wait
    parked = _parked_here(context, node.id, visit)
    if parked is None:
        if isinstance(wait, WaitDuration):
            raise _Park(Enrollment.State.WAITING, now + timedelta(seconds=wait.seconds))
        if isinstance(wait, WaitUntilDate):
            until = wait.at if wait.at.tzinfo else wait.at.replace(tzinfo=ZoneInfo("UTC"))
            if until <= now:
                return StepLog.Outcome.CONTINUED, "next", {"waited": 0}
            raise _Park(Enrollment.State.WAITING, until)
        if isinstance(wait, WaitUntilTime):
            raise _Park(
                Enrollment.State.WAITING,
                next_local_time(wait, _profile_zone(enrollment, wait.fallback_time_zone), now),
            )
        if isinstance(wait, WaitForEvent | WaitForSegment):
            raise _Park(Enrollment.State.WAITING, now + timedelta(seconds=wait.timeout_seconds))
        raise ValueError(f"unknown wait {wait.kind}")
    waited = int((now - datetime.fromisoformat(parked["at"])).total_seconds())
    if isinstance(wait, WaitForEvent | WaitForSegment):
        wake = context.get("wake")
        if isinstance(wake, dict) and wake.get("node") == node.id:
            return (
                StepLog.Outcome.CONTINUED,
                "on_event",
                {"waited": waited, "event": wake.get("event")},
            )
        return StepLog.Outcome.CONTINUED, "on_timeout", {"waited": waited, "timed_out": True}
    return StepLog.Outcome.CONTINUED, "next", {"waited": waited}


def _profile_zone(enrollment: Enrollment, fallback: str) -> ZoneInfo:
    for name in (enrollment.profile.time_zone, fallback, "UTC"):
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")


def next_local_time(wait: WaitUntilTime, zone: ZoneInfo, now: datetime) -> datetime:
    """The first moment after `now` when the clock in `zone` shows `wait.at` (on one of
    `wait.weekdays` when given)."""
    local = now.astimezone(zone)
    for days in range(0, 15):
        day = (local + timedelta(days=days)).date()
        candidate = datetime.combine(day, wait.at, tzinfo=zone)
        if candidate > now and (not wait.weekdays or day.weekday() in wait.weekdays):
            return candidate
    return now + timedelta(days=1)


def _condition(node: ConditionNode, enrollment: Enrollment, context: dict, now: datetime) -> bool:
    condition = node.condition
    if isinstance(condition, EventCondition):
        return filters_match(
            (context.get("event") or {}).get("properties", {}), condition.filters, now=now
        )
    if isinstance(condition, RuleCondition):
        from segments.evaluation import segment_evaluate_for_profiles

        matched = segment_evaluate_for_profiles(
            segment_or_definition=condition.rule,
            workspace=enrollment.journey.workspace,
            profile_ids=[enrollment.profile_id],
            now=now,
        )
        return enrollment.profile_id in matched
    from delivery.models import Message

    # Engagement with a message an earlier node of this enrollment created (any channel
    # of a fallback chain). Delivery stamps every stage an open or click implies.
    return Message.objects.filter(
        enrollment=enrollment,
        node_id=condition.node,
        **{f"{condition.engagement}_at__isnull": False},
    ).exists()


def split_branch(node: SplitNode, *, journey_id: int, profile_id: int) -> str:
    """A stable assignment: the same person always lands in the same branch."""
    digest = hashlib.sha256(f"{journey_id}:{node.id}:{profile_id}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % 10_000  # 0.01 % steps
    if bucket < round(node.holdout_percent * 100):
        return "holdout"
    rest = int.from_bytes(digest[8:16], "big") % sum(variant.weight for variant in node.variants)
    for variant in node.variants:
        if rest < variant.weight:
            return variant.key
        rest -= variant.weight
    return node.variants[-1].key


def _action(node: ActionNode, enrollment: Enrollment, context: dict, now: datetime, visit: int):
    action = node.action
    if action.kind in ("message", "webhook"):
        return _message(node, enrollment, context, now, visit)
    if action.kind == "update_attribute":
        from engagement_site.workspaces.services import AuditContext
        from segments.privacy import profile_traits_update

        profile_traits_update(
            workspace=enrollment.journey.workspace,
            profile=enrollment.profile,
            patch={action.trait: action.value},
            context=AuditContext.system(f"journey {enrollment.journey_id}"),
            source="journey",
        )
        return StepLog.Outcome.CONTINUED, "next", {"trait": action.trait}
    if action.kind == "segment":
        from segments.models import Segment
        from segments.services import static_segment_members_change

        segment = Segment.objects.get(workspace_id=enrollment.workspace_id, pk=action.segment_id)
        change = (
            {"add": [enrollment.profile_id]}
            if action.op == "add"
            else {"remove": [enrollment.profile_id]}
        )
        static_segment_members_change(segment=segment, **change)
        return StepLog.Outcome.CONTINUED, "next", {"segment": segment.pk, "op": action.op}
    raise ValueError(f"unknown action {action.kind}")


def _not_sent_reason(enrollment: Enrollment, context: dict) -> str:
    """Why the journey itself sends nothing to this person: the holdout, shadow mode."""
    if context.get("holdout"):
        return "holdout"
    if version_definition(enrollment.version).settings.shadow_mode:
        return "shadow_mode"
    return ""


def _message_decide(
    *,
    enrollment: Enrollment,
    node_id: str,
    key: str,
    channel: str,
    template_id: int,
    variant: str,
    reason: str,
    now: datetime,
    chain_index: int = 0,
):
    """Create a step's Message once (a replay finds it by its key); delivery sends the
    queued ones. It is created as not sent, with the reason, for the holdout, shadow
    mode, or a person with no address for the channel."""
    from delivery.models import Message
    from delivery.policies import unreachable_reason
    from delivery.services import message_decided

    reason = reason or unreachable_reason(profile=enrollment.profile, channel=channel)
    journey_settings = version_definition(enrollment.version).settings
    try:
        with transaction.atomic():
            message = Message.objects.create(
                workspace_id=enrollment.workspace_id,
                idempotency_key=key,
                profile_id=enrollment.profile_id,
                journey_id=enrollment.journey_id,
                journey_version=enrollment.version,
                enrollment=enrollment,
                node_id=node_id,
                chain_index=chain_index,
                variant=variant,
                channel=channel,
                template_version_id=enrollment.version.template_versions.get(str(template_id)),
                status=Message.Status.SUPPRESSED if reason else Message.Status.QUEUED,
                reason=reason,
                is_shadow=reason == "shadow_mode",
                topic=journey_settings.topic,
                transactional=journey_settings.transactional,
                created_at=now,
                updated_at=now,
                failed_at=now if reason else None,
                next_attempt_at=None if reason else now,
            )
    except IntegrityError:
        return Message.objects.get(idempotency_key=key)
    if message.status == Message.Status.QUEUED:
        message_decided(message=message)  # sent by delivery once this step commits
    return message


def _message(node: ActionNode, enrollment: Enrollment, context: dict, now: datetime, visit: int):
    """An action node's message (key: enrollment, node, visit)."""
    action = node.action
    variant = context.get("variant", "")
    template_id = getattr(action, "variant_templates", {}).get(variant, action.template_id)
    message = _message_decide(
        enrollment=enrollment,
        node_id=node.id,
        key=f"{enrollment.pk}:{node.id}:{visit}",
        channel=getattr(action, "channel", "webhook"),
        template_id=template_id,
        variant=variant,
        reason=_not_sent_reason(enrollment, context),
        now=now,
    )
    outcome = StepLog.Outcome.SKIPPED if message.reason else StepLog.Outcome.SENT
    return (
        outcome,
        "next",
        {
            "message": message.pk,
            "channel": message.channel,
            "reason": message.reason,
            "template_version": message.template_version_id,
        },
    )


def _fallback_message(
    node: FallbackNode,
    enrollment: Enrollment,
    context: dict,
    visit: int,
    index: int,
    reason: str,
    now: datetime,
):
    step = node.chain[index]
    return _message_decide(
        enrollment=enrollment,
        node_id=node.id,
        key=f"{enrollment.pk}:{node.id}:{visit}:{index}",
        channel=step.channel,
        template_id=step.template_id,
        variant=context.get("variant", ""),
        reason=reason,
        now=now,
        chain_index=index,
    )


def _fallback_verdict(node: FallbackNode, message, now: datetime) -> tuple[str, datetime | None]:
    """Where the chain stands with its current message: ("reached", None), ("move_on",
    None) when it cannot be delivered or was not engaged with in time, or ("pending",
    when to look again)."""
    from delivery.models import Message
    from delivery.policies import reports_engagement

    if message.status in Message.UNDELIVERED:
        return "move_on", None
    if not node.not_engaged:
        if message.status != Message.Status.QUEUED:
            return "reached", None
        return "pending", now + FALLBACK_RECHECK
    if message.sent_at is None:
        # The window starts when it goes out (quiet hours may hold it for hours).
        return "pending", now + FALLBACK_RECHECK
    deadline = message.sent_at + timedelta(seconds=node.within_seconds)
    if not reports_engagement(channel=message.channel, engagement=node.not_engaged):
        # An SMS cannot say it was opened: its delivery (or no failure within the
        # window) is as far as it can get.
        if message.delivered_at is not None or now >= deadline:
            return "reached", None
        return "pending", deadline
    engaged = message.clicked_at if node.not_engaged == "clicked" else message.opened_at
    if engaged is not None:
        return "reached", None
    if now >= deadline:
        return "move_on", None
    return "pending", deadline


def _tried(message, verdict: str) -> dict[str, Any]:
    return {
        "channel": message.channel,
        "message": message.pk,
        "status": message.status,
        "reason": message.reason or ("not_engaged" if verdict == "move_on" else ""),
    }


def _fallback(node: FallbackNode, enrollment: Enrollment, context: dict, now: datetime, visit: int):
    """Try the chain's channels in order, one message at a time. The step waits (parked
    on its current message) until delivery reports an outcome, which wakes it
    (journeys_for_message_outcome, after the status commits), or until the engagement
    window ends. While the message has not gone out, the step also looks again every
    FALLBACK_RECHECK, in case a wake-up was lost or a status written around the
    service."""
    from delivery.models import Message

    parked = _parked_here(context, node.id, visit)
    if parked is None:
        index, tried = 0, []
        reason = _not_sent_reason(enrollment, context)
        message = _fallback_message(node, enrollment, context, visit, 0, reason, now)
        if reason:
            return (
                StepLog.Outcome.SKIPPED,
                "next",
                {"reason": reason, "tried": [_tried(message, "move_on")]},
            )
    else:
        index, tried = int(parked["index"]), list(parked["tried"])
        message = Message.objects.get(pk=parked["message"])
    while True:
        verdict, until = _fallback_verdict(node, message, now)
        if verdict == "pending":
            raise _Park(
                Enrollment.State.WAITING,
                until,
                {"index": index, "message": message.pk, "channel": message.channel, "tried": tried},
            )
        tried.append(_tried(message, verdict))
        if verdict == "reached":
            return (
                StepLog.Outcome.SENT,
                "next",
                {"message": message.pk, "channel": message.channel, "tried": tried},
            )
        index += 1
        if index >= len(node.chain):  # also a chain shortened by a new version
            return StepLog.Outcome.SKIPPED, "next", {"reason": "no_channel_reached", "tried": tried}
        message = _fallback_message(node, enrollment, context, visit, index, "", now)


def journeys_for_message_outcome(*, message_id: int, enrollment_id: int) -> None:
    """Delivery's hook, after a message's status changed: wake the fallback step parked
    on this message so it decides at once (action-node messages wake nothing)."""
    with transaction.atomic():
        enrollment = (
            Enrollment.objects.select_for_update()
            .filter(
                pk=enrollment_id,
                state=Enrollment.State.WAITING,
                context__parked__message=message_id,
            )
            .first()
        )
        if enrollment is None:
            return
        now = timezone.now()
        enrollment.state = Enrollment.State.ACTIVE
        enrollment.next_run_at = now
        enrollment.updated_at = now
        enrollment.save(update_fields=["state", "next_run_at", "updated_at"])
        transaction.on_commit(lambda: advance_enqueue([enrollment.pk]))


def _goal_event(
    enrollment: Enrollment, event_name: str, filters, window_seconds: int
) -> dict | None:
    from segments.models import Event

    since = _entry_time(enrollment)
    candidates = Event.objects.filter(
        workspace_id=enrollment.workspace_id,
        profile_id=enrollment.profile_id,
        name=event_name,
        timestamp__gte=since,
        timestamp__lte=since + timedelta(seconds=window_seconds),
    ).order_by("timestamp")[:100]
    for event in candidates:
        if filters_match(event.properties, filters):
            return _event_data(event)
    return None


# --------------------------------------------------------------------------- ingestion hook


def journeys_for_ingested_batch(
    *, workspace_id: int, profile_ids: list[int], event_ids: list[int]
) -> None:
    """Ingestion hook (settings.INGESTION_HOOKS): event triggers, waits for events and
    conversion goals, for the events one batch stored. Idempotent: an event already
    used for an entry, wake-up or conversion is not used again."""
    from segments.models import Event

    if not event_ids:
        return
    journeys = list(
        Journey.objects.filter(
            workspace_id=workspace_id, status=Journey.Status.LIVE
        ).select_related("live_version")
    )
    if not journeys:
        return
    events = sorted(
        Event.objects.filter(workspace_id=workspace_id, id__in=event_ids).exclude(profile_id=None),
        key=lambda event: (event.timestamp, event.id),
    )
    touched: set[int] = set()
    with transaction.atomic():
        for event in events:
            _goals(journeys, event)
            touched |= _wake(workspace_id, event)
            for journey in journeys:
                definition = version_definition(journey.live_version)
                trigger = next(node for node in definition.nodes if isinstance(node, TriggerNode))
                spec = trigger.trigger
                if not isinstance(spec, EventTrigger) or spec.event != event.name:
                    continue
                if not filters_match(event.properties, spec.filters):
                    continue
                enrollment = enroll(
                    journey=journey,
                    version=journey.live_version,
                    profile_id=event.profile_id,
                    event=event,
                    enqueue=False,
                )
                if enrollment is not None:
                    touched.add(enrollment.pk)
        if touched:
            transaction.on_commit(lambda: advance_enqueue(sorted(touched)))


def _wake(workspace_id: int, event) -> set[int]:
    woken: set[int] = set()
    waiting = (
        Enrollment.objects.select_for_update(of=("self",))
        .filter(
            workspace_id=workspace_id,
            profile_id=event.profile_id,
            state=Enrollment.State.WAITING,
            journey__status=Journey.Status.LIVE,
        )
        .select_related("version")
    )
    for enrollment in waiting:
        parked = (enrollment.context or {}).get("parked") or {}
        try:
            node = _node(version_definition(enrollment.version), enrollment.current_node)
        except KeyError:
            continue
        if not isinstance(node, WaitNode) or not isinstance(node.wait, WaitForEvent):
            continue
        if parked.get("node") != node.id or node.wait.event != event.name:
            continue
        if event.timestamp < datetime.fromisoformat(parked["at"]):
            continue  # it happened before the wait began
        if not filters_match(event.properties, node.wait.filters):
            continue
        context = dict(enrollment.context)
        context["wake"] = {"node": node.id, "event": _event_data(event)}
        now = timezone.now()
        enrollment.context = context
        enrollment.state = Enrollment.State.ACTIVE
        enrollment.next_run_at = now
        enrollment.updated_at = now
        enrollment.save(update_fields=["context", "state", "next_run_at", "updated_at"])
        woken.add(enrollment.pk)
    return woken


def _entry_time(enrollment: Enrollment) -> datetime:
    """When the profile entered: its trigger event's time when it has one (ingestion
    may run the trigger's hook after later events of the same person)."""
    stamp = ((enrollment.context or {}).get("event") or {}).get("timestamp")
    if isinstance(stamp, str):
        try:
            return min(datetime.fromisoformat(stamp), enrollment.entered_at)
        except ValueError:
            pass
    return enrollment.entered_at


def _convert(enrollment: Enrollment, event: dict, now: datetime) -> None:
    from analytics.services import conversion_record

    definition = version_definition(enrollment.version)
    window = definition.settings.goal.window_seconds if definition.settings.goal else 7 * 86400
    conversion_record(enrollment=enrollment, event=event, window_seconds=window, now=now)
    StepLog.objects.get_or_create(
        enrollment=enrollment,
        node_id=GOAL_NODE,
        visit=1,
        defaults={
            "outcome": StepLog.Outcome.CONVERTED,
            "detail": {"reason": "converted", "event": event, "at_node": enrollment.current_node},
            "created_at": now,
        },
    )
    enrollment.state = Enrollment.State.COMPLETED
    enrollment.exit_reason = "converted"
    enrollment.exited_at = now
    enrollment.next_run_at = None
    enrollment.locked_until = None
    enrollment.updated_at = now
    enrollment.save(
        update_fields=[
            "state",
            "exit_reason",
            "exited_at",
            "next_run_at",
            "locked_until",
            "updated_at",
        ]
    )


def _goals(journeys: list[Journey], event) -> set[int]:
    """A conversion goal event exits the profile from the journey, as converted."""
    converted: set[int] = set()
    for journey in journeys:
        goal = version_definition(journey.live_version).settings.goal
        if (
            goal is None
            or goal.event != event.name
            or not filters_match(event.properties, goal.filters)
        ):
            continue
        # Waits for a worker that is advancing the enrollment right now (no skip):
        # a conversion must not be lost.
        enrollments = Enrollment.objects.select_for_update().filter(
            journey=journey, profile_id=event.profile_id, state__in=Enrollment.OPEN_STATES
        )
        for enrollment in enrollments:
            entered = _entry_time(enrollment)
            if not entered <= event.timestamp <= entered + timedelta(seconds=goal.window_seconds):
                continue
            _convert(enrollment, _event_data(event), timezone.now())
            converted.add(enrollment.pk)
    return converted


def _goal_already_reached(enrollment: Enrollment, definition: Definition) -> dict | None:
    """The goal event, when the person did it after the trigger but before the entry was
    processed (their events may be ingested out of order)."""
    goal = definition.settings.goal
    if goal is None:
        return None
    return _goal_event(enrollment, goal.event, goal.filters, goal.window_seconds)


# --------------------------------------------------------------------------- scheduler


def scheduler_duty() -> None:
    """run_scheduler: hand due and orphaned (lease expired) enrollments to workers."""
    now = timezone.now()
    due = list(
        Enrollment.objects.filter(
            state__in=Enrollment.OPEN_STATES,
            next_run_at__lte=now,
            journey__status=Journey.Status.LIVE,
        )
        .exclude(locked_until__gt=now)
        .order_by("next_run_at")
        .values_list("pk", flat=True)[: CLAIM_BATCH * 10]
    )
    for start in range(0, len(due), CLAIM_BATCH):
        advance_enqueue(due[start : start + CLAIM_BATCH])
    schedule_duty()


def journeys_for_segment_change(
    *, workspace_id: int, segment_id: int, entered_ids: list[int], exited_ids: list[int]
) -> None:
    """Segment triggers enter the profiles that entered (or left) the segment; waits for
    that change wake up."""
    from journeys.nodes import SegmentTrigger

    changes = {"entered": set(entered_ids), "exited": set(exited_ids)}
    touched: set[int] = set()
    with transaction.atomic():
        for journey in Journey.objects.filter(
            workspace_id=workspace_id, status=Journey.Status.LIVE
        ).select_related("live_version"):
            definition = version_definition(journey.live_version)
            trigger = next(
                node for node in definition.nodes if isinstance(node, TriggerNode)
            ).trigger
            if isinstance(trigger, SegmentTrigger) and trigger.segment_id == segment_id:
                for profile_id in sorted(changes[trigger.on]):
                    enrollment = enroll(
                        journey=journey,
                        version=journey.live_version,
                        profile_id=profile_id,
                        event={
                            "name": f"segment {trigger.on}",
                            "properties": {"segment_id": segment_id},
                        },
                    )
                    if enrollment is not None:
                        touched.add(enrollment.pk)
        waiting = (
            Enrollment.objects.select_for_update(of=("self",))
            .filter(
                workspace_id=workspace_id,
                state=Enrollment.State.WAITING,
                profile_id__in=changes["entered"] | changes["exited"],
                journey__status=Journey.Status.LIVE,
            )
            .select_related("version")
        )
        now = timezone.now()
        for enrollment in waiting:
            try:
                node = _node(version_definition(enrollment.version), enrollment.current_node)
            except KeyError:
                continue
            wait = getattr(node, "wait", None)
            if not isinstance(wait, WaitForSegment) or wait.segment_id != segment_id:
                continue
            if enrollment.profile_id not in changes[wait.on]:
                continue
            context = dict(enrollment.context)
            context["wake"] = {
                "node": node.id,
                "event": {"name": f"segment {wait.on}", "segment_id": segment_id},
            }
            enrollment.context = context
            enrollment.state = Enrollment.State.ACTIVE
            enrollment.next_run_at = now
            enrollment.updated_at = now
            enrollment.save(update_fields=["context", "state", "next_run_at", "updated_at"])
            touched.add(enrollment.pk)
        if touched:
            transaction.on_commit(lambda: advance_enqueue(sorted(touched)))


# --------------------------------------------------------------------------- scheduled triggers


def schedule_due_fire(
    trigger, *, published_at: datetime, last_fire: datetime | None, now: datetime
) -> datetime | None:
    """The fire time a scheduled trigger owes now, if any: the latest occurrence after
    the last fire (or the publication) that is not in the future. Missed occurrences
    are not replayed one by one: one fire catches up."""
    from cronsim import CronSim

    if trigger.at is not None:
        at = trigger.at if trigger.at.tzinfo else trigger.at.replace(tzinfo=ZoneInfo("UTC"))
        return at if last_fire is None and at <= now else None
    try:
        zone = ZoneInfo(trigger.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    start = (last_fire or published_at).astimezone(zone)
    due = None
    for occurrence in CronSim(trigger.cron, start):
        if occurrence > now:
            break
        due = occurrence
    return due


def schedule_duty() -> None:
    """run_scheduler: queue a fire for every scheduled journey that owes one."""
    import django_rq

    from journeys.models import ScheduleRun
    from journeys.nodes import ScheduleTrigger
    from journeys.tasks import schedule_fire_job

    now = timezone.now()
    for journey in Journey.objects.filter(status=Journey.Status.LIVE).select_related(
        "live_version"
    ):
        definition = version_definition(journey.live_version)
        trigger = next(node for node in definition.nodes if isinstance(node, TriggerNode)).trigger
        if not isinstance(trigger, ScheduleTrigger):
            continue
        last = (
            ScheduleRun.objects.filter(journey=journey)
            .order_by("-fire_at")
            .values_list("fire_at", flat=True)
            .first()
        )
        due = schedule_due_fire(
            trigger, published_at=journey.live_version.published_at, last_fire=last, now=now
        )
        if due is not None:
            django_rq.get_queue(JOURNEYS_QUEUE).enqueue(
                schedule_fire_job, journey.pk, due.isoformat()
            )


def schedule_fire(*, journey_id: int, fire_at: datetime) -> int:
    """Enter the trigger segment's current members once for this fire time."""
    from journeys.models import ScheduleRun
    from segments.models import SegmentMembership

    with transaction.atomic():
        journey = (
            Journey.objects.select_for_update(of=("self",))
            .select_related("live_version")
            .filter(pk=journey_id)
            .first()
        )
        if journey is None or journey.status != Journey.Status.LIVE:
            return 0
        run, created = ScheduleRun.objects.get_or_create(
            journey=journey, fire_at=fire_at, defaults={"version": journey.live_version}
        )
        if not created:
            return 0
        trigger = next(
            node
            for node in version_definition(journey.live_version).nodes
            if isinstance(node, TriggerNode)
        ).trigger
        members = SegmentMembership.objects.filter(
            workspace_id=journey.workspace_id, segment_id=trigger.segment_id, exited_at__isnull=True
        ).values_list("profile_id", flat=True)
        entered: list[int] = []
        for profile_id in members.iterator():
            enrollment = enroll(
                journey=journey,
                version=journey.live_version,
                profile_id=profile_id,
                event={"name": "scheduled", "properties": {"fire_at": fire_at.isoformat()}},
                enqueue=False,
            )
            if enrollment is not None:
                entered.append(enrollment.pk)
        run.entered = len(entered)
        run.save(update_fields=["entered"])

        def enqueue_all() -> None:
            for start in range(0, len(entered), CLAIM_BATCH):
                advance_enqueue(entered[start : start + CLAIM_BATCH])

        transaction.on_commit(enqueue_all)
    return len(entered)
