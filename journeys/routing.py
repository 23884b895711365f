from django.urls import path

from journeys.consumers import JourneyLiveConsumer

websocket_urlpatterns = [
    path("ws/journeys/<int:journey_id>/", JourneyLiveConsumer.as_asgi()),
]
