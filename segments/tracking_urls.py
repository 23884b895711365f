"""The Segment-compatible tracking API: /v1/batch, /v1/track, /v1/identify, ..."""

urlpatterns: list = []
