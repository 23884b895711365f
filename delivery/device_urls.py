"""Client-side API (write key) of delivery: device."""

from django.urls import path

from delivery import device_api

urlpatterns = [
    path("devices", device_api.devices, name="api_devices"),
]
