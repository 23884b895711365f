"""REST API routes of the content app (assets, folders, templates)."""

from django.urls import path

from content import api

urlpatterns = [
    path("assets/", api.AssetListApi.as_view(), name="api_assets"),
    path("assets/<int:asset_id>/", api.AssetApi.as_view(), name="api_asset"),
    path("asset-folders/", api.FolderListApi.as_view(), name="api_asset_folders"),
    path("asset-folders/<int:folder_id>/", api.FolderApi.as_view(), name="api_asset_folder"),
    path("templates/", api.TemplateListApi.as_view(), name="api_templates"),
    path("templates/channels", api.ChannelFieldsApi.as_view(), name="api_template_channels"),
    path("templates/<int:template_id>/", api.TemplateApi.as_view(), name="api_template"),
    path(
        "templates/<int:template_id>/archive",
        api.TemplateArchiveApi.as_view(),
        name="api_template_archive",
    ),
    path(
        "templates/<int:template_id>/unarchive",
        api.TemplateUnarchiveApi.as_view(),
        name="api_template_unarchive",
    ),
    path(
        "templates/<int:template_id>/render",
        api.TemplateRenderApi.as_view(),
        name="api_template_render",
    ),
    path(
        "templates/<int:template_id>/test-send",
        api.TemplateTestSendApi.as_view(),
        name="api_template_test_send",
    ),
    path(
        "templates/<int:template_id>/versions/",
        api.TemplateVersionListApi.as_view(),
        name="api_template_versions",
    ),
    path(
        "templates/<int:template_id>/versions/<int:number>",
        api.TemplateVersionApi.as_view(),
        name="api_template_version",
    ),
    path(
        "templates/<int:template_id>/versions/<int:number>/restore",
        api.TemplateRestoreApi.as_view(),
        name="api_template_restore",
    ),
    path(
        "templates/<int:template_id>/diff", api.TemplateDiffApi.as_view(), name="api_template_diff"
    ),
]
