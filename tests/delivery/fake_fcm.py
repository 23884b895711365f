"""A local stand-in for Google's OAuth2 token endpoint and FCM's HTTP v1 send API.

`POST /token` is the JWT-bearer grant google-auth uses for service accounts: it checks
the grant type, verifies the assertion's RS256 signature with the test account's
public key, its issuer, audience, scope and expiry, and issues an access token.
`POST /v1/projects/<id>/messages:send` wants one of those tokens and a well-formed
message, and answers as FCM does: `{"name": ...}`, or its error shape (404
UNREGISTERED for tokens in `unregistered`, scripted errors queued in `answers`).
"""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.delivery.local_http import LocalHandler, LocalServer

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
# The audience google-auth (like Google's other client libraries) signs for, whatever
# token_uri the account names: the one Google's token endpoint checks.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
_ERRORS = {
    400: ("INVALID_ARGUMENT", "INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", "Request had invalid credentials."),
    404: ("NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded for sending messages."),
    500: ("INTERNAL", "INTERNAL", "Internal error encountered."),
    503: ("UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable."),
}


def fcm_error_body(status: int, message: str = "") -> bytes:
    grpc_status, code, text = _ERRORS[status]
    return json.dumps(
        {
            "error": {
                "code": status,
                "message": message or text,
                "status": grpc_status,
                "details": [
                    {
                        "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                        "errorCode": code,
                    }
                ],
            }
        }
    ).encode()


class FakeFcm(LocalServer):
    def __init__(self, project_id: str = "acme-app"):
        super().__init__(_Handler)
        self.project_id = project_id
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.client_email = f"push@{project_id}.iam.gserviceaccount.com"
        self.token_requests: list[dict] = []  # verified JWT claims
        self.issued: list[str] = []
        self.sends: list[dict] = []  # {"path", "authorization", "body"}
        self.answers: list[int] = []  # statuses for the next sends, then 200
        self.unregistered: set[str] = set()

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def service_account(self) -> dict:
        """A service-account key file of the kind Firebase's console hands out."""
        pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": "key-1",
            "private_key": pem,
            "client_email": self.client_email,
            "client_id": "1234567890",
            "token_uri": self.token_uri,
        }


class _Handler(LocalHandler):
    server: FakeFcm

    def _answer(self, status: int, body: bytes) -> None:
        self.reply(status, body, "application/json; charset=UTF-8")

    def do_POST(self):
        raw = self.body()
        if self.path == "/token":
            return self._token(raw)
        prefix = f"/v1/projects/{self.server.project_id}/messages:send"
        if self.path != prefix:
            return self._answer(404, fcm_error_body(404, f"No such path {self.path}"))
        return self._send(raw)

    def _token(self, raw: bytes) -> None:
        form = {key: values[0] for key, values in parse_qs(raw.decode()).items()}
        if form.get("grant_type") != JWT_BEARER:
            return self._answer(400, json.dumps({"error": "unsupported_grant_type"}).encode())
        try:
            claims = jwt.decode(
                form.get("assertion", ""),
                self.server.key.public_key(),
                algorithms=["RS256"],
                audience=GOOGLE_TOKEN_AUDIENCE,
                issuer=self.server.client_email,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.PyJWTError as error:
            body = {"error": "invalid_grant", "error_description": f"Invalid JWT: {error}"}
            return self._answer(400, json.dumps(body).encode())
        if claims.get("scope") != FCM_SCOPE:
            body = {"error": "invalid_scope", "error_description": "wrong scope"}
            return self._answer(400, json.dumps(body).encode())
        with self.server.lock:
            self.server.token_requests.append(claims)
            token = f"ya29.fake-{len(self.server.issued) + 1}-{int(time.time())}"
            self.server.issued.append(token)
        body = {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}
        self._answer(200, json.dumps(body).encode())

    def _send(self, raw: bytes) -> None:
        authorization = self.headers.get("Authorization", "")
        with self.server.lock:
            self.server.sends.append(
                {"path": self.path, "authorization": authorization, "body": raw}
            )
            scripted = self.server.answers.pop(0) if self.server.answers else None
        if authorization.removeprefix("Bearer ") not in self.server.issued:
            return self._answer(401, fcm_error_body(401))
        try:
            message = json.loads(raw)["message"]
            token = message["token"]
            data = message.get("data", {})
        except (ValueError, KeyError, TypeError):
            return self._answer(400, fcm_error_body(400, "Invalid JSON payload received."))
        if not all(isinstance(value, str) for value in data.values()):
            return self._answer(400, fcm_error_body(400, "data values must be strings"))
        if scripted is not None:
            return self._answer(scripted, fcm_error_body(scripted))
        if token in self.server.unregistered:
            return self._answer(404, fcm_error_body(404))
        name = f"projects/{self.server.project_id}/messages/0:{len(self.server.sends)}"
        self._answer(200, json.dumps({"name": name}).encode())
