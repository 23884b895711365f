"""The Content-Security-Policy in a real browser (Daphne + Debian's chromium).

Every page of the URL conf, on the demo data, loads under the policy with zero
violations (the browser's `securitypolicyviolation` events and its console's CSP
messages both counted): no inline script, no on* handler, no eval anywhere, the
journey builder included. The URL conf is walked, so a new page fails
`test_every_url_is_a_checked_page_or_has_a_reason` until it is listed here. A
handler injected into a loaded page is refused (the detector and the policy work),
and the builder still drags a node and saves it under the policy."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from playwright.sync_api import expect

from content.models import Asset, Template
from delivery.models import Message
from delivery.tokens import preferences_token, unsubscribe_token
from engagement_site.demo import DEMO_USERNAME
from engagement_site.workspaces.models import Workspace
from engagement_site.workspaces.services import AuditContext
from journeys.models import Journey
from segments.importers import import_draft_create
from segments.models import ImportJob, Profile, Segment
from tests.e2e import conftest as e2e_fixtures
from tests.urlconf import url_patterns

app_server = e2e_fixtures.app_server
browser = e2e_fixtures.browser
page = e2e_fixtures.page
_orm_beside_playwright = e2e_fixtures._orm_beside_playwright

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

DEMO_PASSWORD = "demo password for the csp walk"

# Pages a person opens (GET, HTML), by route: what fills in the route's arguments.
PAGES: dict[str, object] = {
    "": {},
    "w/<slug:workspace_slug>/": {},
    "w/<slug:workspace_slug>/journeys/": {},
    "w/<slug:workspace_slug>/journeys/<int:journey_id>/": lambda d: {"journey_id": d["journey"]},
    "w/<slug:workspace_slug>/segments/": {},
    "w/<slug:workspace_slug>/segments/new": {},
    "w/<slug:workspace_slug>/segments/new-static": {},
    "w/<slug:workspace_slug>/segments/<int:segment_id>/": lambda d: {"segment_id": d["segment"]},
    "w/<slug:workspace_slug>/segments/<int:segment_id>/edit": lambda d: {
        "segment_id": d["segment"]
    },
    "w/<slug:workspace_slug>/profiles/": {},
    "w/<slug:workspace_slug>/profiles/quarantine/": {},
    "w/<slug:workspace_slug>/profiles/<int:profile_id>/": lambda d: {"profile_id": d["profile"]},
    "w/<slug:workspace_slug>/profiles/imports/": {},
    "w/<slug:workspace_slug>/profiles/imports/<int:import_id>/": lambda d: {
        "import_id": d["import"]
    },
    "w/<slug:workspace_slug>/content/": {},
    "w/<slug:workspace_slug>/content/templates/": {},
    "w/<slug:workspace_slug>/content/templates/new": {},
    "w/<slug:workspace_slug>/content/templates/<int:template_id>/": lambda d: {
        "template_id": d["template"]
    },
    "w/<slug:workspace_slug>/content/templates/<int:template_id>/versions": lambda d: {
        "template_id": d["template"]
    },
    "w/<slug:workspace_slug>/content/media/": {},
    "w/<slug:workspace_slug>/content/media/<int:asset_id>/": lambda d: {"asset_id": d["asset"]},
    "w/<slug:workspace_slug>/analytics/": {},
    "w/<slug:workspace_slug>/analytics/journeys/": {},
    "w/<slug:workspace_slug>/analytics/journeys/<int:journey_id>/": lambda d: {
        "journey_id": d["journey"]
    },
    "w/<slug:workspace_slug>/analytics/channels/": {},
    "w/<slug:workspace_slug>/analytics/value/": {},
    "w/<slug:workspace_slug>/analytics/funnels/": {},
    "w/<slug:workspace_slug>/analytics/retention/": {},
    "w/<slug:workspace_slug>/delivery/outbox/": {},
    "w/<slug:workspace_slug>/messages/": {},
    "w/<slug:workspace_slug>/messages/dead-letters/": {},
    "w/<slug:workspace_slug>/messages/<int:message_id>/": lambda d: {"message_id": d["message"]},
    "w/<slug:workspace_slug>/settings/channels/": {},
    "w/<slug:workspace_slug>/settings/channels/<slug:channel>/": {"channel": "email"},
    "w/<slug:workspace_slug>/settings/delivery/": {},
    "w/<slug:workspace_slug>/settings/": {},
    "w/<slug:workspace_slug>/settings/members/": {},
    "w/<slug:workspace_slug>/settings/api-keys/": {},
    "w/<slug:workspace_slug>/settings/audit-log/": {},
    "api/docs/": {},
    "admin/": {},
    "admin/workspaces/workspace/": {},
    "admin/workspaces/workspace/<path:object_id>/change/": lambda d: {
        "object_id": d["workspace_id"]
    },
    "admin/workspaces/auditlog/": {},
    "django-rq/": {},
}
# Pages for the people messages go to (no login).
PUBLIC_PAGES: dict[str, object] = {
    "login/": {},
    "u/<str:token>/": lambda d: {"token": unsubscribe_token(d["message"])},
    "p/<str:token>/": lambda d: {"token": preferences_token(d["profile_of_message"])},
}
# Everything else in the URL conf, and why it is not a page of its own.
NOT_PAGES: dict[str, str] = {
    "logout/": "POST only",
    "healthz": "JSON",
    "v1/": "tracking API (JSON)",
    "api/v1/": "REST API (JSON)",
    "api/schema/": "OpenAPI document (YAML)",
    "t/o/<str:token>.gif": "an image",
    "t/c/<str:token>/": "a redirect",
    "hooks/<slug:channel>/<str:token>/": "provider callbacks (JSON or XML)",
    "c/<str:token>/": "opt-in confirmation: tests/delivery/test_double_opt_in.py renders it; "
    "the same standalone template as u/ and p/",
    "media/public/": "files (their own sandbox policy: tests/site/test_web_security.py)",
    "w/<slug:workspace_slug>/content/assets/": "files (sandbox policy)",
    "w/<slug:workspace_slug>/journeys/new/": "POST only",
    "w/<slug:workspace_slug>/journeys/<int:journey_id>/duplicate/": "POST only",
    "w/<slug:workspace_slug>/journeys/<int:journey_id>/archive/": "POST only",
    "w/<slug:workspace_slug>/journeys/<int:journey_id>/inspector/": "a fragment of the builder "
    "(loaded by test_the_builder_drags_a_node_and_saves_under_the_policy)",
    "w/<slug:workspace_slug>/journeys/<int:journey_id>/inspector/apply/": "POST, fragment",
    "w/<slug:workspace_slug>/journeys/event-names/": "JSON for the builder",
    "w/<slug:workspace_slug>/journeys/<int:journey_id>/settings-panel/": "a fragment of the "
    "builder",
    "w/<slug:workspace_slug>/segments/builder": "POST, a fragment of the segment editor "
    "(loaded with it)",
    "w/<slug:workspace_slug>/segments/<int:segment_id>/export": "a CSV download",
    "w/<slug:workspace_slug>/segments/<int:segment_id>/snapshot": "POST only",
    "w/<slug:workspace_slug>/segments/<int:segment_id>/delete": "POST only",
    "w/<slug:workspace_slug>/profiles/<int:profile_id>/export": "a JSON download",
    "w/<slug:workspace_slug>/profiles/<int:profile_id>/erase": "POST only",
    "w/<slug:workspace_slug>/content/templates/<int:template_id>/preview": "a fragment of the "
    "template editor (loaded with it)",
    "w/<slug:workspace_slug>/content/templates/<int:template_id>/versions/<int:number>/restore": "POST only",
    "w/<slug:workspace_slug>/content/templates/<int:template_id>/settings": "POST only",
    "w/<slug:workspace_slug>/content/templates/<int:template_id>/duplicate": "POST only",
    "w/<slug:workspace_slug>/content/templates/<int:template_id>/archive": "POST only",
    "w/<slug:workspace_slug>/content/templates/<int:template_id>/delete": "POST only",
    "w/<slug:workspace_slug>/content/templates/<int:template_id>/test-send": "POST, fragment",
    "w/<slug:workspace_slug>/content/profiles": "a fragment of the template editor",
    "w/<slug:workspace_slug>/content/media/upload": "POST, JSON",
    "w/<slug:workspace_slug>/content/media/folders/new": "POST only",
    "w/<slug:workspace_slug>/content/media/<int:asset_id>/card": "a fragment of the library",
    "w/<slug:workspace_slug>/content/media/<int:asset_id>/delete": "POST only",
    "w/<slug:workspace_slug>/analytics/journeys/<int:journey_id>/winner": "POST only",
    "w/<slug:workspace_slug>/messages/dead-letters/retry/": "POST only",
    "w/<slug:workspace_slug>/messages/dead-letters/discard/": "POST only",
    "w/<slug:workspace_slug>/settings/delivery/caps/": "POST only",
    "w/<slug:workspace_slug>/settings/delivery/caps/<int:cap_id>/remove/": "POST only",
    "w/<slug:workspace_slug>/settings/delivery/suppressions/": "POST only",
    "w/<slug:workspace_slug>/settings/delivery/suppressions/<int:suppression_id>/remove/": "POST only",
    "w/<slug:workspace_slug>/settings/delivery/secrets/<slug:kind>/": "a fragment (the "
    "revealed secret)",
    "w/<slug:workspace_slug>/settings/members/<int:membership_id>/role": "POST only",
    "w/<slug:workspace_slug>/settings/members/<int:membership_id>/remove": "POST only",
    "w/<slug:workspace_slug>/settings/api-keys/<int:api_key_id>/revoke": "POST only",
    "admin/": "the rest of Django admin: its own templates, the same policy (index, a list "
    "and a change form are walked)",
    "django-rq/": "the rest of django-rq's staff pages (inline scripts allowed there only)",
}


def _routes() -> list[str]:
    return [route for route, _ in url_patterns()]


def _reason(route: str) -> str | None:
    """Why a route is not walked: its own entry, or the longest prefix entry."""
    if route in NOT_PAGES:
        return NOT_PAGES[route]
    prefixes = [p for p in NOT_PAGES if p.endswith("/") and route.startswith(p)]
    return NOT_PAGES[max(prefixes, key=len)] if prefixes else None


def test_every_url_is_a_checked_page_or_has_a_reason():
    unclassified = [
        route
        for route in _routes()
        if route not in PAGES and route not in PUBLIC_PAGES and _reason(route) is None
    ]
    assert unclassified == []
    stale = [route for route in (*PAGES, *PUBLIC_PAGES) if route not in set(_routes())]
    assert stale == []


def _demo(settings, tmp_path, monkeypatch, app_server: str) -> dict:
    """The demo workspace (small) with one of everything a page can show; its messages'
    public images point at the server under test."""
    settings.VAR_DIR = tmp_path
    settings.PUBLIC_URL = app_server
    monkeypatch.setenv("DEMO_PASSWORD", DEMO_PASSWORD)
    call_command("load_demo", "--profiles", "60")
    workspace = Workspace.objects.get(slug="demo")
    context = AuditContext.system("csp test")
    job = import_draft_create(
        workspace=workspace,
        kind="profiles",
        uploaded_file=SimpleUploadedFile("people.csv", b"user_id,email\nu-1,ada@example.com\n"),
        context=context,
    )
    message = Message.objects.filter(workspace=workspace).order_by("pk").first()
    return {
        "workspace": workspace,
        "workspace_id": workspace.pk,
        "journey": Journey.objects.filter(workspace=workspace).order_by("pk").first().pk,
        "segment": Segment.objects.filter(workspace=workspace).order_by("pk").first().pk,
        "profile": Profile.objects.filter(workspace=workspace).order_by("pk").first().pk,
        "import": ImportJob.objects.get(pk=job.pk).pk,
        "template": Template.objects.filter(workspace=workspace).order_by("pk").first().pk,
        "asset": Asset.objects.filter(workspace=workspace).order_by("pk").first().pk,
        "message": message.pk,
        "profile_of_message": message.profile_id,
    }


def _path(route: str, arguments, data: dict) -> str:
    values = arguments(data) if callable(arguments) else dict(arguments)
    if "<slug:workspace_slug>" in route:
        values["workspace_slug"] = "demo"

    def fill(match: re.Match) -> str:
        return str(values.pop(match.group(1)))

    path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", fill, route)
    assert values == {}, f"{route}: unused arguments {values}"
    return path


# Collects violations from the first moment of every document (frames included).
VIOLATIONS_SCRIPT = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(
    `${event.violatedDirective} blocked ${event.blockedURI || "inline"} at ${event.sourceFile}:${event.lineNumber}`
  );
});
"""


