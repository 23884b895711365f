"""The Segment-compatible tracking API: /v1/batch, /v1/track, /v1/identify, ... (with or
without a trailing slash, as clients differ)."""

from django.urls import re_path

from segments import tracking_views

urlpatterns = [
    re_path(r"^batch/?$", tracking_views.batch, name="tracking_batch"),
    re_path(
        r"^(?P<call_type>track|identify|page|screen|group|alias)/?$",
        tracking_views.single,
        name="tracking_single",
    ),
]
