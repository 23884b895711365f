"""Client-side API (write key) of delivery: device."""

urlpatterns: list = []
