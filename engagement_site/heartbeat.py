"""Liveness of the long-running processes, kept in Redis.

The scheduler writes its own beat; RQ workers already record `last_heartbeat` in
Redis, so the worker check reads RQ's registry instead of inventing a second one.
"""

from __future__ import annotations

import time

import django_rq
from django.conf import settings
from rq import Worker

SCHEDULER_KEY = "heartbeat:scheduler"


def scheduler_beat() -> None:
    connection = django_rq.get_connection("default")
    connection.set(
        SCHEDULER_KEY, f"{time.time():.3f}", ex=max(settings.HEARTBEAT_STALE_SECONDS * 10, 600)
    )


def scheduler_last_beat_age() -> float | None:
    value = django_rq.get_connection("default").get(SCHEDULER_KEY)
    return None if value is None else max(0.0, time.time() - float(value))


def live_workers() -> list[dict[str, object]]:
    """Workers whose heartbeat is fresh, with the queues they listen to."""
    connection = django_rq.get_connection("default")
    now = time.time()
    alive = []
    for worker in Worker.all(connection=connection):
        if worker.last_heartbeat is None:
            continue
        age = now - worker.last_heartbeat.timestamp()
        if age <= settings.HEARTBEAT_STALE_SECONDS:
            alive.append(
                {
                    "name": worker.name,
                    "queues": worker.queue_names(),
                    "state": worker.get_state(),
                    "heartbeat_age_seconds": round(age, 1),
                }
            )
    return alive
