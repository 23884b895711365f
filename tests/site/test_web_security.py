"""Web security (issue 11 item 5), each guarantee against the real app:

- CSRF: a POST without the token is refused 403 at every URL of the URL conf (walked,
  so a new view is covered), except the documented token-authenticated ones; every
  POST form in templates/ carries the token; htmx sends it from <body hx-headers>.
- Production settings: secure, HttpOnly, SameSite cookies, HSTS, the HTTPS redirect
  and the security headers, read from a process started with the production
  environment (`check --deploy` itself: tests/site/test_settings.py).
- Login throttling: django-axes locks a username + address out, with a clear page.
- Secrets at rest: provider credentials and API keys appear nowhere in the database.
- Signed links (click, open pixel, unsubscribe, preferences) cannot be forged,
  re-pointed or enumerated, and a refused one records nothing.
- Uploads are never served with a type a browser would run.
- Liquid templates cannot reach Python internals or the file system.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import resolve, reverse
from django.utils import timezone

from content.models import Asset
from delivery import tracking
from delivery.models import ChannelSettings, Consent, Message, MessageEvent
from delivery.services import channel_settings_save
from delivery.tokens import preferences_token, unsubscribe_token
from engagement_site.workspaces.models import ApiKey, AuditLog
from engagement_site.workspaces.services import AuditContext, api_key_create
from segments.models import Profile
from tests.conftest import PASSWORD, logged_in
from tests.content import samples
from tests.site.test_settings import PRODUCTION
from tests.urlconf import url_patterns

ROOT = Path(__file__).resolve().parents[2]
SETUP = AuditContext.system("test setup")


# --------------------------------------------------------------------------- CSRF

# URLs that take a POST without a CSRF token, and why that is safe. Any other URL that
# answers a tokenless POST with something but a CSRF refusal fails the walk.
CSRF_EXEMPT = {
    "v1/^batch/?$": "Segment tracking API: the write key is the credential, no cookies",
    "v1/^(?P<call_type>track|identify|page|screen|group|alias)/?$": "Segment tracking API",
    "u/<str:token>/": "RFC 8058 one-click unsubscribe: mail clients POST without cookies; "
    "the signed token is the credential",
    "hooks/<slug:channel>/<str:token>/": "provider callbacks, signed by the provider",
    "api/v1/inbox/<str:user_id>": "in-app inbox for apps: write key, no cookies",
    "api/v1/^inbox/(?P<user_id>[^/]+)/messages/(?P<message_id>[^/]+)/(?P<action>read|clicked"
    "|dismissed)$": "in-app inbox for apps: write key, no cookies",
    "api/v1/devices": "device registration for apps: write key, no cookies",
    "api/v1/subscriptions": "web push subscriptions from browsers: write key, no cookies",
    "api/v1/push/<slug:action>": "push engagement from apps: write key, no cookies",
    "api/docs/": "the API docs page (GET only): DRF refuses a tokenless POST with its "
    "generic 403 page, which does not name CSRF",
}


def _routes() -> list[str]:
    return [route for route, _ in url_patterns()]


def _example_path(route: str, workspace_slug: str) -> str:
    """A concrete path for a route: ids, tokens and regex groups filled in."""

    def converter(match: re.Match) -> str:
        kind, name = match.group(1) or "str", match.group(2)
        if name == "workspace_slug":
            return workspace_slug
        return {"int": "1", "path": "1", "slug": "email"}.get(kind, "x")

    def group(match: re.Match) -> str:
        body = match.group(2)
        return body.split("|")[0] if re.fullmatch(r"[\w|]+", body) else "x"

    path = re.sub(r"\(\?P<(\w+)>((?:[^()]|\([^()]*\))*)\)\??", group, route)
    path = re.sub(r"<(?:(\w+):)?(\w+)>", converter, path)
    return "/" + path.replace("^", "").replace("$", "").replace("?", "").replace("\\", "")


def _csrf_refused(response) -> bool:
    if response.status_code != 403:
        return False
    return b"CSRF verification failed" in response.content or b"CSRF Failed" in response.content


def test_a_post_without_the_csrf_token_is_refused_at_every_url(workspace, owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    # The browser holds the CSRF cookie; the requests lack only the token.
    assert "csrftoken" in client.get(reverse("journey_list", args=[workspace.slug])).cookies
    before = (AuditLog.objects.count(), ApiKey.objects.count(), Message.objects.count())
    routes = sorted(set(_routes()))
    # Each example path reaches its own view (an unresolved path would 404 before the
    # CSRF check and prove nothing).
    paths = {route: _example_path(route, workspace.slug) for route in routes}
    astray = [r for r, path in paths.items() if resolve(path).route != r.replace("/^", "/")]
    assert astray == []
    # A cross-site form can send a form body; a script elsewhere could try JSON. A
    # JSON-only API refuses a form body while reading it for the token (415 / 400),
    # an upload API refuses JSON the same way: each URL must give a CSRF refusal to one
    # and a refusal to the other.
    form = {route: client.post(paths[route], {"name": "x"}) for route in routes}
    json_body = {
        route: client.post(paths[route], {"name": "x"}, content_type="application/json")
        for route in routes
    }
    not_refused = sorted(
        route
        for route in routes
        if not (_csrf_refused(form[route]) or _csrf_refused(json_body[route]))
    )
    print(f"CSRF walk: {len(routes)} URLs, {len(routes) - len(not_refused)} refused 403")
    assert not_refused == sorted(CSRF_EXEMPT)
    refused_otherwise = {
        route: (form[route].status_code, json_body[route].status_code)
        for route in routes
        if route not in CSRF_EXEMPT
        and {form[route].status_code, json_body[route].status_code} - {400, 403, 415}
    }
    assert refused_otherwise == {}
    # Nothing happened, and the session survived the tokenless logout.
    assert (AuditLog.objects.count(), ApiKey.objects.count(), Message.objects.count()) == before
    assert client.get(reverse("journey_list", args=[workspace.slug])).status_code == 200


def test_htmx_sends_the_pages_token_and_is_let_through(workspace, owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    page = client.get(reverse("journey_list", args=[workspace.slug]))
    headers = re.search(r"<body hx-headers='([^']+)'>", page.content.decode()).group(1)
    token = json.loads(headers)["X-CSRFToken"]
    assert len(token) == 64
    without = client.post(reverse("logout"), headers={"HX-Request": "true"})
    assert _csrf_refused(without)
    with_token = client.post(
        reverse("logout"), headers={"HX-Request": "true", "X-CSRFToken": token}
    )
    assert (with_token.status_code, with_token["Location"]) == (302, reverse("login"))
    assert "_auth_user_id" not in client.session


# Forms posting to a CSRF-exempt view (CSRF_EXEMPT above), and why.
TOKENLESS_FORMS = {
    "templates/delivery/unsubscribe.html": "posts to u/<token>/, where the signed token is "
    "the credential (RFC 8058 one-click)",
}
FORM = re.compile(r"<form\b[^>]*>.*?</form>", re.IGNORECASE | re.DOTALL)


def test_every_post_form_in_the_templates_carries_the_token():
    forms = [
        (path.relative_to(ROOT), form)
        for path in sorted((ROOT / "templates").rglob("*.html"))
        for form in FORM.findall(path.read_text())
        if re.search(r"""<form\b[^>]*\bmethod=["']?post""", form, re.IGNORECASE)
    ]
    missing = [
        str(path)
        for path, form in forms
        if "{% csrf_token %}" not in form and str(path) not in TOKENLESS_FORMS
    ]
    print(f"POST forms in templates: {len(forms)}, without the token: {len(missing)}")
    assert len(forms) > 20
    assert missing == []


