"""Audit rows: written for every audited action, impossible to change, and chained."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django.test import Client
from django.urls import reverse

from engagement_site.workspaces.models import ApiKey, AuditLog, Membership
from engagement_site.workspaces.roles import Role
from engagement_site.workspaces.services import (
    GENESIS_HASH,
    api_key_authenticate,
    api_key_create,
    audit_log_verify,
    audit_row_hash,
)
from tests.conftest import PASSWORD, SETUP, logged_in


def _actions(workspace=None):
    return list(
        AuditLog.objects.filter(workspace=workspace)
        .order_by("sequence")
        .values_list("action", flat=True)
    )


def test_workspace_creation_is_the_first_row_of_its_chain(workspace):
    row = AuditLog.objects.get(workspace=workspace)
    assert (row.sequence, row.action, row.object_type, row.previous_hash) == (
        1,
        "workspace.create",
        "workspaces.Workspace",
        GENESIS_HASH,
    )
    assert row.changes["slug"] == "acme"
    assert row.row_hash == audit_row_hash(row)


def test_member_changes_are_audited_with_before_and_after(workspace, owner, make_user):
    make_user("nina")
    client = logged_in(owner)
    client.post(
        reverse("settings_members", kwargs={"workspace_slug": "acme"}),
        {"email": "nina@example.com", "role": "viewer"},
    )
    membership = Membership.objects.get(user__username="nina")
    client.post(
        reverse(
            "member_change_role", kwargs={"workspace_slug": "acme", "membership_id": membership.pk}
        ),
        {"role": "analyst"},
    )
    client.post(
        reverse("member_remove", kwargs={"workspace_slug": "acme", "membership_id": membership.pk})
    )
    rows = list(
        AuditLog.objects.filter(workspace=workspace, object_type="workspaces.Membership").order_by(
            "sequence"
        )
    )
    assert [(r.action, r.actor_label, r.changes) for r in rows] == [
        ("member.create", "olivia", {"user": "nina", "role": "viewer"}),
        ("member.update", "olivia", {"role": {"before": "viewer", "after": "analyst"}}),
        ("member.delete", "olivia", {"user": "nina", "role": "analyst"}),
    ]
    assert rows[0].ip_address == "127.0.0.1"


def test_settings_change_records_only_the_changed_fields(workspace, owner):
    logged_in(owner).post(
        reverse("settings_general", kwargs={"workspace_slug": "acme"}),
        {"name": "Acme", "time_zone": "Asia/Tokyo", "default_locale": "en"},
    )
    row = AuditLog.objects.filter(workspace=workspace).latest("sequence")
    assert (row.action, row.changes) == (
        "workspace.update",
        {"time_zone": {"before": "UTC", "after": "Asia/Tokyo"}},
    )


def test_api_key_created_revoked_and_used_are_audited(workspace, owner):
    client = logged_in(owner)
    client.post(
        reverse("settings_api_keys", kwargs={"workspace_slug": "acme"}),
        {"name": "Backend", "kind": "secret", "role": "analyst"},
    )
    api_key = ApiKey.objects.get(name="Backend")
    client.post(
        reverse("api_key_revoke", kwargs={"workspace_slug": "acme", "api_key_id": api_key.pk})
    )
    _, raw = api_key_create(workspace=workspace, kind="write", name="web", context=SETUP)
    api_key_authenticate(raw_key=raw, kind="write")
    api_key_authenticate(raw_key=raw, kind="write")  # within the hour: not audited again
    assert _actions(workspace) == [
        "workspace.create",
        "api_key.create",
        "api_key.revoke",
        "api_key.create",
        "api_key.use",
    ]


def test_logins_logouts_and_failures_are_audited(workspace, owner):
    client = Client()
    client.post(reverse("login"), {"username": "olivia", "password": "wrong"})
    client.post(reverse("login"), {"username": "olivia", "password": PASSWORD})
    client.post(reverse("logout"))
    rows = list(AuditLog.objects.filter(workspace=None).order_by("sequence"))
    assert [(r.action, r.actor_label) for r in rows] == [
        ("user.login_failed", "olivia"),
        ("user.login", "olivia"),
        ("user.logout", "olivia"),
    ]
    assert rows[0].changes == {"locked_out": False}


def test_login_is_throttled_after_repeated_failures(workspace, owner, settings):
    client = Client()
    statuses = [
        client.post(reverse("login"), {"username": "olivia", "password": f"guess{i}"}).status_code
        for i in range(6)
    ]
    with_right_password = client.post(
        reverse("login"), {"username": "olivia", "password": PASSWORD}
    )
    assert statuses == [200, 200, 200, 200, 429, 429]
    assert with_right_password.status_code == 429
    assert "_auth_user_id" not in client.session
    assert AuditLog.objects.filter(action="user.login").count() == 0


def test_the_model_refuses_change_and_delete(workspace):
    row = AuditLog.objects.get(workspace=workspace)
    row.action = "delete"
    with pytest.raises(PermissionError):
        row.save()
    with pytest.raises(PermissionError):
        row.delete()
    with pytest.raises(PermissionError):
        AuditLog.objects.filter(pk=row.pk).update(action="delete")
    with pytest.raises(PermissionError):
        AuditLog.objects.filter(pk=row.pk).delete()
    assert AuditLog.objects.get(pk=row.pk).action == "workspace.create"


@pytest.mark.parametrize(
    "statement",
    ["UPDATE workspaces_auditlog SET action = 'delete'", "DELETE FROM workspaces_auditlog"],
)
def test_the_database_refuses_change_and_delete_too(workspace, statement):
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement)
    assert _actions(workspace) == ["workspace.create"]


def test_admin_offers_no_add_change_or_delete(rf, owner):
    model_admin = admin.site._registry[AuditLog]
    request = rf.get("/")
    request.user = owner
    owner.is_staff = owner.is_superuser = True
    assert (
        model_admin.has_add_permission(request),
        model_admin.has_change_permission(request),
        model_admin.has_delete_permission(request),
    ) == (False, False, False)


def test_admin_change_page_is_read_only_and_a_post_changes_nothing(workspace, owner):
    owner.is_staff = owner.is_superuser = True
    owner.save()
    row = AuditLog.objects.get(workspace=workspace)
    client = logged_in(owner)
    page = client.get(reverse("admin:workspaces_auditlog_change", args=[row.pk]))
    post = client.post(
        reverse("admin:workspaces_auditlog_change", args=[row.pk]), {"action": "delete"}
    )
    delete = client.post(
        reverse("admin:workspaces_auditlog_delete", args=[row.pk]), {"post": "yes"}
    )
    assert page.status_code == 200
    assert 'name="action"' not in page.content.decode()
    assert (post.status_code, delete.status_code) == (403, 403)
    assert AuditLog.objects.get(pk=row.pk).action == "workspace.create"


def _tamper(sql: str, params: list) -> None:
    """What a superuser with database access could do: bypass the trigger and edit."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(sql, params)
        cursor.execute("SET session_replication_role = DEFAULT")


