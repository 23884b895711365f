"""Django admin registrations of the delivery app."""

from django.contrib import admin

from delivery.models import DeliverySettings


@admin.register(DeliverySettings)
class DeliverySettingsAdmin(admin.ModelAdmin):
    list_display = ("workspace", "track_opens", "track_clicks", "utm_source", "updated_at")
    search_fields = ("workspace__name", "workspace__slug")
