"""A local stand-in for a browser vendor's push service (RFC 8030 with VAPID, RFC 8292,
and aes128gcm payloads, RFC 8291).

`subscribe(name)` makes what a browser's `pushManager.subscribe` hands a site: an
endpoint on this server and keys (a real P-256 key pair and auth secret, whose private
half stays here). `POST /push/<name>` checks `Authorization: vapid t=<JWT>, k=<key>`
(the ES256 signature against k, aud = this server's origin, exp in the future and at
most 24 hours ahead, a sub), requires `TTL` and `Content-Encoding: aes128gcm`, then
decrypts the body with the subscription's private key and records the plaintext.
It answers 201 with a Location, 410 for names in `gone`, or a status queued in
`answers`.
"""

from __future__ import annotations

import base64
import os
import re
import time

import http_ece
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.delivery.local_http import LocalHandler, LocalServer

_VAPID = re.compile(r"^vapid\s+t=([^,\s]+)\s*,\s*k=([^,\s]+)$")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class FakePushService(LocalServer):
    def __init__(self):
        super().__init__(_Handler)
        self.subscriptions: dict[str, tuple[ec.EllipticCurvePrivateKey, bytes]] = {}
        self.received: list[dict] = []  # accepted pushes: name, headers, claims, payload
        self.requests: list[dict] = []  # every push attempt: name, status
        self.answers: list[int] = []
        self.gone: set[str] = set()

    @property
    def origin(self) -> str:
        return self.url

    def subscribe(self, name: str) -> dict:
        """A PushSubscription's JSON, as the browser gives it to the page."""
        key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        self.subscriptions[name] = (key, auth)
        public = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": f"{self.origin}/push/{name}",
            "keys": {"p256dh": b64url(public), "auth": b64url(auth)},
        }

    def to(self, name: str) -> list[dict]:
        return [push for push in self.received if push["name"] == name]


class _Handler(LocalHandler):
    server: FakePushService

    def _answer(self, status: int, text: str = "", headers: dict | None = None) -> None:
        self.reply(status, text.encode(), "text/plain", headers)

    def _refuse(self, name: str, status: int, text: str) -> None:
        with self.server.lock:
            self.server.requests.append({"name": name, "status": status, "error": text})
        self._answer(status, text)

    def do_POST(self):
        raw = self.body()
        name = self.path.removeprefix("/push/")
        if not self.path.startswith("/push/") or name not in self.server.subscriptions:
            return self._refuse(name, 404, "no such subscription")
        with self.server.lock:
            scripted = self.server.answers.pop(0) if self.server.answers else None
        claims = self._vapid_claims()
        if isinstance(claims, str):
            return self._refuse(name, 401, claims)
        if self.headers.get("TTL") is None or not self.headers["TTL"].isdigit():
            return self._refuse(name, 400, "TTL header missing")
        if self.headers.get("Content-Encoding") != "aes128gcm":
            return self._refuse(name, 415, "Content-Encoding must be aes128gcm")
        key, auth = self.server.subscriptions[name]
        try:
            payload = http_ece.decrypt(raw, private_key=key, auth_secret=auth, version="aes128gcm")
        except Exception as error:
            return self._refuse(name, 400, f"cannot decrypt: {error}")
        if scripted is not None:
            return self._refuse(name, scripted, f"scripted {scripted}")
        if name in self.server.gone:
            return self._refuse(name, 410, "push subscription has unsubscribed or expired")
        with self.server.lock:
            self.server.requests.append({"name": name, "status": 201, "error": ""})
            self.server.received.append(
                {
                    "name": name,
                    "headers": {key.lower(): value for key, value in self.headers.items()},
                    "claims": claims,
                    "public_key": self._public_key,
                    "payload": payload,
                }
            )
            location = f"{self.server.origin}/m/{len(self.server.received)}"
        self._answer(201, headers={"Location": location})

    def _vapid_claims(self) -> dict | str:
        """The verified JWT claims, or why the Authorization header is refused."""
        found = _VAPID.match(self.headers.get("Authorization", "").strip())
        if not found:
            return "Authorization must be vapid t=<JWT>, k=<public key>"
        token, self._public_key = found.groups()
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(
                ec.SECP256R1(), b64url_decode(self._public_key)
            )
            claims = jwt.decode(
                token,
                public,
                algorithms=["ES256"],
                audience=self.server.origin,
                options={"require": ["exp", "aud", "sub"]},
            )
        except (ValueError, jwt.PyJWTError) as error:
            return f"invalid VAPID JWT: {error}"
        if claims["exp"] > time.time() + 24 * 3600:
            return "VAPID exp is more than 24 hours ahead"
        return claims
