"""Django admin registrations of the segments app.

Read-mostly: profiles and events come from ingestion, so the admin shows them for
support and debugging. Events live in a partitioned table with a composite primary
key, which the admin cannot list; a profile's page shows its latest events instead.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html_join

from segments.models import (
    EventSchema,
    Identity,
    IngestionSettings,
    Profile,
    ProfileMerge,
    RejectedEvent,
)
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
