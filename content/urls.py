from django.urls import path

from content import views

urlpatterns = [
    path("content/", views.content_home, name="content_home"),
]
