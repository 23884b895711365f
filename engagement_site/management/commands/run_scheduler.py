"""The scheduler loop: every SCHEDULER_INTERVAL_SECONDS it beats its heartbeat and
runs each registered periodic duty. Later issues register duties (due enrollments,
expired locks, segment recomputes) in SCHEDULER_DUTIES."""

from __future__ import annotations

import logging
import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections
from django.utils.module_loading import import_string

from engagement_site import heartbeat

logger = logging.getLogger("engagement.scheduler")


class Command(BaseCommand):
    help = "Run the scheduler loop (heartbeat + periodic duties) until SIGINT/SIGTERM."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Run one tick and exit.")

    def handle(self, *args, once: bool = False, **options):
        self.running = True

        def stop(signum, frame):
            self.running = False

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        duties = [import_string(path) for path in getattr(settings, "SCHEDULER_DUTIES", [])]
        interval = settings.SCHEDULER_INTERVAL_SECONDS
        logger.info("scheduler started: tick every %ss, %d duties", interval, len(duties))
        ticks = 0
        while self.running:
            started = time.monotonic()
            heartbeat.scheduler_beat()
            for duty in duties:
                # Like a request: a lost database connection (a server restart, a
                # failover) is dropped before each duty, or it would fail every duty of
                # every later tick while the heartbeat (in Redis) said all was well.
                close_old_connections()
                try:
                    duty()
                except Exception:  # one failing duty must not stop the others or the loop
                    logger.exception("scheduler duty %s failed", duty.__name__)
            ticks += 1
            if ticks % max(1, 60 // interval) == 0:
                logger.info("scheduler heartbeat (%d ticks)", ticks)
            if once:
                break
            remaining = interval - (time.monotonic() - started)
            while self.running and remaining > 0:
                time.sleep(min(remaining, 0.2))
                remaining -= 0.2
        logger.info("scheduler stopped")
