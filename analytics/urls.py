from django.urls import path

from analytics import funnel_views, value_views, views

urlpatterns = [
    path("analytics/", views.analytics_home, name="analytics_home"),
    path("analytics/journeys/", views.analytics_journeys, name="analytics_journeys"),
    path("analytics/journeys/<int:journey_id>/", views.analytics_journey, name="analytics_journey"),
    path(
        "analytics/journeys/<int:journey_id>/winner",
        views.analytics_declare_winner,
        name="analytics_declare_winner",
    ),
    path("analytics/channels/", views.analytics_channels, name="analytics_channels"),
    path("analytics/value/", value_views.analytics_value, name="analytics_value"),
    path("analytics/funnels/", funnel_views.analytics_funnels, name="analytics_funnels"),
    path("analytics/retention/", funnel_views.analytics_retention, name="analytics_retention"),
]
