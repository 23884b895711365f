"""RQ entry points of the journeys app: take ids, call one service, safe to run twice."""

from __future__ import annotations


def enrollments_advance_job(enrollment_ids: list[int]) -> int:
    """Advance these enrollments if they are due and nobody holds them (a job that runs
    twice finds them claimed or already moved, and does nothing)."""
    from journeys.executor import advance_batch

    return advance_batch(enrollment_ids)
