"""Websocket routes. Each app contributes its own (journeys: live metrics, issue #8)."""

websocket_urlpatterns: list = []
