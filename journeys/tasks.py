"""RQ entry points of the journeys app: take ids, call one service, safe to run twice."""

from __future__ import annotations

from engagement_site.jobs import get_queue


def enrollments_advance_job(enrollment_ids: list[int]) -> int:
    """Advance these enrollments if they are due and nobody holds them (a job that runs
    twice finds them claimed or already moved, and does nothing)."""
    from journeys.executor import advance_batch

    return advance_batch(enrollment_ids)


def segment_change_job(
    workspace_id: int, segment_id: int, entered_ids: list[int], exited_ids: list[int]
) -> None:
    """Profiles entered / left a segment: enter segment-triggered journeys, wake waits."""
    from journeys.executor import journeys_for_segment_change

    journeys_for_segment_change(
        workspace_id=workspace_id,
        segment_id=segment_id,
        entered_ids=entered_ids,
        exited_ids=exited_ids,
    )


def segment_change_enqueue(
    *, workspace_id: int, segment_id: int, entered_ids: list[int], exited_ids: list[int]
) -> None:
    """Queue segment_change_job, after commit; never raises (a lost change is caught up
    by nothing, so it is logged loudly)."""
    import logging

    from django.db import transaction

    if not entered_ids and not exited_ids:
        return

    def enqueue() -> None:
        try:
            get_queue("journeys", commit_mode="auto").enqueue(
                segment_change_job, workspace_id, segment_id, entered_ids, exited_ids
            )
        except Exception:
            logging.getLogger(__name__).exception(
                "could not queue the segment change of %s", segment_id
            )

    transaction.on_commit(enqueue)


def schedule_fire_job(journey_id: int, fire_at: str) -> int:
    """A scheduled trigger's fire: enter the segment's members (once per fire time)."""
    from datetime import datetime

    from journeys.executor import schedule_fire

    return schedule_fire(journey_id=journey_id, fire_at=datetime.fromisoformat(fire_at))
