"""Django admin for staff: workspaces, memberships, API keys (revoke) and the
audit log (read-only). Changes made here go through the same services as the app,
so they are audited too."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest

from engagement_site.workspaces import services
from engagement_site.workspaces.models import ApiKey, AuditLog, Membership, Workspace
from engagement_site.workspaces.services import AuditContext


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    readonly_fields = ["created_at"]


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "time_zone", "default_locale", "created_at"]
    search_fields = ["name", "slug"]
    readonly_fields = ["created_at"]
    inlines = [MembershipInline]

    def save_model(self, request, obj, form, change):
        context = AuditContext.from_request(request)
        if change:
            fields = {
                key: form.cleaned_data[key]
                for key in form.changed_data
                if key in services.WORKSPACE_EDITABLE_FIELDS
            }
            fresh = Workspace.objects.get(pk=obj.pk)
            services.workspace_update(workspace=fresh, context=context, **fields)
        else:
            obj.save()
            services.audit_record(
                context=context,
                action="workspace.create",
                workspace=obj,
                target=obj,
                changes={"name": obj.name, "slug": obj.slug},
            )

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a workspace with history is archived, not deleted (audit rows keep it)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role", "workspace"]
    search_fields = ["user__username", "user__email", "workspace__slug"]
    autocomplete_fields = ["user", "workspace"]

    def save_model(self, request, obj, form, change):
        context = AuditContext.from_request(request)
        if change:
            before = Membership.objects.get(pk=obj.pk).role
            obj.save()
            if before != obj.role:
                services.audit_record(
                    context=context,
                    action="member.update",
                    workspace=obj.workspace,
                    target=obj,
                    changes={"role": {"before": before, "after": obj.role}},
                )
        else:
            obj.save()
            services.audit_record(
                context=context,
                action="member.create",
                workspace=obj.workspace,
                target=obj,
                changes={"user": obj.user.get_username(), "role": obj.role},
            )

    def delete_model(self, request, obj):
        services.audit_record(
            context=AuditContext.from_request(request),
            action="member.delete",
            workspace=obj.workspace,
            target=obj,
        )
        obj.delete()


@admin.action(description="Revoke the selected keys")
def revoke_keys(modeladmin, request: HttpRequest, queryset) -> None:
    context = AuditContext.from_request(request)
    count = 0
    for api_key in queryset.filter(revoked_at__isnull=True):
        services.api_key_revoke(api_key=api_key, context=context)
        count += 1
    modeladmin.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "workspace",
        "kind",
        "role",
        "display_prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["kind", "workspace", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "display_prefix", "workspace__slug"]
    actions = [revoke_keys]
    readonly_fields = [f.name for f in ApiKey._meta.fields if f.name != "id"]
    exclude = ["key_hash"]

    def has_add_permission(self, request) -> bool:
        return False  # created in Settings or with `manage.py create_api_key`, shown once

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: the audit log refers to keys


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "workspace",
        "actor_label",
        "action",
        "object_type",
        "object_repr",
        "ip_address",
    ]
    list_filter = ["action", "workspace", ("created_at", admin.DateFieldListFilter), "actor"]
    search_fields = ["actor_label", "object_repr", "object_id", "object_type", "ip_address"]
    date_hierarchy = "created_at"
    list_select_related = ["workspace"]
    readonly_fields = [f.name for f in AuditLog._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
