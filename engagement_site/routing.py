"""Websocket routes. Each app contributes its own (journeys: live node numbers)."""

from journeys.routing import websocket_urlpatterns as journey_routes

websocket_urlpatterns: list = [*journey_routes]
