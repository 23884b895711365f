"""Client-side API (write key) of delivery: devices, subscriptions, push engagement."""

from django.urls import path

from delivery import device_api, push_api, subscription_api

urlpatterns = [
    path("devices", device_api.devices, name="api_devices"),
    path("subscriptions", subscription_api.subscriptions, name="api_subscriptions"),
    path("push/<slug:action>", push_api.push_engagement, name="api_push_engagement"),
]
