"""Serving media files: private originals and thumbnails to members of the workspace,
and the public copies messages link to (for local storage; S3 serves its own)."""

from __future__ import annotations

import mimetypes
import re

from django.core.files.storage import storages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.http import require_safe

from content import selectors
from content.models import Asset
from engagement_site.workspaces.access import workspace_view

# Files are shown, never run: no scripts even for an SVG opened directly.
SANDBOX = (
    "default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; sandbox"
)


THUMBNAIL_TYPES = {"webp": "image/webp", "svg": "image/svg+xml"}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 64 * 1024


def _file_response(
    storage,
    name: str,
    content_type: str,
    *,
    cache: str,
    filename: str = "",
    range_header: str = "",
) -> HttpResponse:
    """The file, with headers that keep a browser from running it. Answers a single
    byte range (206) when asked: Safari plays a <video> only from ranged responses."""
    try:
        handle = storage.open(name, "rb")
    except FileNotFoundError:
        raise Http404("The file is gone.") from None
    response = _ranged(handle, range_header) if range_header else None
    if response is None:
        response = FileResponse(handle, content_type=content_type)
    else:
        response["Content-Type"] = content_type
    response["Accept-Ranges"] = "bytes"
    response["Content-Security-Policy"] = SANDBOX
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = cache
    if filename:
        response["Content-Disposition"] = f"inline; filename*=UTF-8''{_quote(filename)}"
    return response


def _ranged(handle, range_header: str) -> HttpResponse | None:
    """A 206 (or 416) for one "bytes=start-end" range; None to send the whole file
    (several ranges, or a header we do not understand)."""
    match = _RANGE.match(range_header.strip())
    if match is None or match.groups() == ("", ""):
        return None
    size = handle.size
    first, last = match.groups()
    if first:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    else:  # "bytes=-N": the last N bytes
        start, end = max(0, size - int(last)), size - 1
    if start > end or start >= size:
        handle.close()
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    handle.seek(start)

    def chunks(remaining: int = end - start + 1):
        try:
            while remaining > 0:
                data = handle.read(min(_CHUNK, remaining))
                if not data:
                    break
                remaining -= len(data)
                yield data
        finally:
            handle.close()

    response = StreamingHttpResponse(chunks(), status=206)
    response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Content-Length"] = str(end - start + 1)
    return response


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


@workspace_view("content.view")
@require_safe
def asset_file(request: HttpRequest, asset_id: int) -> HttpResponse:
    asset = selectors.asset_get(workspace=request.workspace, asset_id=asset_id)
    return _file_response(
        storages["assets"],
        asset.file.name,
        asset.mime_type,
        cache="private, max-age=3600",
        filename=asset.name,
        range_header=request.headers.get("Range", ""),
    )


@workspace_view("content.view")
@require_safe
def asset_thumbnail(request: HttpRequest, asset_id: int) -> HttpResponse:
    asset = selectors.asset_get(workspace=request.workspace, asset_id=asset_id)
    if not asset.thumbnail:
        raise Http404("This asset has no thumbnail (yet).")
    extension = asset.thumbnail.name.rsplit(".", 1)[-1]
    return _file_response(
        storages["assets"],
        asset.thumbnail.name,
        THUMBNAIL_TYPES.get(extension, "application/octet-stream"),
        cache="private, max-age=86400",
    )


@require_safe
def media_public(request: HttpRequest, token: str, filename: str) -> HttpResponse:
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
        range_header=request.headers.get("Range", ""),
    )
