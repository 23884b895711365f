from django.urls import path

from analytics.consumers import WorkspaceMetricsConsumer

websocket_urlpatterns = [
    path("ws/analytics/<slug:workspace_slug>/", WorkspaceMetricsConsumer.as_asgi()),
]
