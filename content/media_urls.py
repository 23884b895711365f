from django.urls import path

from content import media_views

# Under /w/<slug>/ (members only).
workspace_urlpatterns = [
    path("content/assets/<int:asset_id>/file", media_views.asset_file, name="content_asset_file"),
    path(
        "content/assets/<int:asset_id>/thumbnail",
        media_views.asset_thumbnail,
        name="content_asset_thumbnail",
    ),
]

# At the root: the public copies of assets used in messages (local storage).
public_urlpatterns = [
    path("media/public/<str:token>/<str:filename>", media_views.media_public, name="media_public"),
]
