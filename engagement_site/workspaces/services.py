"""Writes for workspaces, memberships, API keys and the audit log.

Every service that changes something records an audit row in the same transaction,
so an audited change and its audit row commit or roll back together.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.http import HttpRequest
from django.utils import timezone

from engagement_site.workspaces.models import ApiKey, AuditAction, AuditLog, Membership, Workspace
from engagement_site.workspaces.roles import ROLES_ASSIGNABLE_BY, Role

GENESIS_HASH = "0" * 64
# API key use is audited at most once per key per this interval (a write key may be
# used thousands of times a second; its last_used_at is kept at the same granularity).
API_KEY_USE_AUDIT_INTERVAL = timedelta(hours=1)
API_KEY_LAST_USED_GRANULARITY = timedelta(minutes=1)


@dataclass(frozen=True)
class AuditContext:
    """Who did it and from where. Built once per request (or per command / key use)."""

    actor: AbstractBaseUser | None = None
    actor_label: str = ""
    ip_address: str | None = None
    user_agent: str = ""

    @classmethod
    def from_request(
        cls, request: HttpRequest, *, actor: AbstractBaseUser | None = None
    ) -> AuditContext:
        user = actor if actor is not None else getattr(request, "user", None)
        if not isinstance(user, get_user_model()):
            user = None  # anonymous, or a secret-key request (its key is the actor)
        api_key = getattr(request, "auth", None)
        label = user.get_username() if user is not None else ""
        if user is None and isinstance(api_key, ApiKey):
            label = f"API key {api_key.display_prefix}… ({api_key.name})"
        return cls(
            actor=user,
            actor_label=label,
            ip_address=_client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
        )

    @classmethod
    def system(cls, label: str) -> AuditContext:
        return cls(actor_label=label)


def _client_ip(request: HttpRequest) -> str | None:
    from axes.helpers import get_client_ip_address

    return get_client_ip_address(request) or None


def _canonical(row: AuditLog) -> bytes:
    payload = {
        "workspace": row.workspace_id,
        "sequence": row.sequence,
        "created_at": row.created_at.isoformat(),
        "actor": row.actor_id,
        "actor_label": row.actor_label,
        "action": row.action,
        "object_type": row.object_type,
        "object_id": row.object_id,
        "object_repr": row.object_repr,
        "changes": row.changes,
        "ip_address": row.ip_address,
        "user_agent": row.user_agent,
        "previous_hash": row.previous_hash,
    }
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)


def audit_row_hash(row: AuditLog) -> str:
    return hashlib.sha256(_canonical(row)).hexdigest()


def _chain_lock(workspace_id: int | None) -> None:
    # Serialises writers of one chain so sequence numbers and hashes stay linear.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [7001, workspace_id or 0])


def audit_record(
    *,
    context: AuditContext,
    action: str,
    workspace: Workspace | None = None,
    target: Any = None,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
    changes: dict[str, Any] | None = None,
) -> AuditLog:
    """Append one row to the workspace's audit chain (or the global chain). `action` is
    one of AuditAction ("<object>.<verb>"): a name nobody declared is refused rather
    than stored where no filter or label knows it."""
    if action not in AuditAction.values:
        raise ValueError(f"Undeclared audit action {action!r}: add it to AuditAction.")
    if target is not None:
        object_type = object_type or target._meta.label
        object_id = object_id or str(target.pk)
        object_repr = object_repr or str(target)[:200]
    with transaction.atomic():
        _chain_lock(workspace.pk if workspace else None)
        last = (
            AuditLog.objects.filter(workspace=workspace)
            .order_by("-sequence")
            .values("sequence", "row_hash")
            .first()
        )
        row = AuditLog(
            workspace=workspace,
            sequence=(last["sequence"] + 1) if last else 1,
            created_at=timezone.now(),
            actor=context.actor,
            actor_label=context.actor_label[:200],
            action=action,
            object_type=object_type,
            object_id=object_id,
            object_repr=object_repr[:200],
            changes=orjson.loads(orjson.dumps(changes or {}, default=str)),
            ip_address=context.ip_address,
            user_agent=context.user_agent,
            previous_hash=last["row_hash"] if last else GENESIS_HASH,
        )
        row.row_hash = audit_row_hash(row)
        row.save(force_insert=True)
    return row


@dataclass(frozen=True)
class ChainBreak:
    workspace_id: int | None
    sequence: int
    audit_log_id: int
    problem: str


def audit_log_verify(
    *, workspace: Workspace | None = None, all_chains: bool = False
) -> list[ChainBreak]:
    """Walk one chain (or every chain) and report each row whose link or hash is wrong."""
    if all_chains:
        chain_ids: list[int | None] = [None, *Workspace.objects.values_list("pk", flat=True)]
    else:
        chain_ids = [workspace.pk if workspace else None]
    breaks: list[ChainBreak] = []
    for chain_id in chain_ids:
        expected_previous = GENESIS_HASH
        expected_sequence = 1
        rows = (
            AuditLog.objects.filter(workspace_id=chain_id)
            .order_by("sequence")
            .iterator(chunk_size=2000)
        )
        for row in rows:
            if row.sequence != expected_sequence:
                breaks.append(
                    ChainBreak(
                        chain_id,
                        row.sequence,
                        row.pk,
                        f"sequence jumps from {expected_sequence - 1} to {row.sequence} (rows missing)",
                    )
                )
            if row.previous_hash != expected_previous:
                breaks.append(
                    ChainBreak(
                        chain_id,
                        row.sequence,
                        row.pk,
                        "previous_hash does not match the row before it",
                    )
                )
            if audit_row_hash(row) != row.row_hash:
                breaks.append(
                    ChainBreak(
                        chain_id,
                        row.sequence,
                        row.pk,
                        "row content does not match its hash (row was changed)",
                    )
                )
            expected_previous = row.row_hash
            expected_sequence = row.sequence + 1
    return breaks


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {
        key: {"before": before.get(key), "after": after.get(key)}
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }


# --------------------------------------------------------------------------- workspaces


@transaction.atomic
def workspace_create(
    *,
    name: str,
    slug: str,
    owner: AbstractBaseUser,
    context: AuditContext,
    time_zone: str = "UTC",
    default_locale: str = "en",
) -> Workspace:
    workspace = Workspace(name=name, slug=slug, time_zone=time_zone, default_locale=default_locale)
    workspace.full_clean()
    workspace.save()
    Membership.objects.create(workspace=workspace, user=owner, role=Role.OWNER)
    audit_record(
        context=context,
        action=AuditAction.WORKSPACE_CREATE,
        workspace=workspace,
        target=workspace,
        changes={
            "name": name,
            "slug": slug,
            "time_zone": time_zone,
            "default_locale": default_locale,
            "owner": owner.get_username(),
        },
    )
    return workspace


WORKSPACE_EDITABLE_FIELDS = ("name", "time_zone", "default_locale")


@transaction.atomic
def workspace_update(*, workspace: Workspace, context: AuditContext, **fields: Any) -> Workspace:
    unknown = set(fields) - set(WORKSPACE_EDITABLE_FIELDS)
    if unknown:
        raise ValidationError(f"cannot change {', '.join(sorted(unknown))}")
    before = {key: getattr(workspace, key) for key in fields}
    for key, value in fields.items():
        setattr(workspace, key, value)
    workspace.full_clean()
    changes = _diff(before, fields)
    if not changes:
        return workspace
    workspace.save(update_fields=list(changes))
    audit_record(
        context=context,
        action=AuditAction.WORKSPACE_UPDATE,
        workspace=workspace,
        target=workspace,
        changes=changes,
    )
    return workspace


# --------------------------------------------------------------------------- members


def _check_can_assign(*, acting_role: str, role: str) -> None:
    if role not in ROLES_ASSIGNABLE_BY.get(acting_role, ()):
        raise PermissionDenied(
            f"A {Role(acting_role).label.lower()} cannot grant or remove the {Role(role).label.lower()} role"
        )


@transaction.atomic
def membership_add(
    *, workspace: Workspace, email: str, role: str, acting_role: str, context: AuditContext
) -> Membership:
    """Add an existing user (found by email or username) to the workspace."""
    if role not in Role.values:
        raise ValidationError(f"unknown role {role!r}")
    _check_can_assign(acting_role=acting_role, role=role)
    user_model = get_user_model()
    user = (
        user_model.objects.filter(email__iexact=email).first()
        or user_model.objects.filter(username=email).first()
    )
    if user is None:
        raise ValidationError(
            f"No user with the email {email!r}: ask an admin to create the account first."
        )
    if Membership.objects.filter(workspace=workspace, user=user).exists():
        raise ValidationError(f"{email} is already a member of this workspace.")
    membership = Membership.objects.create(workspace=workspace, user=user, role=role)
    audit_record(
        context=context,
        action=AuditAction.MEMBER_CREATE,
        workspace=workspace,
        target=membership,
        changes={"user": user.get_username(), "role": role},
    )
    return membership


def _check_keeps_an_owner(membership: Membership) -> None:
    if (
        membership.role == Role.OWNER
        and not Membership.objects.filter(workspace_id=membership.workspace_id, role=Role.OWNER)
        .exclude(pk=membership.pk)
        .exists()
    ):
        raise ValidationError("A workspace needs at least one owner.")


@transaction.atomic
def membership_change_role(
    *, membership: Membership, role: str, acting_role: str, context: AuditContext
) -> Membership:
    if role not in Role.values:
        raise ValidationError(f"unknown role {role!r}")
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if membership.role == role:
        return membership
    _check_can_assign(acting_role=acting_role, role=membership.role)
    _check_can_assign(acting_role=acting_role, role=role)
    _check_keeps_an_owner(membership)
    before = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(
        context=context,
        action=AuditAction.MEMBER_UPDATE,
        workspace=membership.workspace,
        target=membership,
        changes={"role": {"before": before, "after": role}},
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, acting_role: str, context: AuditContext) -> None:
    membership = (
        Membership.objects.select_for_update()
        .select_related("workspace", "user")
        .get(pk=membership.pk)
    )
    _check_can_assign(acting_role=acting_role, role=membership.role)
    _check_keeps_an_owner(membership)
    audit_record(
        context=context,
        action=AuditAction.MEMBER_DELETE,
        workspace=membership.workspace,
        target=membership,
        changes={"user": membership.user.get_username(), "role": membership.role},
    )
    membership.delete()


# --------------------------------------------------------------------------- API keys


@transaction.atomic
def api_key_create(
    *, workspace: Workspace, kind: str, name: str, context: AuditContext, role: str = ""
) -> tuple[ApiKey, str]:
    """Create a key and return it with its plaintext, which is not stored for secret keys."""
    if kind not in ApiKey.Kind.values:
        raise ValidationError(f"unknown key kind {kind!r}: use write or secret")
    if kind == ApiKey.Kind.SECRET:
        role = role or Role.VIEWER
        if role not in Role.values:
            raise ValidationError(f"unknown role {role!r}")
    elif role:
        raise ValidationError("write keys only ingest events and take no role")
    if not name.strip():
        raise ValidationError("give the key a name that says where it is used")
    raw_key = ApiKey.PREFIXES[kind] + secrets.token_urlsafe(32 if kind == ApiKey.Kind.WRITE else 40)
    api_key = ApiKey.objects.create(
        workspace=workspace,
        kind=kind,
        name=name.strip()[:120],
        role=role,
        display_prefix=raw_key[:11],
        key_hash=ApiKey.hash_key(raw_key),
        public_value=raw_key if kind == ApiKey.Kind.WRITE else "",
        created_by=context.actor,
    )
    audit_record(
        context=context,
        action=AuditAction.API_KEY_CREATE,
        workspace=workspace,
        target=api_key,
        changes={"kind": kind, "name": api_key.name, "role": role},
    )
    return api_key, raw_key


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, context: AuditContext) -> ApiKey:
    api_key = ApiKey.objects.select_for_update().select_related("workspace").get(pk=api_key.pk)
    if api_key.revoked_at is not None:
        return api_key
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked_at"])
    audit_record(
        context=context,
        action=AuditAction.API_KEY_REVOKE,
        workspace=api_key.workspace,
        target=api_key,
    )
    return api_key


def api_key_authenticate(
    *, raw_key: str, kind: str, request: HttpRequest | None = None
) -> ApiKey | None:
    """Return the active key of this kind, or None. Records use (coarsely; see above)."""
    if not raw_key:
        return None
    api_key = (
        ApiKey.objects.select_related("workspace")
        .filter(key_hash=ApiKey.hash_key(raw_key), kind=kind, revoked_at__isnull=True)
        .first()
    )
    if api_key is None:
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at >= API_KEY_LAST_USED_GRANULARITY:
        previous = api_key.last_used_at
        # Conditional update: of many concurrent requests, one records the use.
        updated = ApiKey.objects.filter(pk=api_key.pk, last_used_at=previous).update(
            last_used_at=now
        )
        if updated and (previous is None or now - previous >= API_KEY_USE_AUDIT_INTERVAL):
            label = f"API key {api_key.display_prefix}… ({api_key.name})"
            context = AuditContext.from_request(request) if request is not None else AuditContext()
            audit_record(
                context=AuditContext(
                    actor_label=label, ip_address=context.ip_address, user_agent=context.user_agent
                ),
                action=AuditAction.API_KEY_USE,
                workspace=api_key.workspace,
                target=api_key,
            )
        api_key.last_used_at = now
    return api_key


# --------------------------------------------------------------------------- sessions


def session_login_recorded(*, request: HttpRequest, user: AbstractBaseUser) -> None:
    """Audit a successful login in every workspace the user belongs to."""
    context = AuditContext.from_request(request, actor=user)
    audit_record(
        context=context, action=AuditAction.USER_LOGIN, target=user, object_repr=user.get_username()
    )


def session_logout_recorded(*, request: HttpRequest, user: AbstractBaseUser) -> None:
    context = AuditContext.from_request(request, actor=user)
    audit_record(
        context=context,
        action=AuditAction.USER_LOGOUT,
        target=user,
        object_repr=user.get_username(),
    )


def session_login_failed_recorded(*, request: HttpRequest, username: str, locked_out: bool) -> None:
    context = AuditContext.from_request(request)
    audit_record(
        context=AuditContext(
            actor_label=username[:200], ip_address=context.ip_address, user_agent=context.user_agent
        ),
        action=AuditAction.USER_LOGIN_FAILED,
        object_type="auth.User",
        object_repr=username[:200],
        changes={"locked_out": locked_out},
    )
