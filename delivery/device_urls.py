"""Client-side API (write key) of delivery: devices and subscriptions."""

from django.urls import path

from delivery import device_api, subscription_api

urlpatterns = [
    path("devices", device_api.devices, name="api_devices"),
    path("subscriptions", subscription_api.subscriptions, name="api_subscriptions"),
]
