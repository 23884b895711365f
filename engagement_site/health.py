"""GET /healthz: database, Redis, RQ workers, scheduler. 503 when any part is down."""

from __future__ import annotations

import time

import django_rq
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from engagement_site import heartbeat


def _timed(check) -> dict[str, object]:
    started = time.perf_counter()
    try:
        result = {"ok": True, **(check() or {})}
    except Exception as error:  # a health check reports every failure, whatever its kind
        result = {"ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def _database() -> dict[str, object]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {}


def _redis() -> dict[str, object]:
    django_rq.get_connection("default").ping()
    return {}


def _workers() -> dict[str, object]:
    workers = heartbeat.live_workers()
    if not workers:
        raise RuntimeError(
            f"no RQ worker has sent a heartbeat in the last {settings.HEARTBEAT_STALE_SECONDS}s"
        )
    return {"count": len(workers), "workers": workers}


def _scheduler() -> dict[str, object]:
    age = heartbeat.scheduler_last_beat_age()
    if age is None:
        raise RuntimeError("the scheduler has never sent a heartbeat")
    if age > settings.HEARTBEAT_STALE_SECONDS:
        raise RuntimeError(f"the scheduler's last heartbeat is {age:.0f}s old")
    return {"heartbeat_age_seconds": round(age, 1)}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _timed(_database), "redis": _timed(_redis)}
    if checks["redis"]["ok"]:
        checks["worker"] = _timed(_workers)
        checks["scheduler"] = _timed(_scheduler)
    else:
        checks["worker"] = {"ok": False, "error": "unknown: Redis is down"}
        checks["scheduler"] = {"ok": False, "error": "unknown: Redis is down"}
    healthy = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "down", "checks": checks}, status=200 if healthy else 503
    )
