from django.urls import path

from segments import views

urlpatterns = [
    path("segments/", views.segment_list, name="segment_list"),
    path("segments/<int:segment_id>/", views.segment_detail, name="segment_detail"),
    path("profiles/", views.profile_list, name="profile_list"),
    path("profiles/quarantine/", views.data_quality, name="data_quality"),
    path("profiles/<int:profile_id>/", views.profile_detail, name="profile_detail"),
    path("profiles/<int:profile_id>/export", views.profile_export, name="profile_export"),
    path("profiles/<int:profile_id>/erase", views.profile_erase, name="profile_erase"),
]