@pytest.fixture
def chain(workspace, make_member):
    for number in range(4):
        api_key_create(workspace=workspace, kind="write", name=f"key {number}", context=SETUP)
    return list(AuditLog.objects.filter(workspace=workspace).order_by("sequence"))


def test_an_intact_chain_verifies(chain, capsys):
    call_command("verify_audit_log")
    assert audit_log_verify(all_chains=True) == []
    assert "Audit log intact: 5 rows" in capsys.readouterr().out


def test_the_chain_detects_an_edited_row(chain, workspace):
    _tamper(
        "UPDATE workspaces_auditlog SET actor_label = 'someone else' WHERE id = %s", [chain[2].pk]
    )
    breaks = audit_log_verify(workspace=workspace)
    assert [(b.sequence, b.problem) for b in breaks] == [
        (3, "row content does not match its hash (row was changed)")
    ]
    with pytest.raises(CommandError, match="1 break"):
        call_command("verify_audit_log", "--workspace", "acme")


def test_the_chain_detects_a_deleted_row(chain, workspace):
    _tamper("DELETE FROM workspaces_auditlog WHERE id = %s", [chain[2].pk])
    breaks = audit_log_verify(workspace=workspace)
    assert [(b.sequence, b.problem) for b in breaks] == [
        (4, "sequence jumps from 2 to 4 (rows missing)"),
        (4, "previous_hash does not match the row before it"),
    ]


def test_the_chain_detects_a_rehashed_forgery(chain, workspace):
    """Editing a row and recomputing its own hash still breaks the link to the next row."""
    forged = AuditLog.objects.get(pk=chain[1].pk)
    forged.actor_label = "forger"
    new_hash = audit_row_hash(forged)
    _tamper(
        "UPDATE workspaces_auditlog SET actor_label = 'forger', row_hash = %s WHERE id = %s",
        [new_hash, forged.pk],
    )
    breaks = audit_log_verify(workspace=workspace)
    assert [(b.sequence, b.problem) for b in breaks] == [
        (3, "previous_hash does not match the row before it")
    ]


def test_chains_of_different_workspaces_are_independent(workspace, other_workspace):
    rows = AuditLog.objects.filter(
        action="workspace.create", object_type="workspaces.Workspace"
    ).order_by("workspace__slug")
    assert [(r.workspace.slug, r.sequence, r.previous_hash) for r in rows] == [
        ("acme", 1, GENESIS_HASH),
        ("globex", 1, GENESIS_HASH),
    ]


def test_a_membership_removal_audit_survives_a_failed_transaction(workspace, make_member):
    """An audited change and its audit row commit or roll back together."""
    viewer = make_member(Role.VIEWER)
    before = AuditLog.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        from engagement_site.workspaces.services import membership_remove

        membership_remove(
            membership=Membership.objects.get(user=viewer), acting_role=Role.OWNER, context=SETUP
        )
        raise RuntimeError("boom")
    assert AuditLog.objects.count() == before
    assert Membership.objects.filter(user=viewer).exists()
