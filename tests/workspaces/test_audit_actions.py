"""Audit action names: one scheme ("<object>.<verb>"), every name a service writes is
declared in AuditAction, and audit_record refuses any other."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from engagement_site.workspaces.models import AuditAction, AuditLog
from engagement_site.workspaces.services import audit_record
from tests.conftest import SETUP

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_DIRS = ["engagement_site", "segments", "content", "journeys", "delivery", "analytics"]


def _product_files() -> list[Path]:
    return [
        path
        for directory in PRODUCT_DIRS
        for path in sorted((ROOT / directory).rglob("*.py"))
        if "migrations" not in path.parts
    ]


def _forwarders(tree: ast.AST) -> set[str]:
    """Functions of a module that take `action` and hand it to audit_record as is
    (journeys.services._transition): their callers name the action."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and "action" in [
            a.arg for a in node.args.args + node.args.kwonlyargs
        ]:
            for call in ast.walk(node):
                if _callee(call) == "audit_record" and any(
                    k.arg == "action" and isinstance(k.value, ast.Name) and k.value.id == "action"
                    for k in call.keywords
                ):
                    names.add(node.name)
    return names


def _callee(node: ast.AST) -> str | None:
    if not isinstance(node, ast.Call):
        return None
    function = node.func
    return function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", None)


def _action_names(expression: ast.expr) -> list[str] | None:
    """The action names an expression can take, or None when it is not spelled out."""
    if isinstance(expression, ast.Constant) and isinstance(expression.value, str):
        return [expression.value]
    if (
        isinstance(expression, ast.Attribute)
        and isinstance(expression.value, ast.Name)
        and expression.value.id == "AuditAction"
    ):
        member = getattr(AuditAction, expression.attr, None)
        return [member.value if member is not None else f"AuditAction.{expression.attr}"]
    if isinstance(expression, ast.IfExp):
        body, orelse = _action_names(expression.body), _action_names(expression.orelse)
        return None if body is None or orelse is None else body + orelse
    return None


def _written_actions() -> dict[str, list[str]]:
    """action name -> the places that write it, over every audit_record call (and
    forwarder call) in the product's code."""
    found: dict[str, list[str]] = {}
    for path in _product_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        callees = {"audit_record"} | _forwarders(tree)
        for node in ast.walk(tree):
            if _callee(node) not in callees:
                continue
            for keyword in node.keywords:
                if keyword.arg != "action":
                    continue
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                names = _action_names(keyword.value)
                if names is None:
                    if isinstance(keyword.value, ast.Name) and keyword.value.id == "action":
                        continue  # a forwarder's own call; its callers are checked
                    names = [f"<not spelled out: {ast.unparse(keyword.value)}>"]
                for name in names:
                    found.setdefault(name, []).append(where)
    return found


def test_every_action_a_service_writes_is_declared():
    written = _written_actions()
    undeclared = {
        name: places for name, places in written.items() if name not in AuditAction.values
    }
    assert undeclared == {}
    # The scan sees the writers (and the forwarder's callers) it is meant to see.
    assert {"journey.publish", "journey.pause", "user.login", "value.settings"} <= set(written)
    assert len(written) >= 60


def test_action_names_follow_one_scheme_and_fit_the_column():
    width = AuditLog._meta.get_field("action").max_length
    wrong = [
        value
        for value in AuditAction.values
        if not re.fullmatch(r"[a-z_]+\.[a-z_]+", value) or len(value) > width
    ]
    assert wrong == []
    # The member's name is the value's, upper-cased: AuditAction.JOURNEY_PUBLISH.
    assert [m.name for m in AuditAction] == [m.value.replace(".", "_").upper() for m in AuditAction]


@pytest.mark.django_db
def test_audit_record_refuses_an_undeclared_action(workspace):
    before = AuditLog.objects.count()
    with pytest.raises(ValueError, match=re.escape("Undeclared audit action 'journey.teleport'")):
        audit_record(context=SETUP, action="journey.teleport", workspace=workspace)
    assert AuditLog.objects.count() == before
