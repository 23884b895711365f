"""`make run`'s development mail server: takes mail on 127.0.0.1 and keeps it in the
outbox (delivery.devmail) until SIGINT / SIGTERM."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from aiosmtpd.controller import Controller
from django.conf import settings
from django.core.management.base import BaseCommand

from delivery.devmail import OutboxHandler


class Command(BaseCommand):
    help = "Run the development SMTP server that keeps every message in the outbox."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=settings.DEV_SMTP_PORT)

    def handle(self, *args, port: int, **options):
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        controller = Controller(
            OutboxHandler(Path(settings.DEV_OUTBOX_DIR)), hostname="127.0.0.1", port=port
        )
        controller.start()
        self.stdout.write(
            f"Development SMTP server on 127.0.0.1:{port}, outbox {settings.DEV_OUTBOX_DIR}"
        )
        stop.wait()
        controller.stop()
