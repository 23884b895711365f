"""Workspace settings: general, members, API keys, audit log (server-rendered, htmx)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from engagement_site.workspaces import selectors, services
from engagement_site.workspaces.access import workspace_view
from engagement_site.workspaces.forms import (
    ApiKeyCreateForm,
    MemberAddForm,
    MemberRoleForm,
    WorkspaceSettingsForm,
)
from engagement_site.workspaces.services import AuditContext


def _error_text(error: ValidationError) -> str:
    return " ".join(error.messages)


@workspace_view({"GET": "members.view", "POST": "members.edit"})
def settings_general(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace
    form = WorkspaceSettingsForm.for_workspace(workspace, request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.workspace_update(
            workspace=workspace,
            context=AuditContext.from_request(request),
            **{key: form.cleaned_data[key] for key in form.changed_data},
        )
        messages.success(request, "Workspace settings saved.")
        return redirect("settings_general", workspace_slug=workspace.slug)
    return render(
        request,
        "workspaces/settings_general.html",
        {"area": "settings", "tab": "general", "form": form},
    )


@workspace_view({"GET": "members.view", "POST": "members.edit"})
def settings_members(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace
    form = MemberAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.membership_add(
                workspace=workspace,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                acting_role=request.membership.role,
                context=AuditContext.from_request(request),
            )
        except ValidationError as error:
            form.add_error("email", _error_text(error))
        else:
            messages.success(request, f"{form.cleaned_data['email']} added.")
            return redirect("settings_members", workspace_slug=workspace.slug)
    members = selectors.workspace_members(workspace=workspace)
    return render(
        request,
        "workspaces/settings_members.html",
        {"area": "settings", "tab": "members", "form": form, "members": members},
    )


@workspace_view("members.edit")
@require_POST
def member_change_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = selectors.workspace_membership_get(
        workspace=request.workspace, membership_id=membership_id
    )
    form = MemberRoleForm(request.POST)
    if form.is_valid():
        try:
            services.membership_change_role(
                membership=membership,
                role=form.cleaned_data["role"],
                acting_role=request.membership.role,
                context=AuditContext.from_request(request),
            )
            messages.success(
                request,
                f"{membership.user.get_username()} is now {form.cleaned_data['role'].replace('_', ' ')}.",
            )
        except ValidationError as error:
            messages.error(request, _error_text(error))
    else:
        messages.error(request, "Choose a valid role.")
    return redirect("settings_members", workspace_slug=request.workspace.slug)


@workspace_view("members.edit")
@require_POST
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = selectors.workspace_membership_get(
        workspace=request.workspace, membership_id=membership_id
    )
    try:
        services.membership_remove(
            membership=membership,
            acting_role=request.membership.role,
            context=AuditContext.from_request(request),
        )
        messages.success(request, f"{membership.user.get_username()} removed.")
    except ValidationError as error:
        messages.error(request, _error_text(error))
    return redirect("settings_members", workspace_slug=request.workspace.slug)


@workspace_view({"GET": "api_keys.view", "POST": "api_keys.edit"})
def settings_api_keys(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace
    form = ApiKeyCreateForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        _, new_key = services.api_key_create(
            workspace=workspace,
            kind=form.cleaned_data["kind"],
            name=form.cleaned_data["name"],
            role=form.cleaned_data["role"],
            context=AuditContext.from_request(request),
        )
        form = ApiKeyCreateForm()
    keys = selectors.workspace_api_keys(workspace=workspace)
    return render(
        request,
        "workspaces/settings_api_keys.html",
        {"area": "settings", "tab": "api_keys", "form": form, "api_keys": keys, "new_key": new_key},
    )


@workspace_view("api_keys.edit")
@require_POST
def api_key_revoke(request: HttpRequest, api_key_id: int) -> HttpResponse:
    api_key = selectors.workspace_api_key_get(workspace=request.workspace, api_key_id=api_key_id)
    services.api_key_revoke(api_key=api_key, context=AuditContext.from_request(request))
    messages.success(request, f"Key {api_key.name} revoked; requests with it now get 401.")
    return redirect("settings_api_keys", workspace_slug=request.workspace.slug)


@workspace_view("audit_log.view")
def settings_audit_log(request: HttpRequest) -> HttpResponse:
    rows = selectors.workspace_audit_log(workspace=request.workspace)
    action = request.GET.get("action", "")
    if action:
        rows = rows.filter(action=action)
    page = Paginator(rows, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "workspaces/settings_audit_log.html",
        {
            "area": "settings",
            "tab": "audit_log",
            "page": page,
            "action": action,
            "audit_actions": rows.model._meta.get_field("action").choices,
        },
    )