# --------------------------------------------------------------------------- production

PRODUCTION_PROBE = r"""
import json
import django

django.setup()
from django.conf import settings
from django.test import Client

from django.contrib.auth import get_user_model

# Created here: production hashes passwords with its own (slow) hasher.
get_user_model().objects.create_user(username=USERNAME, password=PASSWORD)

client = Client(HTTP_HOST="engage.example.com")
# Pages that render templates need collected static files in production (the manifest);
# /healthz renders none and passes through the same middleware.
plain = client.get("/login/")
page = client.get("/healthz", secure=True, headers={"X-Forwarded-Proto": "https"})
login = client.post(
    "/login/", {"username": USERNAME, "password": PASSWORD}, secure=True,
    headers={"X-Forwarded-Proto": "https"},
)
def flags(cookie):
    return {"secure": bool(cookie["secure"]), "httponly": bool(cookie["httponly"]),
            "samesite": cookie["samesite"]}
print(json.dumps({
    "plain": [plain.status_code, plain.get("Location")],
    "csrf_cookie_settings": [settings.CSRF_COOKIE_SECURE, settings.CSRF_COOKIE_HTTPONLY,
                             settings.CSRF_COOKIE_SAMESITE],
    "headers": {name: page.get(name) for name in (
        "Strict-Transport-Security", "X-Content-Type-Options", "X-Frame-Options",
        "Referrer-Policy", "Cross-Origin-Opener-Policy", "Content-Security-Policy")},
    "login": [login.status_code, login.get("Location")],
    "session_cookie": flags(login.cookies["sessionid"]),
    "session_age": settings.SESSION_COOKIE_AGE,
}))
"""


