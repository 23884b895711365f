"""/healthz reports the database, Redis, workers and the scheduler, with 503 when one is down."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import django_rq
import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[2]


def test_without_worker_and_scheduler_health_is_503_and_says_why(client, db):
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "down"
    assert (body["checks"]["database"]["ok"], body["checks"]["redis"]["ok"]) == (True, True)
    assert body["checks"]["worker"]["ok"] is False
    assert "no RQ worker has sent a heartbeat" in body["checks"]["worker"]["error"]
    assert body["checks"]["scheduler"] == {
        "ok": False,
        "error": "RuntimeError: the scheduler has never sent a heartbeat",
        "latency_ms": body["checks"]["scheduler"]["latency_ms"],
    }


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_and_a_scheduler_tick_make_it_healthy(client):
    call_command("run_scheduler", "--once")
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", "default", "--worker-class", "rq.worker.SimpleWorker"],
        cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            response = client.get("/healthz")
            if response.status_code == 200:
                break
            time.sleep(0.2)
        body = response.json()
        assert response.status_code == 200
        assert body["status"] == "ok"
        assert body["checks"]["worker"]["count"] == 1
        assert body["checks"]["worker"]["workers"][0]["queues"] == ["default"]
    finally:
        worker.terminate()
        worker.wait(timeout=20)


def test_a_stale_scheduler_is_reported(client, db, settings):
    call_command("run_scheduler", "--once")
    connection = django_rq.get_connection("default")
    connection.set("heartbeat:scheduler", f"{time.time() - 500:.3f}")
    body = client.get("/healthz").json()
    assert body["checks"]["scheduler"]["ok"] is False
    assert "the scheduler's last heartbeat is 500s old" in body["checks"]["scheduler"]["error"]


def test_redis_down_is_503(client, db, settings):
    settings.RQ_QUEUES = {"default": {"URL": "unix:///nonexistent/redis.sock"}}
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["worker"] == {"ok": False, "error": "unknown: Redis is down"}