def _watch(page) -> list[str]:
    console: list[str] = []
    page.add_init_script(VIOLATIONS_SCRIPT)
    page.on(
        "console",
        lambda message: (
            console.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return console


def _visit(page, path: str, console: list[str]) -> list[str]:
    response = page.goto(path)
    if response.status != 200:
        return [f"{path}: answered {response.status}"]
    policy = response.headers.get("content-security-policy", "")
    script_src = policy.split("script-src", 1)[-1].split(";")[0]
    expected = " 'self' 'unsafe-inline'" if path.startswith("/django-rq/") else " 'self'"
    problems = [] if script_src == expected else [f"script-src{script_src}"]
    page.wait_for_load_state("networkidle")
    found = problems + page.evaluate("() => window.__cspViolations") + console
    console.clear()
    return [f"{path}: {violation}" for violation in found]


def test_every_page_loads_with_no_policy_violation(
    page, app_server, settings, tmp_path, monkeypatch
):
    data = _demo(settings, tmp_path, monkeypatch, app_server)
    console = _watch(page)
    violations: list[str] = []
    for route, arguments in PUBLIC_PAGES.items():
        violations += _visit(page, _path(route, arguments, data), console)
    page.goto("/login/")
    page.fill("input[name=username]", DEMO_USERNAME)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/w/demo/"))
    for route, arguments in PAGES.items():
        violations += _visit(page, _path(route, arguments, data), console)
    print(f"CSP walk: {len(PAGES) + len(PUBLIC_PAGES)} pages, {len(violations)} violations")
    assert violations == []

    # The detector sees a violation when there is one: an injected handler is refused
    # and does not run.
    page.goto(_path("w/<slug:workspace_slug>/journeys/", {}, data))
    page.evaluate(
        """() => document.body.insertAdjacentHTML(
            "beforeend", '<img src="data:," onerror="window.__ran = true">')"""
    )
    page.wait_for_function("() => window.__cspViolations.length > 0")
    assert page.evaluate("() => window.__ran === undefined")
    assert page.evaluate("() => window.__cspViolations.map(v => v.split(' ')[0])") == [
        "script-src-attr"
    ]


def test_the_builder_drags_a_node_and_saves_under_the_policy(page, workspace, owner):
    from journeys.models import JourneyDraft
    from journeys.services import journey_create
    from tests.journeys.test_builder_browser import (
        _drop,
        _login,
        _node_ids,
        _summary,
        _until,
        _wait_saved,
    )

    journey = journey_create(
        workspace=workspace, name="Policy check", context=AuditContext.system("test")
    )
    console = _watch(page)
    _login(page, owner.username)
    page.goto(f"/w/{workspace.slug}/journeys/{journey.pk}/")
    expect(page.get_by_test_id("journey-editor")).to_have_attribute("data-ready", "true")
    canvas = page.get_by_test_id("canvas").bounding_box()
    left, top = canvas["x"] + 150, canvas["y"] + 110
    _drop(page, "trigger_event", left, top)
    _drop(page, "wait_duration", left + 300, top)
    assert _node_ids(page) == ["trigger-event-1", "wait-duration-1"]
    # The inspector (an htmx fragment) loads and applies a change under the policy too.
    page.locator("#je-canvas g[data-cell-id='trigger-event-1'] text").first.click()
    expect(page.locator("#inspector[data-node='trigger-event-1']")).to_have_count(1)
    page.fill("#inspector input[name=event]", "Cart Abandoned")
    _until(lambda: _summary(page, "trigger-event-1") == "When Cart Abandoned happens")

    def saved_nodes() -> dict:
        draft = JourneyDraft.objects.get(journey=journey)
        return {node["id"]: node for node in draft.definition.get("nodes", [])}

    _until(lambda: saved_nodes().get("trigger-event-1", {}).get("trigger", {}).get("event"))
    _wait_saved(page)
    nodes = saved_nodes()
    assert sorted(nodes) == ["trigger-event-1", "wait-duration-1"]
    assert nodes["trigger-event-1"]["trigger"]["event"] == "Cart Abandoned"
    assert page.evaluate("() => window.__cspViolations") + console == []
