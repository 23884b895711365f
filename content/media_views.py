"""Serving media files: private originals and thumbnails to members of the workspace,
and the public copies messages link to (for local storage; S3 serves its own)."""

from __future__ import annotations

import mimetypes

from django.core.files.storage import storages
from django.http import FileResponse, Http404, HttpRequest
from django.views.decorators.http import require_GET

from content import selectors
from content.models import Asset
from engagement_site.workspaces.access import workspace_view

# Files are shown, never run: no scripts even for an SVG opened directly.
SANDBOX = (
    "default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; sandbox"
)


def _file_response(
    storage, name: str, content_type: str, *, cache: str, filename: str = ""
) -> FileResponse:
    try:
        handle = storage.open(name, "rb")
    except FileNotFoundError:
        raise Http404("The file is gone.") from None
    response = FileResponse(handle, content_type=content_type)
    response["Content-Security-Policy"] = SANDBOX
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = cache
    if filename:
        response["Content-Disposition"] = f"inline; filename*=UTF-8''{_quote(filename)}"
    return response


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


@workspace_view("content.view")
@require_GET
def asset_file(request: HttpRequest, asset_id: int) -> FileResponse:
    asset = selectors.asset_get(workspace=request.workspace, asset_id=asset_id)
    return _file_response(
        storages["assets"],
        asset.file.name,
        asset.mime_type,
        cache="private, max-age=3600",
        filename=asset.name,
    )


@workspace_view("content.view")
@require_GET
def asset_thumbnail(request: HttpRequest, asset_id: int) -> FileResponse:
    asset = selectors.asset_get(workspace=request.workspace, asset_id=asset_id)
    if not asset.thumbnail:
        raise Http404("This asset has no thumbnail (yet).")
    return _file_response(
        storages["assets"], asset.thumbnail.name, "image/webp", cache="private, max-age=86400"
    )


@require_GET
def media_public(request: HttpRequest, token: str, filename: str) -> FileResponse:
    """A public copy, at the address messages use. Only assets a template made public
    are served; everything else is 404, whether or not a file exists."""
    asset = (
        Asset.objects.filter(public_token=token)
        .exclude(public_file="")
        .only("public_file", "mime_type")
        .first()
    )
    if asset is None or asset.public_file.name != f"{token}/{filename}":
        raise Http404("No such file.")
    content_type = (
        asset.mime_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
    )
    return _file_response(
        storages["assets_public"],
        asset.public_file.name,
        content_type,
        cache="public, max-age=31536000, immutable",
    )
