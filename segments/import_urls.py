from django.urls import path

from segments import import_views

urlpatterns = [
    path("profiles/imports/", import_views.import_list, name="import_list"),
    path("profiles/imports/<int:import_id>/", import_views.import_detail, name="import_detail"),
]
