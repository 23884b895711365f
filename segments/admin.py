"""Django admin registrations of the segments app.

Read-mostly: profiles and events come from ingestion, so the admin shows them for
support and debugging and does not add events by hand. Foreign keys are raw id
fields and the event list skips the full count, so pages stay fast on large tables.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from segments.models import Event, Profile


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["id", "display_name", "user_id", "email", "workspace", "last_seen"]
    list_filter = ["workspace"]
    list_select_related = ["workspace"]
    search_fields = ["=user_id", "email"]
    raw_id_fields = ["workspace"]
    readonly_fields = ["first_seen", "last_seen", "created_at"]
    ordering = ["-last_seen"]
    show_full_result_count = False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["id", "timestamp", "type", "name", "profile_id", "workspace", "message_id"]
    list_filter = ["workspace", "type"]
    list_select_related = ["workspace"]
    search_fields = ["=message_id", "name", "=profile__user_id"]
    raw_id_fields = ["workspace", "profile"]
    ordering = ["-timestamp"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        # Events are facts as received; staff may view them (has_view_permission), not edit.
        return False
