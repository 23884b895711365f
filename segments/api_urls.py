"""REST API routes of the segments app (profiles, events, rejected events, schemas,
segments)."""

from django.urls import path

from segments import api, segment_api

urlpatterns = [
    path("profiles/", api.ProfileListApi.as_view(), name="api_profiles"),
    path("profiles/<int:profile_id>/", api.ProfileApi.as_view(), name="api_profile"),
    path(
        "profiles/<int:profile_id>/events/",
        api.ProfileEventListApi.as_view(),
        name="api_profile_events",
    ),
    path(
        "profiles/<int:profile_id>/export",
        api.ProfileExportApi.as_view(),
        name="api_profile_export",
    ),
    path(
        "profiles/<int:profile_id>/erase", api.ProfileEraseApi.as_view(), name="api_profile_erase"
    ),
    path("events/", api.EventListApi.as_view(), name="api_events"),
    path("rejected-events/", api.RejectedEventListApi.as_view(), name="api_rejected_events"),
    path("event-schemas/", api.EventSchemaListApi.as_view(), name="api_event_schemas"),
    path(
        "event-schemas/<int:event_schema_id>/",
        api.EventSchemaApi.as_view(),
        name="api_event_schema",
    ),
    path("segments/", segment_api.SegmentListApi.as_view(), name="api_segments"),
    path("segments/preview", segment_api.SegmentPreviewApi.as_view(), name="api_segment_preview"),
    path(
        "segments/static", segment_api.StaticSegmentCreateApi.as_view(), name="api_segment_static"
    ),
    path("segments/<int:segment_id>/", segment_api.SegmentApi.as_view(), name="api_segment"),
    path(
        "segments/<int:segment_id>/members/",
        segment_api.SegmentMembersApi.as_view(),
        name="api_segment_members",
    ),
    path(
        "segments/<int:segment_id>/export",
        segment_api.SegmentExportApi.as_view(),
        name="api_segment_export",
    ),
    path(
        "segments/<int:segment_id>/snapshot",
        segment_api.SegmentSnapshotApi.as_view(),
        name="api_segment_snapshot",
    ),
]
