"""A local stand-in for Twilio's Messages API (`POST /2010-04-01/Accounts/<sid>/
Messages.json`), checking a request as Twilio does and answering in its shapes.

It wants HTTP Basic auth with the account's SID and auth token (401, code 20003), a
form body with `To`, `From` or `MessagingServiceSid`, and `Body` or `ContentSid`
(21604, 21603, 21602), E.164 numbers (21211 for `To`, 21212 for `From`), both
addresses on one channel (`whatsapp:` on both or neither, 21910), JSON
ContentVariables (21656). It answers 201 with the message resource (`sid` "SM...",
`status` "queued"), and plays Twilio's test numbers: +15005550001 is invalid (21211),
+15005550002 cannot be routed (21612), +15005550004 has opted out (21610),
+15005550009 cannot receive texts (21614). Statuses queued in `answers` (429, 503)
are answered first, with Twilio's bodies for them. `received` keeps every request
that reached a message (parsed form, headers); `sent` those it accepted.

`sign(url, params)` signs a callback the way Twilio signs its requests to us.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from tests.delivery.local_http import LocalHandler, LocalServer

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f" * 32
MORE_INFO = "https://www.twilio.com/docs/errors/{code}"
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
MAGIC_NUMBERS = {
    "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number: +15005550002, is not currently reachable "
                            "using the 'From' phone number via SMS."),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}  # fmt: skip
CANNED = {
    429: (20429, "Too Many Requests"),
    500: (20500, "An internal server error has occurred"),
    503: (20503, "Service unavailable"),
}


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    form: dict[str, str]


class FakeTwilio(LocalServer):
    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN):
        super().__init__(_Handler)
        self.account_sid, self.auth_token = account_sid, auth_token
        self.received: list[Request] = []
        self.sent: list[dict] = []
        self.answers: list[int] = []

    def sign(self, url: str, params: dict[str, str]) -> str:
        data = url + "".join(f"{key}{params[key]}" for key in sorted(params))
        mac = hmac.new(self.auth_token.encode(), data.encode(), hashlib.sha1)
        return base64.b64encode(mac.digest()).decode()


@dataclass
class _Answer:
    status: int
    body: dict = field(default_factory=dict)


def _error(status: int, code: int, message: str) -> _Answer:
    return _Answer(
        status,
        {"code": code, "message": message, "more_info": MORE_INFO.format(code=code),
         "status": status},
    )  # fmt: skip


class _Handler(LocalHandler):
    server: FakeTwilio

    def do_POST(self):
        answer = self._answer(self.body().decode())
        self.reply(
            answer.status, json.dumps(answer.body).encode(), "application/json; charset=utf-8"
        )

    def _answer(self, raw: str) -> _Answer:
        server = self.server
        path = f"/2010-04-01/Accounts/{server.account_sid}/Messages.json"
        if self.path != path:
            return _error(404, 20404, f"The requested resource {self.path} was not found")
        expected = base64.b64encode(f"{server.account_sid}:{server.auth_token}".encode())
        if self.headers.get("Authorization", "") != f"Basic {expected.decode()}":
            return _error(401, 20003, "Authenticate")
        if not self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return _error(400, 20001, "Unsupported media type: use form parameters")
        form = dict(parse_qsl(raw, keep_blank_values=True))
        with server.lock:
            server.received.append(Request(self.path, dict(self.headers), form))
            if server.answers:
                status = server.answers.pop(0)
                return _error(status, *CANNED[status])
        return self._message(form)

    def _message(self, form: dict[str, str]) -> _Answer:
        to, sender = form.get("To", ""), form.get("From", "")
        service = form.get("MessagingServiceSid", "")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not (sender or service):
            return _error(400, 21603, "A 'From' phone number is required.")
        if not (form.get("Body") or form.get("ContentSid")):
            return _error(400, 21602, "Message body is required.")
        whatsapp = to.startswith("whatsapp:")
        if sender and sender.startswith("whatsapp:") != whatsapp:
            return _error(
                400,
                21910,
                "Invalid From and To pair. From and To should be of the same channel.",
            )
        number = to.removeprefix("whatsapp:")
        if not E164.match(number):
            return _error(400, 21211, f"The 'To' number {number} is not a valid phone number.")
        if sender and not E164.match(sender.removeprefix("whatsapp:")):
            return _error(400, 21212, f"The 'From' number {sender} is not a valid phone number")
        if service and not re.fullmatch(r"MG[0-9a-f]{32}", service):
            return _error(400, 21701, "The Messaging Service Sid is invalid.")
        if form.get("ContentSid"):
            if not re.fullmatch(r"HX[0-9a-f]{32}", form["ContentSid"]):
                return _error(400, 21655, "The ContentSid is Invalid.")
            try:
                variables = json.loads(form.get("ContentVariables", "{}"))
            except ValueError:
                variables = None
            if not isinstance(variables, dict):
                return _error(400, 21656, "The ContentVariables Parameter is invalid.")
        if number in MAGIC_NUMBERS:
            return _error(400, *MAGIC_NUMBERS[number])
        sid = "SM" + secrets.token_hex(16)
        message = {
            "sid": sid,
            "account_sid": self.server.account_sid,
            "api_version": "2010-04-01",
            "to": to,
            "from": sender or None,
            "messaging_service_sid": service or None,
            "body": form.get("Body", ""),
            "status": "queued",
            "num_segments": "1",
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "uri": f"/2010-04-01/Accounts/{self.server.account_sid}/Messages/{sid}.json",
        }
        with self.server.lock:
            self.server.sent.append({**form, "sid": sid})
        return _Answer(201, message)
