"""REST API routes of the segments app (profiles, events, rejected events, schemas)."""

urlpatterns: list = []