def _policy(header: str) -> dict[str, str]:
    directives = (part.strip().split(" ", 1) for part in header.split(";") if part.strip())
    return {name: value for name, value in directives}


def _database_url() -> str:
    """DATABASE_URL naming the test database (the subprocess sees committed rows)."""
    parsed = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parsed._replace(path=f"/{connection.settings_dict['NAME']}"))


@pytest.mark.django_db(transaction=True)
def test_production_cookies_hsts_redirect_and_headers():
    script = PRODUCTION_PROBE.replace("USERNAME", '"prod-ada"').replace(
        "PASSWORD", json.dumps(PASSWORD)
    )
    environment = {**os.environ, **PRODUCTION, "DATABASE_URL": _database_url()}
    environment.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=environment,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["plain"] == [301, "https://engage.example.com/login/"]
    headers = report["headers"]
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert (headers["X-Content-Type-Options"], headers["X-Frame-Options"]) == ("nosniff", "DENY")
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    policy = _policy(headers["Content-Security-Policy"])
    assert policy["script-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert report["login"] == [302, "/"]
    # HttpOnly stays off: htmx reads the token from the page (hx-headers), and Django's
    # own advice is that an HttpOnly CSRF cookie adds nothing.
    assert report["csrf_cookie_settings"] == [True, False, "Lax"]
    assert report["session_cookie"] == {"secure": True, "httponly": True, "samesite": "Lax"}
    assert report["session_age"] == 14 * 24 * 3600


def test_development_serves_the_same_policy_without_secure_only_cookies(client, settings):
    assert settings.DJANGO_ENV == "test"
    response = client.get("/login/")
    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response
    assert _policy(response["Content-Security-Policy"]) == {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self' 'unsafe-inline'",
        "img-src": f"'self' data: blob: https: {settings.PUBLIC_URL}",
        "media-src": f"'self' blob: {settings.PUBLIC_URL}",
        "font-src": "'self' data:",
        "connect-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    assert response.cookies["csrftoken"]["secure"] == ""


# --------------------------------------------------------------------------- login throttling


def _attempt(client: Client, username: str, password: str, address: str = "203.0.113.7"):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address
    )


def test_failed_logins_lock_the_user_and_address_out_until_reset(owner, settings):
    limit = settings.AXES_FAILURE_LIMIT
    assert limit == 5
    client = Client()
    answers = [_attempt(client, owner.username, "wrong").status_code for _ in range(limit)]
    assert answers == [200] * (limit - 1) + [429]
    locked = _attempt(client, owner.username, PASSWORD)
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Too many failed sign-in attempts" in page
    assert f"Signing in as <strong>{owner.username}</strong> from this address is locked" in page
    assert "for 15 minutes" in page
    assert "_auth_user_id" not in client.session
    # The lock is the pair: the same person from elsewhere, and others here, still sign in.
    assert _attempt(Client(), owner.username, PASSWORD, address="198.51.100.9").status_code == 302
    other = get_user_model().objects.create_user(username="bea", password=PASSWORD)
    assert _attempt(Client(), other.username, PASSWORD).status_code == 302
    failed = AuditLog.objects.filter(changes__has_key="locked_out").order_by("pk")
    assert [row.changes["locked_out"] for row in failed] == [False] * (limit - 1) + [True, True]
    # An operator lifts it (docs/security.md); the right password then works.
    call_command("axes_reset_ip_username", "203.0.113.7", owner.username)
    assert _attempt(client, owner.username, PASSWORD).status_code == 302


def test_a_lock_expires_after_the_cool_off(owner, settings):
    settings.AXES_COOLOFF_TIME = timedelta(seconds=1)
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _attempt(client, owner.username, "wrong")
    assert _attempt(client, owner.username, PASSWORD).status_code == 429
    time.sleep(2.5)  # Redis expires the counter after the cool-off (1 s)
    assert _attempt(client, owner.username, PASSWORD).status_code == 302


# --------------------------------------------------------------------------- secrets at rest


def _everything_in_the_database() -> str:
    """Every row of every table of the project, as text."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
        tables = [row[0] for row in cursor.fetchall()]
        texts = []
        for table in tables:
            cursor.execute(f'SELECT t::text FROM "{table}" t')
            texts += [row[0] for row in cursor.fetchall()]
    return "\n".join(texts)


def test_provider_credentials_and_api_keys_are_nowhere_in_the_database(workspace):
    auth_token = "twilio-auth-token-0123456789abcdef"
    access_token = "meta-access-token-EAAG0123456789"
    app_secret = "meta-app-secret-0123456789abcdef"
    channel_settings_save(
        workspace=workspace,
        channel="sms",
        config={
            "account_sid": "AC" + "0" * 32,
            "auth_token": auth_token,
            "from_number": "+15005550006",
        },
        context=SETUP,
    )
    channel_settings_save(
        workspace=workspace,
        channel="whatsapp",
        config={
            "provider": "meta",
            "phone_number_id": "1234567890",
            "access_token": access_token,
            "app_secret": app_secret,
            "verify_token": "meta-verify-token-0123",
        },
        context=SETUP,
    )
    _, secret_key = api_key_create(
        workspace=workspace, kind="secret", name="ci", role="viewer", context=SETUP
    )
    _, write_key = api_key_create(workspace=workspace, kind="write", name="app", context=SETUP)
    with connection.cursor() as cursor:
        cursor.execute("SELECT config::text, secrets FROM delivery_channelsettings ORDER BY id")
        raw_rows = cursor.fetchall()
    assert len(raw_rows) == 2
    assert all(secrets.startswith("gAAAAA") for _, secrets in raw_rows)  # Fernet tokens
    dump = _everything_in_the_database()
    for plaintext in (auth_token, access_token, app_secret, "meta-verify-token-0123"):
        assert plaintext not in dump
    assert secret_key not in dump
    assert ApiKey.hash_key(secret_key) in dump  # what is kept instead
    # Write keys are public by nature (inside apps and web pages, like Segment's) and
    # are kept to be shown again; only secret keys are credentials.
    assert ApiKey.objects.get(kind="write").public_value == write_key
    # And they still work: the channel reads its secret, the key authenticates.
    from delivery.selectors import channel_instance

    channel = channel_instance(workspace_id=workspace.pk, channel="sms")
    assert channel.config.secret("auth_token") == auth_token
    api = Client(headers={"Authorization": f"Bearer {secret_key}"})
    assert api.get("/api/v1/workspace/").status_code == 200
    assert ChannelSettings.objects.filter(workspace=workspace).count() == 2


# --------------------------------------------------------------------------- signed links


def _sent_email(workspace, user_id: str) -> Message:
    profile = Profile.objects.create(workspace=workspace, user_id=user_id, email=f"{user_id}@x.io")
    return Message.objects.create(
        workspace=workspace,
        profile=profile,
        idempotency_key=f"test:{workspace.slug}:{user_id}",
        channel="email",
        status="sent",
        sent_at=timezone.now() - timedelta(hours=1),
        rendered={"links": ["https://acme.example/sale", "https://acme.example/terms"]},
    )


def _forgeries(token: str) -> list[str]:
    payload, signature = token.rsplit(":", 1)
    flipped = "A" if signature[-1] != "A" else "B"
    return [
        f"{payload}:{signature[:-1]}{flipped}",  # tampered signature
        f"{payload}:",  # no signature
        payload,  # unsigned
        f"{payload}0:{signature}",  # another payload under this signature
        "nonsense",
    ]


def test_tracking_links_cannot_be_forged_or_pointed_elsewhere(workspace, other_workspace):
    mine = _sent_email(workspace, "ada")
    theirs = _sent_email(other_workspace, "oscar")
    client = Client()
    click = tracking.token(mine.pk, 0)
    refused = {}
    for forged in _forgeries(click):
        refused[forged] = client.get(f"/t/c/{forged}/").status_code
    # Another workspace's message, or a link the message does not have, with our
    # signature or a re-signed index: refused.
    _message_part, index_part = click.rsplit(":", 1)[0].split(".")
    other_payload = f"{_b62(theirs.pk)}.{index_part}"
    refused["other workspace"] = client.get(
        f"/t/c/{other_payload}:{click.rsplit(':', 1)[1]}/"
    ).status_code
    refused["link 5"] = client.get(f"/t/c/{tracking.token(mine.pk, 5)}/").status_code
    assert set(refused.values()) == {404}
    pixel_refused = {
        forged: client.get(f"/t/o/{forged}.gif").status_code
        for forged in _forgeries(tracking.token(mine.pk, 0))
    }
    assert set(pixel_refused.values()) == {404}
    # Nothing was recorded for either message.
    for message in (mine, theirs):
        message.refresh_from_db()
        assert (message.status, message.opened_at, message.clicked_at) == ("sent", None, None)
    assert MessageEvent.objects.count() == 0
    # The genuine links work, and only for their own message.
    good = client.get(f"/t/c/{click}/")
    assert (good.status_code, good["Location"]) == (302, "https://acme.example/sale")
    assert client.get(f"/t/o/{tracking.token(mine.pk, 0)}.gif").status_code == 200
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.status, theirs.status) == ("clicked", "sent")


def _b62(number: int) -> str:
    from django.core import signing

    return signing.b62_encode(number)


def test_unsubscribe_and_preference_links_cannot_be_forged_or_enumerated(workspace):
    messages = [_sent_email(workspace, f"user-{n}") for n in range(3)]
    client = Client()
    tokens = [unsubscribe_token(message.pk) for message in messages]
    # Neighbouring messages' tokens share no signature: one does not lead to the next.
    signatures = [token.rsplit(":", 1)[1] for token in tokens]
    assert len(set(signatures)) == 3
    assert all(len(signature) == 43 for signature in signatures)
    next_id = tokens[0].rsplit(":", 1)[0][:-1] + _b62(messages[1].pk)[-1]
    statuses = []
    for forged in [*_forgeries(tokens[0]), f"{next_id}:{signatures[0]}"]:
        statuses += [client.get(f"/u/{forged}/").status_code]
        statuses += [client.post(f"/u/{forged}/", {"List-Unsubscribe": "One-Click"}).status_code]
        statuses += [client.get(f"/p/{forged}/").status_code]
    assert set(statuses) == {404}
    assert Consent.objects.count() == 0
    # An unsubscribe token is not a preferences token (different salts).
    assert client.get(f"/p/{tokens[0]}/").status_code == 404
    assert client.get(f"/p/{preferences_token(messages[0].profile_id)}/").status_code == 200
    one_click = client.post(f"/u/{tokens[0]}/", {"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    assert list(Consent.objects.values_list("profile_id", "status")) == [
        (messages[0].profile_id, "unsubscribed")
    ]


# --------------------------------------------------------------------------- uploads

ALLOWED_TYPES = {
    "image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml", "video/mp4",
    "video/webm",
}  # fmt: skip
SANDBOX = (
    "default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; sandbox"
)


@pytest.fixture
def media_root(settings, tmp_path) -> Path:
    from engagement_site.storage import asset_storages_from_env

    settings.MEDIA_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        **asset_storages_from_env("local", media_root=tmp_path),
    }
    return tmp_path


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("photo.png", b"<!doctype html><html><script>alert(document.cookie)</script></html>"),
        ("photo.jpg", samples.SVG_WITH_SCRIPT),
        ("logo.svg", samples.SVG_WITH_SCRIPT),
        ("logo.svg", samples.SVG_WITH_ONLOAD),
        ("anim.gif", b"alert(document.cookie); // GIF89a"),
        ("page.html", b"<html><body onload=alert(1)>hi</body></html>"),
        ("tool.js", b"fetch('/api/v1/api-keys/').then(r => r.text())"),
        ("polyglot.gif", samples.animated_gif() + b"<script>alert(1)</script>"),
    ],
)
def test_executable_uploads_are_refused_and_nothing_is_stored(
    workspace, owner, media_root, name, data
):
    url = reverse("content_asset_upload", args=[workspace.slug])
    answer = logged_in(owner).post(url, {"file": SimpleUploadedFile(name, data)})
    assert answer.status_code == 400
    assert name in answer.json()["error"]
    assert Asset.objects.count() == 0
    assert [path for path in media_root.rglob("*") if path.is_file()] == []


def test_stored_files_are_served_as_inert_images_with_nosniff_and_a_sandbox(
    workspace, owner, media_root
):
    url = reverse("content_asset_upload", args=[workspace.slug])
    client = logged_in(owner)
    # PNG bytes named like a page, and a clean SVG: stored and served as images.
    for name, data in (("evil.html", samples.png()), ("logo.svg", samples.CLEAN_SVG)):
        assert client.post(url, {"file": SimpleUploadedFile(name, data)}).status_code == 201
    assets = {asset.name: asset for asset in Asset.objects.all()}
    assert {name: a.mime_type for name, a in assets.items()} == {
        "evil.html": "image/png",
        "logo.svg": "image/svg+xml",
    }
    assert set(Asset.objects.values_list("mime_type", flat=True)) <= ALLOWED_TYPES
    assert assets["evil.html"].file.name.endswith(".png")
    for name, asset in assets.items():
        response = client.get(reverse("content_asset_file", args=[workspace.slug, asset.pk]))
        assert response.status_code == 200
        assert response["Content-Type"] == asset.mime_type
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Security-Policy"] == SANDBOX  # not the pages' policy
        assert response["Content-Disposition"] == f"inline; filename*=UTF-8''{name}"


# --------------------------------------------------------------------------- Liquid


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[{{ profile.__class__ }}][{{ profile.__dict__ }}]", "[][]"),
        ("[{{ profile._meta }}][{{ profile._state }}][{{ profile.pk.__class__ }}]", "[][][]"),
        ("[{{ profile.__init__.__globals__ }}][{{ workspace.__class__.__mro__ }}]", "[][]"),
        ("[{{ profile.traits.__class__.__subclasses__ }}][{{ profile.traits.items }}]", "[][]"),
        ("[{{ profile.user_id.__class__ }}][{{ profile.user_id.upper }}]", "[][]"),
        ("[{{ event.properties.__class__ }}][{{ settings.SECRET_KEY }}]", "[][]"),
        ("[{{ user }}][{{ request }}][{{ self }}]", "[][][]"),
        ("{{ profile.user_id }}", "ada"),
    ],
)
def test_liquid_cannot_reach_python_internals(workspace, body, expected):
    answer = _render(workspace, body)
    assert answer.status_code == 200, answer.content
    assert answer.json()["fields"]["body"] == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{% include 'engagement_site/settings.py' %}", "unexpected tag 'include'"),
        ("{% render '/etc/passwd' %}", "unexpected tag 'render'"),
        ("{% liquid\ninclude '../../../../etc/passwd' %}", "unexpected tag 'include'"),
        (
            "{% for i in (1..100000000) %}x{% endfor %}",
            "default.body: loop iteration limit reached (1000)",
        ),
        (
            "{% for i in (1..1000) %}{% for j in (1..1000) %}x{% endfor %}{% endfor %}",
            "default.body: loop iteration limit reached (1000)",
        ),
    ],
)
def test_liquid_reads_no_files_and_stops_at_its_limits(workspace, body, message):
    answer = _render(workspace, body)
    assert answer.status_code in (400, 422), answer.content
    text = json.dumps(answer.json())
    assert message in text
    assert "root:" not in text and "SECRET_KEY" not in text


def _render(workspace, body: str):
    from content.services import template_create
    from tests.conftest import secret_key_client

    template = template_create(
        workspace=workspace, name="Probe", channel="sms",
        content={"default": {"body": "hello"}}, context=SETUP,
    )  # fmt: skip
    profile = Profile.objects.create(workspace=workspace, user_id="ada", traits={"plan": "pro"})
    client = secret_key_client(workspace, role="viewer")
    return client.post(
        f"/api/v1/templates/{template.pk}/render",
        {"profile_id": profile.pk, "content": {"default": {"body": body}},
         "event": {"name": "Order", "properties": {"total": 3}}},
        content_type="application/json",
    )  # fmt: skip
