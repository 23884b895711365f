"""REST API routes of the journeys app."""

from django.urls import path

from journeys import api

urlpatterns = [
    path("journeys/", api.JourneyListApi.as_view(), name="api_journeys"),
    path("journeys/<int:journey_id>/", api.JourneyApi.as_view(), name="api_journey"),
    path(
        "journeys/<int:journey_id>/draft", api.JourneyDraftApi.as_view(), name="api_journey_draft"
    ),
    path(
        "journeys/<int:journey_id>/check", api.JourneyCheckApi.as_view(), name="api_journey_check"
    ),
    path(
        "journeys/<int:journey_id>/simulate",
        api.JourneySimulateApi.as_view(),
        name="api_journey_simulate",
    ),
    path(
        "journeys/<int:journey_id>/publish",
        api.JourneyPublishApi.as_view(),
        name="api_journey_publish",
    ),
    path(
        "journeys/<int:journey_id>/pause", api.JourneyPauseApi.as_view(), name="api_journey_pause"
    ),
    path(
        "journeys/<int:journey_id>/resume",
        api.JourneyResumeApi.as_view(),
        name="api_journey_resume",
    ),
    path("journeys/<int:journey_id>/stop", api.JourneyStopApi.as_view(), name="api_journey_stop"),
    path(
        "journeys/<int:journey_id>/archive",
        api.JourneyArchiveApi.as_view(),
        name="api_journey_archive",
    ),
    path(
        "journeys/<int:journey_id>/versions/",
        api.JourneyVersionListApi.as_view(),
        name="api_journey_versions",
    ),
    path(
        "journeys/<int:journey_id>/enrollments/",
        api.JourneyEnrollmentsApi.as_view(),
        name="api_journey_enrollments",
    ),
    path(
        "profiles/<int:profile_id>/journeys",
        api.ProfileTraceApi.as_view(),
        name="api_profile_journeys",
    ),
]
