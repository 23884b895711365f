"""REST API (v1) routes of analytics."""

from django.urls import path

from analytics import api

urlpatterns = [
    path(
        "journeys/<int:journey_id>/experiments",
        api.JourneyExperimentsApi.as_view(),
        name="api_journey_experiments",
    ),
    path(
        "journeys/<int:journey_id>/experiments/<str:node_id>/winner",
        api.JourneyExperimentWinnerApi.as_view(),
        name="api_journey_experiment_winner",
    ),
]
