from django.urls import path

from segments import segment_views, views

urlpatterns = [
    path("segments/", segment_views.segment_list, name="segment_list"),
    path("segments/new", segment_views.segment_new, name="segment_new"),
    path("segments/new-static", segment_views.segment_static_new, name="segment_static_new"),
    path("segments/builder", segment_views.segment_builder, name="segment_builder"),
    path("segments/<int:segment_id>/", segment_views.segment_detail, name="segment_detail"),
    path("segments/<int:segment_id>/edit", segment_views.segment_edit, name="segment_edit"),
    path("segments/<int:segment_id>/export", segment_views.segment_export, name="segment_export"),
    path(
        "segments/<int:segment_id>/snapshot",
        segment_views.segment_snapshot,
        name="segment_snapshot",
    ),
    path("segments/<int:segment_id>/delete", segment_views.segment_delete, name="segment_delete"),
    path("profiles/", views.profile_list, name="profile_list"),
    path("profiles/quarantine/", views.data_quality, name="data_quality"),
    path("profiles/<int:profile_id>/", views.profile_detail, name="profile_detail"),
    path("profiles/<int:profile_id>/export", views.profile_export, name="profile_export"),
    path("profiles/<int:profile_id>/erase", views.profile_erase, name="profile_erase"),
]
