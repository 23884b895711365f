from django.urls import path

from content import media_urls, views

urlpatterns = [
    path("content/", views.template_list, name="content_home"),
    path("content/templates/", views.template_list, name="content_templates"),
    path("content/templates/new", views.template_new, name="content_template_new"),
    path("content/templates/<int:template_id>/", views.template_edit, name="content_template_edit"),
    path(
        "content/templates/<int:template_id>/preview",
        views.template_preview,
        name="content_template_preview",
    ),
    path(
        "content/templates/<int:template_id>/versions",
        views.template_versions,
        name="content_template_versions",
    ),
    path(
        "content/templates/<int:template_id>/versions/<int:number>/restore",
        views.template_restore,
        name="content_template_restore",
    ),
    path(
        "content/templates/<int:template_id>/settings",
        views.template_settings,
        name="content_template_settings",
    ),
    path(
        "content/templates/<int:template_id>/duplicate",
        views.template_duplicate,
        name="content_template_duplicate",
    ),
    path(
        "content/templates/<int:template_id>/archive",
        views.template_archive,
        name="content_template_archive",
    ),
    path(
        "content/templates/<int:template_id>/delete",
        views.template_delete,
        name="content_template_delete",
    ),
    path(
        "content/templates/<int:template_id>/test-send",
        views.template_test_send,
        name="content_template_test_send",
    ),
    path("content/profiles", views.profile_picker, name="content_profile_picker"),
    path("content/media/", views.asset_library, name="content_assets"),
    path("content/media/upload", views.asset_upload, name="content_asset_upload"),
    path("content/media/folders/new", views.asset_folder_create, name="content_folder_new"),
    path("content/media/<int:asset_id>/", views.asset_detail, name="content_asset_detail"),
    path("content/media/<int:asset_id>/card", views.asset_card, name="content_asset_card"),
    path("content/media/<int:asset_id>/delete", views.asset_delete, name="content_asset_delete"),
    *media_urls.workspace_urlpatterns,
]
