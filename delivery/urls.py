from django.urls import path

from delivery import views

urlpatterns = [
    path("delivery/outbox/", views.outbox, name="delivery_outbox"),
]
