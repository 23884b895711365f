"""Client-side API (write key) of delivery: inbox."""

urlpatterns: list = []
