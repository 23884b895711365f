"""Django admin registrations of the segments app.

Read-mostly: profiles and events come from ingestion, so the admin shows them for
support and debugging. Events live in a partitioned table with a composite primary
key, which the admin cannot list; a profile's page shows its latest events instead.

A profile leaves only through the "Erase selected profiles" action (the privacy
service, audited); the admin's own delete is switched off for profiles, because it
would leave the person's quarantined events and messageIds behind, unaudited.
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html_join

from engagement_site.workspaces.services import AuditContext
from segments.forms import EventSchemaAdminForm
from segments.models import (
    Event,
    EventSchema,
    Identity,
    IngestionSettings,
    Profile,
    ProfileMerge,
    RejectedEvent,
)
from segments.privacy import EXPORT_FORMAT, profile_erase, profile_export
from segments.selectors import profile_events_latest


class IdentityInline(admin.TabularInline):
    model = Identity
    extra = 0
    fields = ["kind", "value", "created_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class MergeInline(admin.TabularInline):
    model = ProfileMerge
    extra = 0
    fields = ["merged_at", "reason", "merged_profile_id", "merged_identities", "events_moved"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["id", "display_name", "user_id", "email", "workspace", "last_seen"]
    list_filter = ["workspace"]
    list_select_related = ["workspace"]
    search_fields = ["=user_id", "email"]
    raw_id_fields = ["workspace"]
    readonly_fields = ["first_seen", "last_seen", "created_at", "latest_events"]
    ordering = ["-last_seen"]
    show_full_result_count = False
    inlines = [IdentityInline, MergeInline]

    @admin.display(description="Latest events")
    def latest_events(self, obj: Profile) -> str:
        events = profile_events_latest(workspace=obj.workspace, profile=obj, limit=20)
        return (
            format_html_join(
                "\n", "<div>{} · {} {}</div>", ((e.timestamp, e.type, e.name) for e in events)
            )
            or "-"
        )

    # ------------------------------------------------------------------ privacy actions

    actions = ["export_selected_profiles", "erase_selected_profiles"]

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # erasing goes through the action below

    def has_erase_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("segments.delete_profile")

    def has_export_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("segments.view_profile")

    @admin.action(description="Export selected profiles (JSON download)", permissions=["export"])
    def export_selected_profiles(
        self, request: HttpRequest, queryset: QuerySet[Profile]
    ) -> HttpResponse:
        context = AuditContext.from_request(request)
        documents = [
            profile_export(workspace=profile.workspace, profile=profile, context=context)
            for profile in queryset.select_related("workspace").order_by("pk")
        ]
        response = HttpResponse(
            json.dumps({"format": EXPORT_FORMAT, "profiles": documents}, indent=2),
            content_type="application/json",
        )
        response["Content-Disposition"] = 'attachment; filename="profiles-export.json"'
        return response

    @admin.action(description="Erase selected profiles", permissions=["erase"])
    def erase_selected_profiles(
        self, request: HttpRequest, queryset: QuerySet[Profile]
    ) -> HttpResponse | None:
        profiles = list(queryset.select_related("workspace").order_by("pk"))
        if request.POST.get("post") != "yes":
            event_count = Event.objects.filter(profile__in=profiles).aggregate(n=Count("id"))["n"]
            return TemplateResponse(
                request,
                "segments/admin/erase_profiles_confirmation.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Erase profiles: are you sure?",
                    "opts": self.model._meta,
                    "profiles": profiles,
                    "event_count": event_count,
                    "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
                },
            )
        context = AuditContext.from_request(request)
        erased = events = 0
        for profile in profiles:
            try:
                counts = profile_erase(
                    workspace=profile.workspace, profile=profile, context=context
                )
            except Http404:  # erased by someone else since the confirmation page
                continue
            erased += 1
            events += counts["events"]
        self.message_user(
            request,
            f"Erased {erased} profile{'s' if erased != 1 else ''} and {events} "
            f"event{'s' if events != 1 else ''}; the audit log records each erasure.",
            messages.SUCCESS,
        )
        return None

    # Django's admin log keeps str(obj), the display name (a name or an email), for ever
    # after an erase: log the profile by id instead.
    def _log(self, request: HttpRequest, obj: Profile, flag: int, message) -> LogEntry:
        return LogEntry.objects.create(
            user_id=request.user.pk,
            content_type=ContentType.objects.get_for_model(Profile),
            object_id=str(obj.pk),
            object_repr=f"Profile {obj.pk}",
            action_flag=flag,
            change_message=json.dumps(message) if isinstance(message, list) else message,
        )

    def log_addition(self, request: HttpRequest, obj: Profile, message) -> LogEntry:
        return self._log(request, obj, ADDITION, message)

    def log_change(self, request: HttpRequest, obj: Profile, message) -> LogEntry:
        return self._log(request, obj, CHANGE, message)


@admin.register(RejectedEvent)
class RejectedEventAdmin(admin.ModelAdmin):
    list_display = ["received_at", "workspace", "code", "event_type", "event_name", "message_id"]
    list_filter = ["workspace", "code"]
    search_fields = ["=message_id", "event_name", "reason"]
    readonly_fields = [f.name for f in RejectedEvent._meta.fields]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(EventSchema)
class EventSchemaAdmin(admin.ModelAdmin):
    form = EventSchemaAdminForm
    list_display = ["event_name", "workspace", "allow_additional_properties", "updated_at"]
    list_filter = ["workspace"]
    search_fields = ["event_name"]


@admin.register(IngestionSettings)
class IngestionSettingsAdmin(admin.ModelAdmin):
    list_display = [
        "workspace",
        "schema_violation_action",
        "rate_limit_per_second",
        "event_retention_days",
        "dedup_window_days",
    ]
