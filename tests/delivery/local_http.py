"""The skeleton the local HTTP servers of the delivery tests share (the fake Twilio,
Meta, FCM and push service, and the webhook receiver): a threaded server on a free
port of 127.0.0.1 that serves for the length of a with-block, and a handler that reads
a body, writes whole responses and logs nothing."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LocalServer(ThreadingHTTPServer):
    """A threaded HTTP server on a free local port; `with server:` serves on a thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        super().__init__(("127.0.0.1", 0), handler)
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.shutdown()
        self.server_close()


class LocalHandler(BaseHTTPRequestHandler):
    """A request handler with `body()` and `reply()`, silent in the test log."""

    def body(self) -> bytes:
        """The request body, as long as its Content-Length says."""
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def reply(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        """One whole response: the status, the headers with Content-Length, the body."""
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Receiver(LocalServer):
    """A webhook receiver: records each request (path, headers, body) and answers it
    with the next status queued in `answers` (200 when none are), a JSON error body for
    errors, and an `X-Request-Id` of `req-<number of requests so far>`."""

    def __init__(self):
        super().__init__(_ReceiverHandler)
        self.requests: list[dict] = []
        self.answers: list[int] = []


class _ReceiverHandler(LocalHandler):
    server: Receiver

    def do_POST(self):
        body = self.body()
        self.server.requests.append(
            {"path": self.path, "headers": dict(self.headers), "body": body}
        )
        status = self.server.answers.pop(0) if self.server.answers else 200
        payload = b'{"error": "try later"}' if status >= 400 else b'{"ok": true}'
        self.reply(
            status,
            payload,
            "application/json",
            {"X-Request-Id": f"req-{len(self.server.requests)}"},
        )
