"""Reads, always scoped: a user sees only the workspaces they are a member of, and
anything inside a workspace is found through that workspace. A miss is Http404,
whether the object does not exist or belongs to someone else."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import QuerySet
from django.http import Http404

from engagement_site.workspaces.models import ApiKey, AuditLog, Membership, Workspace


def memberships_for_user(*, user: AbstractBaseUser) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(user=user).select_related("workspace").order_by("workspace__name")
    )


def membership_get(*, user: AbstractBaseUser, workspace_slug: str) -> Membership:
    if not user.is_authenticated:
        raise Http404("No such workspace")
    membership = (
        Membership.objects.select_related("workspace")
        .filter(user=user, workspace__slug=workspace_slug)
        .first()
    )
    if membership is None:
        raise Http404("No such workspace")
    return membership


def workspace_members(*, workspace: Workspace) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(workspace=workspace)
        .select_related("user")
        .order_by("user__username")
    )


def workspace_membership_get(*, workspace: Workspace, membership_id: int) -> Membership:
    membership = workspace_members(workspace=workspace).filter(pk=membership_id).first()
    if membership is None:
        raise Http404("No such member")
    return membership


def workspace_api_keys(*, workspace: Workspace) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(workspace=workspace).select_related("created_by")


def workspace_api_key_get(*, workspace: Workspace, api_key_id: int) -> ApiKey:
    api_key = workspace_api_keys(workspace=workspace).filter(pk=api_key_id).first()
    if api_key is None:
        raise Http404("No such API key")
    return api_key


def workspace_audit_log(*, workspace: Workspace) -> QuerySet[AuditLog]:
    return (
        AuditLog.objects.filter(workspace=workspace).select_related("actor").order_by("-sequence")
    )


def workspace_by_slug(*, slug: str) -> Workspace:
    """For operator commands only (no user): the caller is trusted."""
    workspace = Workspace.objects.filter(slug=slug).first()
    if workspace is None:
        raise Workspace.DoesNotExist(f"No workspace with the slug {slug!r}")
    return workspace
