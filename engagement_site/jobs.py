"""RQ helpers shared by the apps."""

from __future__ import annotations

import os

from django.db import close_old_connections
from rq.worker import SimpleWorker

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


_clients: dict[tuple, object] = {}


def redis_connection(name: str = "default"):
    """The Redis client of the queue `name`'s connection settings, one per process:
    django_rq builds a new client (and opens a new connection) on every call, which cost
    the ingest and send paths a connection per batch (docs/performance.md). Keyed by
    pid, so a forked child never shares its parent's socket."""
    import django_rq
    from django_rq.connection_utils import filter_connection_params
    from django_rq.settings import QUEUES

    key = (os.getpid(), repr(sorted(filter_connection_params(QUEUES[name]).items())))
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = django_rq.get_connection(name)
    return client


def get_queue(name: str = "default", **options):
    """django_rq.get_queue on the process's shared client (redis_connection)."""
    import django_rq

    return django_rq.get_queue(name, connection=redis_connection(name), **options)


class Worker(SimpleWorker):
    """The product's RQ worker (runstack starts it): RQ's SimpleWorker, jobs in the
    worker's own process, with each job treated as Django treats a request: before and
    after it, a database connection that was lost (a server restart or failover,
    pg_terminate_backend) or that outlived DATABASE_CONN_MAX_AGE is closed, so the next
    job opens a new one. Without it, one lost connection failed every later job of the
    worker ("the connection is closed") until the worker was restarted."""

    def perform_job(self, job, queue):
        close_old_connections()
        try:
            return super().perform_job(job, queue)
        finally:
            close_old_connections()
