"""REST API (v1) routes of analytics."""

from django.urls import path

from analytics import api, export_api, funnel_api, metrics_api, value_api

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
    path("metrics", metrics_api.MetricsApi.as_view(), name="api_metrics"),
    path(
        "journeys/<int:journey_id>/metrics",
        metrics_api.JourneyMetricsApi.as_view(),
        name="api_journey_metrics",
    ),
    path("conversions", metrics_api.ConversionListApi.as_view(), name="api_conversions"),
    path("exports/<str:table>", export_api.WarehouseExportApi.as_view(), name="api_exports"),
    path("metrics/funnel", funnel_api.FunnelApi.as_view(), name="api_metrics_funnel"),
    path("metrics/retention", funnel_api.RetentionApi.as_view(), name="api_metrics_retention"),
    path("value-report", value_api.ValueReportApi.as_view(), name="api_value_report"),
    path(
        "profiles/<int:profile_id>/value",
        value_api.ProfileValueApi.as_view(),
        name="api_profile_value",
    ),
]
