"""The visual builder in a real browser (Daphne + Debian's chromium): a marketer drags a
trigger, a wait, an email, a condition, a fallback chain ending in SMS and an exit onto
the canvas, connects them port to port, sets each up in the inspector, sees the
validation error of the email without a template and fixes it, exercises undo / redo
and copy / paste, and publishes; the live version holds exactly that graph. A second
editor's save is refused, overwriting nothing."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from content import services as content_services
from engagement_site.workspaces.roles import Role
from engagement_site.workspaces.services import AuditContext
from journeys import services as journey_services
from journeys.models import Journey
from tests.conftest import PASSWORD
from tests.e2e import conftest as e2e_fixtures
from tests.journeys.test_executor import EDITOR
from tests.servers import ROOT, database_url_of

app_server = e2e_fixtures.app_server
browser = e2e_fixtures.browser
page = e2e_fixtures.page
_orm_beside_playwright = e2e_fixtures._orm_beside_playwright

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
SETUP = AuditContext.system("test")


def _login(page, username: str) -> None:
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/w/"))


def _templates(workspace):
    email = content_services.template_create(
        workspace=workspace, name="Cart reminder", channel="email",
        content={"default": {"subject": "You left {{ event.properties.item | default: 'something' }}",
                             "html": "<p>Come back</p>"}},
        context=EDITOR,
    )  # fmt: skip
    sms = content_services.template_create(
        workspace=workspace, name="Cart SMS", channel="sms",
        content={"default": {"body": "Your cart is waiting"}}, context=EDITOR,
    )  # fmt: skip
    return email, sms


def _editor(page, workspace, journey):
    page.goto(f"/w/{workspace.slug}/journeys/{journey.pk}/")
    expect(page.get_by_test_id("journey-editor")).to_have_attribute("data-ready", "true")


def _drop(page, palette_key: str, x: float, y: float) -> None:
    """Drag a palette item to (x, y) of the canvas (page coordinates)."""
    item = page.locator(f"[data-palette-key='{palette_key}']")
    item.scroll_into_view_if_needed()
    box = item.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(x - 40, y - 20, steps=6)
    page.mouse.move(x, y, steps=6)
    page.mouse.up()


def _connect(page, source: str, port: str, target: str) -> None:
    start = page.locator(
        f"#je-canvas g[data-cell-id='{source}'] [port='out:{port}']"
    ).bounding_box()
    inputs = page.locator(f"#je-canvas g[data-cell-id='{target}'] [port='in']")
    # A trigger has no input: aim at its body instead.
    end = (
        inputs
        if inputs.count()
        else page.locator(f"#je-canvas g[data-cell-id='{target}'] rect").first
    ).bounding_box()
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] - 30, end["y"], steps=8)
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=4)
    page.mouse.up()


def _node_ids(page) -> list[str]:
    return sorted(page.evaluate("() => window.journeyEditor.graph.getNodes().map(n => n.id)"))


def _edges(page) -> list[tuple[str, str, str]]:
    return sorted(
        tuple(edge)
        for edge in page.evaluate(
            "() => window.journeyEditor.graph.getEdges().filter(e => e.getTargetCellId())"
            ".map(e => [e.getSourceCellId(), e.getSourcePortId().slice(4), e.getTargetCellId()])"
        )
    )


def _inspect(page, node_id: str) -> None:
    page.locator(f"#je-canvas g[data-cell-id='{node_id}'] text").first.click()
    expect(page.locator(f"#inspector[data-node='{node_id}']")).to_have_count(1)


def _settled(page, action) -> None:
    """Do `action` in the inspector and wait until its answer has been applied."""
    before = page.locator("#inspector").get_attribute("data-renders")
    action()
    expect(page.locator("#inspector")).not_to_have_attribute("data-renders", before or "")


def _summary(page, node_id: str) -> str:
    return page.evaluate(
        f"() => window.journeyEditor.graph.getCellById('{node_id}').getData().summary"
    )


def _wait_saved(page) -> None:
    expect(page.get_by_test_id("save-state")).to_have_attribute("data-state", "saved")


def _press(page, keys: str) -> None:
    page.get_by_test_id("canvas").focus()
    page.keyboard.press(keys)


def test_a_marketer_builds_validates_and_publishes_a_journey(page, workspace, make_member):
    email, sms = _templates(workspace)
    marketer = make_member(Role.MARKETER)
    journey = journey_services.journey_create(
        workspace=workspace, name="Cart rescue", context=SETUP
    )
    _login(page, marketer.username)
    _editor(page, workspace, journey)

    canvas = page.get_by_test_id("canvas").bounding_box()
    left, top = canvas["x"] + 150, canvas["y"] + 110
    _drop(page, "trigger_event", left, top)
    _drop(page, "wait_duration", left + 300, top)
    _drop(page, "email", left, top + 170)
    _drop(page, "condition", left + 300, top + 170)
    _drop(page, "fallback", left, top + 340)
    _drop(page, "exit", left + 300, top + 340)
    ids = ["condition-1", "email-1", "exit-1", "fallback-1", "trigger-event-1", "wait-duration-1"]
    page.screenshot(path=str(e2e_fixtures.ARTIFACTS / "builder-drops.png"))
    assert _node_ids(page) == ids

    # Connection rules: nothing goes into a trigger, and a port takes one edge.
    _connect(page, "wait-duration-1", "next", "trigger-event-1")
    assert _edges(page) == []
    _connect(page, "trigger-event-1", "next", "wait-duration-1")
    _connect(page, "wait-duration-1", "next", "email-1")
    _connect(page, "wait-duration-1", "next", "condition-1")  # the port is taken: refused
    _connect(page, "email-1", "next", "condition-1")
    _connect(page, "condition-1", "yes", "exit-1")
    _connect(page, "condition-1", "no", "fallback-1")
    _connect(page, "fallback-1", "next", "exit-1")
    assert _edges(page) == [
        ("condition-1", "no", "fallback-1"),
        ("condition-1", "yes", "exit-1"),
        ("email-1", "next", "condition-1"),
        ("fallback-1", "next", "exit-1"),
        ("trigger-event-1", "next", "wait-duration-1"),
        ("wait-duration-1", "next", "email-1"),
    ]

    # Set each up in the inspector; the canvas shows the summary.
    _inspect(page, "trigger-event-1")
    page.fill("#inspector input[name=event]", "Cart Abandoned")
    _until(lambda: _summary(page, "trigger-event-1") == "When Cart Abandoned happens")
    _inspect(page, "wait-duration-1")
    page.fill("#inspector input[name=amount]", "2")
    _until(lambda: _summary(page, "wait-duration-1") == "Wait 2 hours")
    _inspect(page, "condition-1")
    _settled(
        page, lambda: page.select_option("#inspector select[name=condition_kind]", "engagement")
    )
    expect(page.locator("#inspector select[name=message_node]")).to_be_visible()
    _settled(page, lambda: page.select_option("#inspector select[name=message_node]", "email-1"))
    page.select_option("#inspector select[name=engagement]", "opened")
    _until(lambda: _summary(page, "condition-1") == "Did they open email-1?")
    _inspect(page, "fallback-1")
    _settled(page, lambda: page.select_option("#inspector select[name='chain-0-channel']", "email"))
    expect(
        page.locator(
            "#inspector select[name='chain-0-template_id'] option", has_text="Cart reminder"
        )
    ).to_have_count(1)
    _settled(
        page,
        lambda: page.select_option("#inspector select[name='chain-0-template_id']", str(email.pk)),
    )
    page.select_option("#inspector select[name='chain-1-template_id']", str(sms.pk))
    _until(lambda: _summary(page, "fallback-1") == "Email → SMS")
    _wait_saved(page)

    # The email has no template yet: Validate says so on the node and in the list.
    page.get_by_test_id("validate").click()
    problems = page.get_by_test_id("problems")
    expect(problems).to_contain_text("email-1")
    expect(problems).to_contain_text("problem")
    assert (
        page.evaluate(
            "() => window.journeyEditor.graph.getCellById('email-1').getData().problems.length"
        )
        > 0
    )
    page.screenshot(path=str(e2e_fixtures.ARTIFACTS / "builder-invalid.png"))
    problems.locator("button", has_text="email-1").first.click()
    expect(page.locator("#inspector[data-node='email-1']")).to_have_count(1)
    page.select_option("#inspector select[name=template_id]", str(email.pk))
    _until(lambda: _summary(page, "email-1") == "Email: Cart reminder")
    expect(page.get_by_test_id("template-preview")).to_be_visible()
    page.get_by_test_id("validate").click()
    expect(problems).to_contain_text("Ready to publish")

    # Undo / redo: deleting a node takes its edges, and one undo brings all back.
    _inspect(page, "exit-1")
    _press(page, "Delete")
    assert "exit-1" not in _node_ids(page) and len(_edges(page)) == 4
    _press(page, "Control+z")
    assert "exit-1" in _node_ids(page) and len(_edges(page)) == 6
    _press(page, "Control+Shift+z")
    assert "exit-1" not in _node_ids(page) and len(_edges(page)) == 4
    _press(page, "Control+z")
    assert len(_edges(page)) == 6

    # Copy / paste: a copy gets its own id and settings; then it goes again.
    _inspect(page, "wait-duration-1")
    _press(page, "Control+c")
    _press(page, "Control+v")
    assert "wait-duration-2" in _node_ids(page)
    assert _summary(page, "wait-duration-2") == "Wait 2 hours"
    _press(page, "Delete")
    assert "wait-duration-2" not in _node_ids(page)
    _wait_saved(page)
    page.locator("[data-action=layout]").click()
    _wait_saved(page)
    page.screenshot(path=str(e2e_fixtures.ARTIFACTS / "builder.png"))

    # Journey settings in their dialog: a goal and a cap, saved with the draft.
    page.get_by_test_id("journey-settings").click()
    settings_dialog = page.get_by_test_id("settings-dialog")
    expect(settings_dialog.locator("input[name=goal_event]")).to_be_visible()
    settings_dialog.locator("input[name=goal_event]").fill("Order Completed")
    expect(settings_dialog.locator("#je-settings-body")).to_have_attribute("data-renders", "2")
    settings_dialog.locator("input[name=cap_messages]").fill("3")
    expect(settings_dialog.locator("#je-settings-body")).to_have_attribute("data-renders", "3")
    settings_dialog.get_by_test_id("settings-done").click()
    _wait_saved(page)

    page.get_by_test_id("publish").click()
    dialog = page.get_by_test_id("publish-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_test_id("publish-confirm").click()
    expect(page.get_by_test_id("journey-status")).to_have_text("Live · v1")

    journey.refresh_from_db()
    assert journey.status == "live"
    definition = journey.live_version.definition
    assert sorted(node["id"] for node in definition["nodes"]) == ids
    nodes = {node["id"]: node for node in definition["nodes"]}
    assert nodes["trigger-event-1"]["trigger"] == {
        "kind": "event",
        "event": "Cart Abandoned",
        "filters": [],
    }
    assert nodes["wait-duration-1"]["wait"] == {"kind": "duration", "seconds": 7200}
    assert nodes["email-1"]["action"]["template_id"] == email.pk
    assert nodes["condition-1"]["condition"] == {
        "kind": "engagement", "node": "email-1", "engagement": "opened",
    }  # fmt: skip
    assert [(s["channel"], s["template_id"]) for s in nodes["fallback-1"]["chain"]] == [
        ("email", email.pk), ("sms", sms.pk),
    ]  # fmt: skip
    assert definition["settings"]["goal"] == {
        "event": "Order Completed", "filters": [], "window_seconds": 7 * 86400,
    }  # fmt: skip
    assert definition["settings"]["frequency_cap"] == {"messages": 3, "per_seconds": 86400}
    assert sorted((e["source"], e["port"], e["target"]) for e in definition["edges"]) == [
        ("condition-1", "no", "fallback-1"),
        ("condition-1", "yes", "exit-1"),
        ("email-1", "next", "condition-1"),
        ("fallback-1", "next", "exit-1"),
        ("trigger-event-1", "next", "wait-duration-1"),
        ("wait-duration-1", "next", "email-1"),
    ]


def test_a_second_editors_save_is_refused_and_overwrites_nothing(page, workspace, owner):
    journey = journey_services.journey_create(workspace=workspace, name="Two cooks", context=SETUP)
    _login(page, owner.username)
    _editor(page, workspace, journey)
    # Someone else saves the draft after this page opened it.
    journey_services.journey_draft_save(
        journey=Journey.objects.get(pk=journey.pk),
        context=SETUP,
        definition={
            "nodes": [{"id": "theirs", "type": "trigger", "trigger": {"kind": "api"}}],
            "edges": [],
        },
    )
    canvas = page.get_by_test_id("canvas").bounding_box()
    _drop(page, "trigger_api", canvas["x"] + 200, canvas["y"] + 200)
    state = page.get_by_test_id("save-state")
    expect(state).to_have_attribute("data-state", "conflict")
    expect(page.get_by_test_id("problems")).to_contain_text("Reload to see their changes")
    draft = Journey.objects.get(pk=journey.pk).draft
    assert [node["id"] for node in draft.definition["nodes"]] == ["theirs"]


def _until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the builder did not get there in time")
        time.sleep(0.1)


def _live_journey(workspace):
    from tests.journeys.test_executor import _run_journey

    return _run_journey(
        workspace, "Cart watch",
        [
            {"id": "cart", "type": "trigger", "trigger": {"kind": "event", "event": "Cart Abandoned"}},
            {"id": "hold", "type": "wait", "wait": {"kind": "duration", "seconds": 86400}},
            {"id": "done", "type": "exit"},
        ],
        [{"source": "cart", "target": "hold"}, {"source": "hold", "target": "done"}],
    )  # fmt: skip


def _process_events() -> None:
    """The ingestion and journey jobs, on a real RQ worker process on the test database
    (as `make run` runs them), until the queues are empty."""
    import os
    import subprocess
    import sys

    from django.db import connection

    environment = {
        **os.environ,
        "DATABASE_URL": database_url_of(connection.settings_dict),
    }
    environment.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    subprocess.run(
        [sys.executable, "manage.py", "rqworker", "ingest", "journeys", "default", "--burst"],
        cwd=ROOT, env=environment, check=True, timeout=120,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _metrics_text(page, node_id: str) -> str:
    return page.evaluate(
        f"() => window.journeyEditor.graph.getCellById('{node_id}').attr('metrics/text') || ''"
    )


def test_live_node_numbers_follow_events_without_a_reload(page, workspace, owner, app_server):
    import httpx

    from engagement_site.workspaces.services import api_key_create

    journey = _live_journey(workspace)
    key = api_key_create(workspace=workspace, kind="write", name="app", context=SETUP)[1]
    _login(page, owner.username)
    _editor(page, workspace, journey)
    totals = page.get_by_test_id("live-totals")
    expect(totals).to_contain_text("0 entered")
    assert _metrics_text(page, "hold") == ""

    batch = {
        "batch": [
            {"type": "track", "event": "Cart Abandoned", "userId": f"shopper-{n}",
             "messageId": f"live-{n}", "properties": {"total": 10 * n}}
            for n in range(3)
        ]
    }  # fmt: skip
    response = httpx.post(f"{app_server}/v1/batch", json=batch, auth=(key, ""), timeout=10)
    assert response.status_code == 200
    _process_events()
    # The open page changes by itself: no reload.
    _until(lambda: _metrics_text(page, "hold") == "3 entered · 3 waiting")
    assert _metrics_text(page, "cart") == "3 entered"
    expect(totals).to_contain_text("3 in the journey · 3 entered")
    panel = page.get_by_test_id("live-panel")
    expect(panel.locator("[data-total=entered]")).to_have_text("3")
    expect(panel.locator("[data-total=active]")).to_have_text("3")
    expect(panel.locator("canvas")).to_be_visible()
    page.screenshot(path=str(e2e_fixtures.ARTIFACTS / "builder-live.png"))

    # Simulate: the draft over the recently seen profiles, counts on nodes and edges.
    page.get_by_test_id("simulate").click()
    _until(lambda: _metrics_text(page, "cart") == "3 of 3 reach this (100%)")
    assert _metrics_text(page, "done") == "3 of 3 reach this (100%)"
    labels = page.evaluate(
        "() => window.journeyEditor.graph.getEdges().map(e => e.getLabels()[0]?.attrs?.label?.text)"
    )
    assert labels == ["100% · 3", "100% · 3"]
    page.get_by_test_id("simulate").click()  # hide it: the live numbers come back
    _until(lambda: _metrics_text(page, "cart") in ("", "3 entered"))


def test_the_live_socket_refuses_another_workspaces_member(
    browser, app_server, workspace, other_workspace, outsider, owner
):
    journey = _live_journey(workspace)
    script = """(url) => new Promise((resolve) => {
        const socket = new WebSocket(url);
        let frames = 0;
        socket.onmessage = () => { frames += 1; };
        socket.onclose = (event) => resolve({closed: true, frames});
        setTimeout(() => resolve({closed: false, frames}), 5000);
    })"""
    url = app_server.replace("http://", "ws://") + f"/ws/journeys/{journey.pk}/"
    seen = {}
    for user in (outsider, owner):
        context = browser.new_context(base_url=app_server)
        visitor = context.new_page()
        _login(visitor, user.username)
        seen[user.username] = visitor.evaluate(script, url)
        context.close()
    assert seen[outsider.username] == {"closed": True, "frames": 0}
    assert seen[owner.username]["closed"] is False and seen[owner.username]["frames"] >= 1
