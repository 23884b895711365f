from django.urls import include, path

from delivery import views

urlpatterns = [
    path("delivery/outbox/", views.outbox, name="delivery_outbox"),
    path("", include("delivery.console_urls")),
]
