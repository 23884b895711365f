"""RQ helpers shared by the apps."""

from __future__ import annotations

# The states in which a job under a fixed id still waits or runs.
PENDING = ("queued", "started", "deferred", "scheduled")


def enqueue_unless_pending(
    queue, func: str, *args, job_id: str, also_skip: tuple[str, ...] = (), **options
) -> bool:
    """Queue `func(*args)` under the fixed `job_id` unless a job of that id is still
    pending (or in one of `also_skip`, e.g. "failed" to wait out its failure_ttl), so a
    slow worker never gets the same work twice. Returns whether a job was queued."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    try:
        status = Job.fetch(job_id, connection=queue.connection).get_status()
    except NoSuchJobError:
        status = None
    if status in (*PENDING, *also_skip):
        return False
    queue.enqueue(func, *args, job_id=job_id, **options)
    return True
