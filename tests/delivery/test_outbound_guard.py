"""The outbound guard (engagement_site/outbound.py): a webhook or a provider base URL
may not reach loopback, private, link-local (cloud metadata) or other non-public
addresses unless OUTBOUND_ALLOWED_NETWORKS lets them through. Refused webhooks fail
for good and the receiver gets nothing; redirects to a refused address are not
followed; the connection goes to the address that was checked (no DNS rebinding);
TLS still checks the host name; settings refuse such URLs when they are saved.

The suite allows loopback (tests/conftest.py); tests here that want the production
rule set `settings.OUTBOUND_ALLOWED_NETWORKS = []`."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from content import services as content_services
from delivery.channels.base import Outgoing
from delivery.channels.push import PushConfig, _Credentials
from delivery.channels.webhook import WebhookChannel
from delivery.channels.whatsapp import WhatsAppConfig
from delivery.models import ChannelSettings, Message
from delivery.services import channel_settings_save
from engagement_site import outbound
from journeys import services as journey_services
from segments.models import Profile
from tests.conftest import SETUP
from tests.delivery.test_email import _work
from tests.journeys.test_executor import EDITOR, _run_journey

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALLOW_HINT = "allow it with OUTBOUND_ALLOWED_NETWORKS"
ACCOUNT_SID = "AC" + "0" * 32


class _Server(ThreadingHTTPServer):
    """A local HTTP server that records requests and answers 200, or redirects every
    request to `redirect_to` when it is set."""

    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1", context: ssl.SSLContext | None = None):
        super().__init__((host, 0), _Handler)
        if context is not None:
            self.socket = context.wrap_socket(self.socket, server_side=True)
        self.requests: list[dict] = []
        self.redirect_to = ""

    @property
    def port(self) -> int:
        return self.server_address[1]

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append({"method": self.command, "path": self.path, "body": body})
        if self.server.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.server.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        payload = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    with _Server() as server:
        yield server


def _outgoing(url: str) -> Outgoing:
    return Outgoing(
        message_id=1,
        idempotency_key="msg-1",
        workspace_id=1,
        to="webhook",
        fields={"method": "POST", "url": url, "headers": {}, "body": '{"user": "ada"}'},
    )


def _fake_dns(monkeypatch, answers: dict[str, list[list[str]]]) -> dict[str, int]:
    """socket.getaddrinfo answering the names in `answers` with the next list of
    addresses (the last one repeats); every other name (and IP literal) as usual.
    Returns the number of look-ups per faked name."""
    real = socket.getaddrinfo
    calls = dict.fromkeys(answers, 0)

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        replies = answers[host]
        addresses = replies[min(calls[host], len(replies) - 1)]
        calls[host] += 1
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (address, port, 0, 0) if ":" in address else (address, port),
            )
            for address in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


# --------------------------------------------------------------------------- the decision


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.5", "private"),
        ("172.16.4.2", "private"),
        ("192.168.1.10", "private"),
        ("fd00::5", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.1.1", "multicast"),
        ("ff0e::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
        ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
        ("::ffff:10.0.0.5", "IPv4-mapped private"),
        ("2002:a00:5::1", "6to4 private"),
    ],
)
def test_non_public_addresses_are_refused_by_kind(address, kind):
    assert outbound.address_refusal(address, allowed=[]) == kind


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_may_be_reached(address):
    assert outbound.address_refusal(address, allowed=[]) is None


def test_allowed_networks_let_their_addresses_through_and_only_those():
    allowed = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("10.1.0.0/16")]
    assert outbound.address_refusal("127.0.0.1", allowed=allowed) is None
    assert outbound.address_refusal("::ffff:127.0.0.1", allowed=allowed) is None
    assert outbound.address_refusal("10.1.2.3", allowed=allowed) is None
    assert outbound.address_refusal("10.2.0.1", allowed=allowed) == "private"
    assert outbound.address_refusal("::1", allowed=allowed) == "loopback"


def test_a_public_host_name_passes_the_url_check(monkeypatch):
    calls = _fake_dns(monkeypatch, {"hooks.example.com": [["93.184.216.34", "2606:2800::1"]]})
    assert outbound.url_refusal("https://hooks.example.com/in?x=1") is None
    assert outbound.url_refusal("http://8.8.8.8:8080/") is None
    assert calls == {"hooks.example.com": 1}


def test_a_host_is_refused_when_any_of_its_addresses_is(monkeypatch):
    _fake_dns(monkeypatch, {"mixed.example.com": [["93.184.216.34", "10.0.0.5"]]})
    assert outbound.url_refusal("https://mixed.example.com/") == (
        f"host mixed.example.com resolves to a private address (10.0.0.5); {ALLOW_HINT}"
    )


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://files.example.com/x", "only http and https URLs may be called, not 'ftp'"),
        ("file:///etc/passwd", "only http and https URLs may be called, not 'file'"),
        ("gopher://127.0.0.1:6379/_INFO", "only http and https URLs may be called, not 'gopher'"),
        ("hooks.example.com/in", "only http and https URLs may be called, not 'no scheme'"),
        ("http:///in", "the URL has no host"),
    ],
)
def test_only_http_and_https_urls_with_a_host_may_be_called(url, problem):
    assert outbound.scheme_problem(url) == problem
    assert outbound.url_refusal(url) == problem


def test_numeric_host_spellings_are_judged_by_what_they_resolve_to(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    for host in ("2130706433", "0x7f.1", "127.1"):
        assert outbound.url_refusal(f"http://{host}/") == (
            f"host {host} resolves to a loopback address (127.0.0.1); {ALLOW_HINT}"
        )


# --------------------------------------------------------------------------- webhooks


def _hook_journey(workspace, url: str):
    template = content_services.template_create(
        workspace=workspace, name="CRM sync", channel="webhook",
        content={"default": {"method": "POST", "url": url, "body": '{"user": {{ profile.user_id | json }}}'}},
        context=EDITOR,
    )  # fmt: skip
    return _run_journey(
        workspace, "Sync",
        [
            {"id": "api", "type": "trigger", "trigger": {"kind": "api"}},
            {"id": "hook", "type": "action", "action": {"kind": "webhook", "template_id": template.pk}},
            {"id": "end", "type": "exit"},
        ],
        [{"source": "api", "target": "hook"}, {"source": "hook", "target": "end"}],
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_journey_webhook_to_loopback_fails_for_good_and_reaches_nobody(
    workspace, receiver, settings
):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    journey = _hook_journey(workspace, f"http://127.0.0.1:{receiver.port}/crm")
    ada = Profile.objects.create(workspace=workspace, user_id="ada")
    journey_services.journey_enroll(journey=journey, profile_id=ada.pk, context=EDITOR)
    _work()
    message = Message.objects.get(profile=ada)
    assert (message.status, message.reason, message.attempts) == ("failed", "provider_refused", 1)
    assert message.last_error == f"webhook URL host 127.0.0.1 is a loopback address; {ALLOW_HINT}"
    assert len(receiver.requests) == 0


@pytest.mark.django_db(transaction=True)
def test_the_same_webhook_goes_out_when_loopback_is_allowed(workspace, receiver):
    journey = _hook_journey(workspace, f"http://127.0.0.1:{receiver.port}/crm")
    ada = Profile.objects.create(workspace=workspace, user_id="ada")
    journey_services.journey_enroll(journey=journey, profile_id=ada.pk, context=EDITOR)
    _work()
    assert Message.objects.get(profile=ada).status == "sent"
    assert [(r["path"], json.loads(r["body"])) for r in receiver.requests] == [
        ("/crm", {"user": "ada"})
    ]


@pytest.mark.parametrize(
    ("url", "error"),
    [
        (
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "webhook URL host 169.254.169.254 is a link-local address",
        ),
        ("http://10.0.0.5:8080/admin", "webhook URL host 10.0.0.5 is a private address"),
        ("http://[::1]:6379/", "webhook URL host ::1 is a loopback address"),
        (
            "http://localhost:6379/",
            "webhook URL host localhost resolves to a loopback address (127.0.0.1)",
        ),
        (
            "http://[::ffff:127.0.0.1]:6379/",
            "webhook URL host ::ffff:127.0.0.1 is an IPv4-mapped loopback address",
        ),
        (
            "http://[::ffff:a9fe:a9fe]/",
            "webhook URL host ::ffff:a9fe:a9fe is an IPv4-mapped link-local address",
        ),
        (
            "http://100.100.100.200/latest/meta-data/",
            "webhook URL host 100.100.100.200 is a carrier-grade NAT address",
        ),
    ],
)
def test_webhooks_to_internal_addresses_fail_for_good(url, error, settings, monkeypatch):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    # "localhost" may list ::1 before 127.0.0.1; the test wants one answer.
    _fake_dns(monkeypatch, {"localhost": [["127.0.0.1", "::1"]]})
    result = WebhookChannel().send(_outgoing(url))
    assert (result.status, result.error) == ("permanent", f"{error}; {ALLOW_HINT}")


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/hook", "file:///etc/passwd", "hooks.example.com"])
def test_webhooks_to_other_schemes_fail_for_good(url):
    result = WebhookChannel().send(_outgoing(url))
    assert result.status == "permanent"
    assert result.error.startswith("webhook URL: only http and https URLs may be called")


def test_a_redirect_to_a_refused_address_is_not_followed(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    with _Server("127.0.0.2") as inside, _Server() as hop:
        hop.redirect_to = f"http://127.0.0.2:{inside.port}/secret"
        result = WebhookChannel().send(_outgoing(f"http://127.0.0.1:{hop.port}/in"))
        assert result.status == "permanent"
        assert result.error.startswith("302 Found")
        assert len(hop.requests) == 1
        # A client that follows redirects through the guard is stopped at the hop.
        client = httpx.Client(transport=outbound.transport(), follow_redirects=True)
        with client, pytest.raises(outbound.OutboundRefused) as refused:
            client.get(f"http://127.0.0.1:{hop.port}/in")
        assert str(refused.value) == f"host 127.0.0.2 is a loopback address; {ALLOW_HINT}"
        assert len(hop.requests) == 2
        assert len(inside.requests) == 0


def test_the_connection_goes_to_the_address_that_was_checked(monkeypatch, receiver):
    """DNS rebinding: the name answers a permitted address, then the metadata one. The
    request is sent over a connection to the first, looked up once; a new connection
    looks the name up again and is refused."""
    calls = _fake_dns(monkeypatch, {"rebind.example.com": [["127.0.0.1"], ["169.254.169.254"]]})
    url = f"http://rebind.example.com:{receiver.port}/in"
    assert WebhookChannel().send(_outgoing(url)).status == "sent"
    assert calls == {"rebind.example.com": 1}
    assert len(receiver.requests) == 1
    result = WebhookChannel().send(_outgoing(url))
    assert (result.status, result.error) == (
        "permanent",
        "webhook URL host rebind.example.com resolves to a link-local address "
        f"(169.254.169.254); {ALLOW_HINT}",
    )
    assert len(receiver.requests) == 1


def _certificate_for(name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def test_tls_still_checks_the_host_name_of_a_pinned_connection(tmp_path):
    cert_pem, key_pem = _certificate_for("localhost")
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    trusting = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    client = httpx.Client(transport=outbound.transport(verify=trusting))
    with _Server(context=server_context) as server, client:
        assert client.get(f"https://localhost:{server.port}/").status_code == 200
        # Same server and address, but the certificate does not name 127.0.0.1.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            client.get(f"https://127.0.0.1:{server.port}/")
    assert [request["path"] for request in server.requests] == ["/"]


# --------------------------------------------------------------------------- settings


@pytest.mark.django_db
def test_a_provider_base_url_at_an_internal_address_is_refused_on_save(workspace, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    config = {
        "base_url": "http://169.254.169.254/",
        "account_sid": ACCOUNT_SID,
        "auth_token": "secret",
        "from_number": "+14155550100",
    }
    with pytest.raises(ValidationError) as refused:
        channel_settings_save(workspace=workspace, channel="sms", config=config, context=SETUP)
    [error] = refused.value.errors()
    assert error["loc"] == ("base_url",)
    assert (
        error["msg"] == f"Value error, host 169.254.169.254 is a link-local address; {ALLOW_HINT}"
    )
    assert not ChannelSettings.objects.filter(workspace=workspace, channel="sms").exists()
    # A host name is looked up when the messages go, not when the settings are saved.
    saved = channel_settings_save(
        workspace=workspace,
        channel="sms",
        config={**config, "base_url": "https://twilio-proxy.example.com"},
        context=SETUP,
    )
    assert saved.config["base_url"] == "https://twilio-proxy.example.com"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"provider": "meta", "base_url": "http://10.0.0.5", "phone_number_id": "1",
             "access_token": "t", "app_secret": "s", "verify_token": "v"},
            f"host 10.0.0.5 is a private address; {ALLOW_HINT}",
        ),
        (
            {"provider": "twilio", "base_url": "http://[::1]:8080", "account_sid": ACCOUNT_SID,
             "auth_token": "t", "from_number": "+14155550100"},
            f"host ::1 is a loopback address; {ALLOW_HINT}",
        ),
    ],
)  # fmt: skip
def test_whatsapp_base_urls_are_checked_on_save(config, message, settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    with pytest.raises(ValidationError) as refused:
        WhatsAppConfig.model_validate(config)
    [error] = refused.value.errors()
    assert (error["loc"], error["msg"]) == (("base_url",), f"Value error, {message}")


def _service_account(token_uri: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return json.dumps(
        {
            "type": "service_account",
            "client_email": "push@acme-app.iam.gserviceaccount.com",
            "private_key": pem,
            "token_uri": token_uri,
        }
    )


def test_push_base_url_and_token_uri_are_checked_on_save(settings):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    account = _service_account("https://oauth2.googleapis.com/token")
    with pytest.raises(ValidationError) as refused:
        PushConfig.model_validate(
            {"project_id": "acme", "service_account_json": account, "base_url": "http://0.0.0.0:9"}
        )
    assert [(e["loc"], e["msg"]) for e in refused.value.errors()] == [
        (("base_url",), f"Value error, host 0.0.0.0 is an unspecified address; {ALLOW_HINT}")
    ]
    with pytest.raises(ValidationError) as refused:
        PushConfig.model_validate(
            {"project_id": "acme", "service_account_json": _service_account("http://10.9.8.7/t")}
        )
    assert refused.value.errors()[0]["msg"] == (
        "Value error, service_account_json token_uri: "
        f"host 10.9.8.7 is a private address; {ALLOW_HINT}"
    )


def test_push_token_uri_is_checked_before_the_token_request(settings, monkeypatch):
    settings.OUTBOUND_ALLOWED_NETWORKS = []
    _fake_dns(monkeypatch, {"tokens.example.com": [["192.168.0.20"]]})
    account = json.loads(_service_account("https://tokens.example.com/token"))
    credentials = _Credentials(account)
    with outbound.requests_session() as session, pytest.raises(outbound.OutboundRefused) as refused:
        credentials.token(session)
    assert str(refused.value) == (
        "token_uri host tokens.example.com resolves to a private address (192.168.0.20); "
        + ALLOW_HINT
    )


def _settings_in_a_new_process(environment: dict[str, str]) -> subprocess.CompletedProcess:
    script = "import django; django.setup(); from django.conf import settings; print(settings.OUTBOUND_ALLOWED_NETWORKS)"
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env={**os.environ, **environment},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_the_setting_reads_a_comma_separated_list_and_refuses_a_bad_network():
    given = _settings_in_a_new_process({"OUTBOUND_ALLOWED_NETWORKS": "10.20.0.0/16, fd00:ab::/32"})
    assert given.stdout.strip() == "['10.20.0.0/16', 'fd00:ab::/32']"
    bad = _settings_in_a_new_process({"OUTBOUND_ALLOWED_NETWORKS": "10.0.0.0/33"})
    assert bad.returncode != 0
    assert "OUTBOUND_ALLOWED_NETWORKS entry '10.0.0.0/33' is not a network" in bad.stderr


def test_development_allows_loopback_and_the_test_profile_nothing():
    environment = {"OUTBOUND_ALLOWED_NETWORKS": ""}
    development = _settings_in_a_new_process({**environment, "DJANGO_ENV": "development"})
    assert development.stdout.strip() == "['127.0.0.0/8', '::1/128']"
    test = _settings_in_a_new_process({**environment, "DJANGO_ENV": "test"})
    assert test.stdout.strip() == "[]"
