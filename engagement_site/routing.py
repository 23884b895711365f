"""Websocket routes. Each app contributes its own (journeys: live node numbers;
analytics: the live overview)."""

from analytics.routing import websocket_urlpatterns as analytics_routes
from journeys.routing import websocket_urlpatterns as journey_routes

websocket_urlpatterns: list = [*journey_routes, *analytics_routes]
