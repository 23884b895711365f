"""A local stand-in for Meta's WhatsApp Cloud API send endpoint
(`POST /<version>/<phone number id>/messages`), checking a request as the Graph API
does and answering in its shapes.

It wants `Authorization: Bearer <access token>` (401, code 190 OAuthException), a
JSON body with `messaging_product` "whatsapp", `to` as digits, `type` "template" and
a template with a lowercase name, a `language.code` and body components of text
parameters (400, code 100 or 132000, naming the field). It answers 200 with
`contacts` and `messages[0].id` ("wamid...."). Numbers in `refuse` get the error
queued for them (e.g. 131026); statuses queued in `answers` (429 with code 130429,
500 with 131000, 503) are answered first. `received` keeps every authenticated
request (path, headers, JSON); `sent` the accepted ones.

`sign(body)` signs a webhook the way Meta does (X-Hub-Signature-256, app secret).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass

from tests.delivery.local_http import LocalHandler, LocalServer

API_VERSION = "v21.0"
PHONE_NUMBER_ID = "106540352242922"
ACCESS_TOKEN = "EAAG" + "x" * 40
APP_SECRET = "7b" * 16
VERIFY_TOKEN = "acme-verify-7d1f"
ERRORS = {
    100: ("OAuthException", "(#100) Invalid parameter"),
    131026: ("OAuthException", "(#131026) Message Undeliverable."),
    131047: ("OAuthException", "(#131047) Re-engagement message"),
    130429: ("OAuthException", "(#130429) Rate limit hit"),
    131056: ("OAuthException", "(#131056) (Business Account, Consumer Account) pair rate limit hit"),
    80007: ("OAuthException", "(#80007) Rate limit issues"),
    131000: ("OAuthException", "(#131000) Something went wrong"),
    132000: ("OAuthException", "(#132000) Number of parameters does not match the expected number of params"),
    132001: ("OAuthException", "(#132001) Template name does not exist in the translation"),
}  # fmt: skip
CANNED = {429: 130429, 500: 131000, 503: 131000}


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    json: object


class FakeMeta(LocalServer):
    def __init__(
        self,
        *,
        api_version: str = API_VERSION,
        phone_number_id: str = PHONE_NUMBER_ID,
        access_token: str = ACCESS_TOKEN,
        app_secret: str = APP_SECRET,
    ):
        super().__init__(_Handler)
        self.api_version, self.phone_number_id = api_version, phone_number_id
        self.access_token, self.app_secret = access_token, app_secret
        # Approved templates: name -> (languages, number of body parameters).
        self.templates: dict[str, tuple[set[str], int]] = {}
        self.refuse: dict[str, int] = {}
        self.answers: list[int] = []
        self.received: list[Request] = []
        self.sent: list[dict] = []

    def sign(self, body: bytes) -> str:
        return "sha256=" + hmac.new(self.app_secret.encode(), body, hashlib.sha256).hexdigest()


def error_body(code: int, message: str = "", details: str = "") -> dict:
    kind, text = ERRORS.get(code, ("OAuthException", f"(#{code}) Error"))
    error = {
        "message": message or text,
        "type": kind,
        "code": code,
        "fbtrace_id": "A" + secrets.token_hex(8),
    }
    if details:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return {"error": error}


class _Handler(LocalHandler):
    server: FakeMeta

    def do_POST(self):
        status, payload = self._answer(self.body())
        self.reply(status, json.dumps(payload).encode(), "application/json; charset=UTF-8")

    def _answer(self, body: bytes) -> tuple[int, dict]:
        server = self.server
        if self.path != f"/{server.api_version}/{server.phone_number_id}/messages":
            return 400, error_body(
                100,
                f"Unsupported post request. Object with ID '{self.path}' does not exist, "
                "cannot be loaded due to missing permissions, or does not support this "
                "operation.",
            )
        if self.headers.get("Authorization", "") != f"Bearer {server.access_token}":
            return 401, {
                "error": {
                    "message": "Invalid OAuth access token - Cannot parse access token",
                    "type": "OAuthException",
                    "code": 190,
                    "fbtrace_id": "A" + secrets.token_hex(8),
                }
            }
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            return 400, error_body(100, details="the body must be JSON")
        try:
            payload = json.loads(body)
        except ValueError:
            return 400, error_body(100, details="the body is not JSON")
        with server.lock:
            server.received.append(Request(self.path, dict(self.headers), payload))
            if server.answers:
                status = server.answers.pop(0)
                return status, error_body(CANNED[status])
        return self._message(payload)

    def _message(self, payload) -> tuple[int, dict]:
        server = self.server
        if not isinstance(payload, dict) or payload.get("messaging_product") != "whatsapp":
            return 400, error_body(100, details="messaging_product must be 'whatsapp'")
        to = payload.get("to")
        if not isinstance(to, str) or not re.fullmatch(r"[1-9][0-9]{6,14}", to):
            return 400, error_body(100, details="to: a phone number in digits, country first")
        if payload.get("type") != "template":
            # Outside a 24-hour window only templates may be sent.
            return 400, error_body(131047)
        template = payload.get("template")
        if not isinstance(template, dict):
            return 400, error_body(100, details="template is required")
        name = template.get("name")
        language = (template.get("language") or {}).get("code")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]+", name):
            return 400, error_body(100, details="template.name")
        if not isinstance(language, str) or not language:
            return 400, error_body(100, details="template.language.code is required")
        parameters = []
        for component in template.get("components", []):
            if component.get("type") != "body":
                return 400, error_body(100, details="only body components are expected here")
            for parameter in component.get("parameters", []):
                if parameter.get("type") != "text" or not isinstance(parameter.get("text"), str):
                    return 400, error_body(100, details="body parameters must be text")
                parameters.append(parameter["text"])
        approved = server.templates.get(name)
        if approved is None or language not in approved[0]:
            return 404, error_body(
                132001, details=f"template name ({name}) does not exist in {language}"
            )
        if len(parameters) != approved[1]:
            return 400, error_body(132000, details=f"body: expected {approved[1]} parameters")
        if to in server.refuse:
            return 400, error_body(server.refuse[to])
        message_id = "wamid." + base64.b64encode(secrets.token_bytes(24)).decode()
        with server.lock:
            server.sent.append({"id": message_id, **payload})
        return 200, {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": message_id, "message_status": "accepted"}],
        }
