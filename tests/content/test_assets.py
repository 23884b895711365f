"""Uploads: every accepted type with the metadata the job reads, every refusal with a
message that names it and nothing stored, publication on use, deletion, serving and
tenancy."""

from __future__ import annotations

from pathlib import Path

import django_rq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rq import SimpleWorker

from content import services
from content.assets import AssetInUse, asset_delete, asset_upload
from content.media import UploadRejected, human_size
from content.models import Asset
from engagement_site.workspaces.models import AuditLog
from engagement_site.workspaces.roles import Role
from engagement_site.workspaces.services import AuditContext
from tests.conftest import logged_in
from tests.content import samples

pytestmark = pytest.mark.django_db(transaction=True)

EDITOR = AuditContext.system("test editor")


@pytest.fixture
def _media(settings) -> Path:
    """The session's throw-away MEDIA_ROOT (tests/bootstrap.py); storages are resolved
    once, so tests compare what is in it before and after instead of emptying it."""
    return Path(settings.MEDIA_ROOT)


def _files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def _upload(workspace, name: str, data: bytes, **kwargs) -> Asset:
    return asset_upload(
        workspace=workspace,
        uploaded_file=SimpleUploadedFile(name, data, content_type="application/octet-stream"),
        context=EDITOR,
        **kwargs,
    )


def _run_jobs() -> None:
    queue = django_rq.get_queue("default")
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


@pytest.mark.parametrize(
    ("name", "make", "kind", "mime_type", "size", "frames", "duration_ms"),
    [
        ("photo.png", samples.png, "image", "image/png", (64, 48), 1, None),
        ("photo.jpeg", samples.jpeg, "image", "image/jpeg", (80, 60), 1, None),
        ("loop.gif", samples.animated_gif, "image", "image/gif", (30, 20), 3, 300),
        ("photo.webp", samples.webp, "image", "image/webp", (50, 40), 1, None),
        ("clip.mp4", samples.mp4, "video", "video/mp4", (320, 240), None, 3000),
        ("clip.webm", samples.webm, "video", "video/webm", (320, 240), None, 3000),
    ],
)
def test_each_allowed_type_is_accepted_with_its_metadata(
    workspace, owner, _media, name, make, kind, mime_type, size, frames, duration_ms
):
    data = make()
    asset = _upload(workspace, name, data, tags=["Spring ", "spring", "promo"], user=owner)
    assert (asset.kind, asset.mime_type, asset.status, asset.size_bytes) == (
        kind,
        mime_type,
        "processing",
        len(data),
    )
    assert asset.tags == ["spring", "promo"]
    assert asset.file.name.startswith(f"{workspace.pk}/") and name not in asset.file.name
    _run_jobs()
    asset.refresh_from_db()
    assert (asset.status, asset.progress, asset.error) == ("ready", 100, "")
    assert (asset.width, asset.height) == size
    assert asset.frame_count == frames
    assert asset.duration_ms == duration_ms
    import hashlib

    assert asset.checksum_sha256 == hashlib.sha256(data).hexdigest()
    assert asset.thumbnail.name.endswith(".thumb.webp")
    assert (_media / "assets" / asset.thumbnail.name).read_bytes()[8:12] == b"WEBP"
    assert asset.uploaded_by == owner
    row = AuditLog.objects.get(workspace=workspace, action="asset.upload")
    assert row.changes == {"name": name, "mime_type": mime_type, "size_bytes": len(data)}


def test_the_type_comes_from_the_bytes_not_the_name(workspace):
    asset = _upload(workspace, "actually-a-png.jpg", samples.png())
    assert asset.mime_type == "image/png"
    assert asset.file.name.endswith(".png")


def test_a_clean_svg_is_accepted_and_stored_reserialised(workspace, _media):
    asset = _upload(workspace, "logo.svg", samples.CLEAN_SVG)
    stored = (_media / "assets" / asset.file.name).read_bytes()
    assert (asset.mime_type, asset.width, asset.height) == ("image/svg+xml", 24, 16)
    assert stored.startswith(b"<?xml") and b"<rect" in stored and b'fill="#5a52e0"' in stored


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("archive.png", b"PK\x03\x04" + b"\x00" * 200, "archive.png: the file's bytes are not a PNG, JPEG, GIF, WebP or SVG image, or an MP4 or WebM video (they look like a ZIP archive)."),
        ("page.png", b"<!doctype html><html><script>alert(1)</script></html>", "page.png: the file's bytes are not a PNG, JPEG, GIF, WebP or SVG image, or an MP4 or WebM video (they look like an HTML page)."),
        ("empty.png", b"", "empty.png: the file is empty."),
        ("bad.svg", samples.SVG_WITH_SCRIPT, "SVG refused: bad.svg contains a <script> element."),
        ("onload.svg", samples.SVG_WITH_ONLOAD, "SVG refused: onload.svg has an event handler attribute (onload)."),
        ("flood.png", samples.pixel_flood_png(), "flood.png: 20000x20000 pixels is more than the 50,000,000 pixels an image may have (a decompression bomb?)."),
        ("polyglot.gif", samples.animated_gif() + b"<script>alert(document.cookie)</script>", "polyglot.gif: the image contains HTML or script markup (a polyglot file)."),
        ("appended.png", samples.png() + b"PK\x03\x04hidden zip", "appended.png: 14 bytes follow the end of the image (a polyglot file?)."),
        ("truncated.jpg", samples.jpeg()[:300], None),
        ("audio.mp4", b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A mp42", "audio.mp4: the file is an ISO media file but not an MP4 video we accept."),
    ],
)  # fmt: skip
def test_refused_uploads_name_the_problem_and_store_nothing(workspace, _media, name, data, message):
    before = _files(_media)
    with pytest.raises(UploadRejected) as caught:
        _upload(workspace, name, data)
    if message is None:
        assert str(caught.value).startswith(f"{name}: the image is damaged or truncated")
    else:
        assert str(caught.value) == message
    assert not Asset.objects.exists()
    assert _files(_media) == before
    assert not AuditLog.objects.filter(action="asset.upload").exists()


def test_oversized_files_are_refused_per_kind(workspace, settings, _media):
    settings.ASSET_MAX_IMAGE_BYTES = 1024
    before = _files(_media)
    data = samples.jpeg(400, 400)
    with pytest.raises(UploadRejected) as caught:
        _upload(workspace, "big.jpg", data)
    assert str(caught.value) == f"big.jpg is {human_size(len(data))}; images may be at most 1 KB."
    assert not Asset.objects.exists() and _files(_media) == before


def test_the_workspace_quota_is_enforced(workspace, settings, _media):
    first = samples.png()
    settings.ASSET_WORKSPACE_QUOTA_BYTES = len(first) + 100
    before = _files(_media)
    _upload(workspace, "one.png", first)
    with pytest.raises(
        UploadRejected, match=r"^two.png: the workspace's media would take .*over its quota"
    ):
        _upload(workspace, "two.png", samples.png())
    assert Asset.objects.count() == 1
    assert len(_files(_media) - before) == 1


def test_a_template_using_the_asset_makes_it_public_and_blocks_its_deletion(
    workspace, owner, _media, client
):
    before = _files(_media)
    asset = _upload(workspace, "Hero Image.png", samples.png())
    _run_jobs()
    asset.refresh_from_db()
    public_path = f"/media/public/{asset.public_token}/hero-image.png"
    assert asset.public_url.endswith(public_path)
    assert client.get(public_path).status_code == 404  # not used yet: not public

    template = services.template_create(
        workspace=workspace,
        name="Hero",
        channel="email",
        content={"default": {"subject": "Hi", "html": f'<img src="{asset.public_url}">'}},
        context=EDITOR,
    )
    asset.refresh_from_db()
    assert asset.public_file.name == f"{asset.public_token}/hero-image.png"
    response = client.get(public_path)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content) == samples.png()

    with pytest.raises(AssetInUse, match=r"Hero Image\.png is used by Hero"):
        asset_delete(asset=asset, context=EDITOR)
    assert Asset.objects.filter(pk=asset.pk).exists()

    # Once no template references it, deletion removes every file.
    services.template_save(
        template=template,
        content={"default": {"subject": "Hi", "html": "<p>no image</p>"}},
        context=EDITOR,
    )
    asset_delete(asset=asset, context=EDITOR)
    assert not Asset.objects.exists()
    assert _files(_media) == before
    assert client.get(public_path).status_code == 404


def test_force_deletes_an_asset_in_use_and_says_so_in_the_audit_log(workspace):
    asset = _upload(workspace, "x.png", samples.png())
    services.template_create(
        workspace=workspace, name="Uses it", channel="in_app",
        content={"default": {"title": "T", "image_url": asset.public_url}}, context=EDITOR,
    )  # fmt: skip
    asset_delete(asset=asset, context=EDITOR, force=True)
    assert AuditLog.objects.get(action="asset.delete").changes == {
        "name": "x.png",
        "forced": True,
        "used_by": ["Uses it"],
    }


def test_originals_are_for_members_only_and_other_workspaces_get_404(
    workspace, other_workspace, owner, outsider, make_member
):
    asset = _upload(workspace, "x.png", samples.png())
    _run_jobs()
    file_url = reverse(
        "content_asset_file", kwargs={"workspace_slug": workspace.slug, "asset_id": asset.pk}
    )
    response = logged_in(make_member(Role.VIEWER)).get(file_url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == samples.png()
    assert response["Content-Security-Policy"].endswith("sandbox")
    assert logged_in(outsider).get(file_url).status_code == 404
    foreign = reverse(
        "content_asset_thumbnail",
        kwargs={"workspace_slug": other_workspace.slug, "asset_id": asset.pk},
    )
    assert logged_in(outsider).get(foreign).status_code == 404


def test_upload_page_answers_json_with_the_card_or_the_reason(
    workspace, owner, make_member, _media
):
    url = reverse("content_asset_upload", kwargs={"workspace_slug": workspace.slug})
    client = logged_in(owner)
    accepted = client.post(url, {"file": SimpleUploadedFile("a.png", samples.png())})
    assert accepted.status_code == 201
    assert accepted.json()["name"] == "a.png"
    assert 'class="asset-card' in accepted.json()["card"]
    refused = client.post(url, {"file": SimpleUploadedFile("b.png", b"GIF89a not really")})
    assert refused.status_code == 400
    assert refused.json()["error"].startswith("b.png: the image is damaged or truncated")
    marketer = logged_in(make_member(Role.MARKETER))
    assert (
        marketer.post(url, {"file": SimpleUploadedFile("c.png", samples.png())}).status_code == 403
    )
    assert list(Asset.objects.values_list("name", flat=True)) == ["a.png"]


def test_a_failed_processing_marks_the_asset_failed_with_the_reason(workspace, _media):
    asset = _upload(workspace, "x.png", samples.png())
    (_media / "assets" / asset.file.name).unlink()
    _run_jobs()
    asset.refresh_from_db()
    assert asset.status == "failed"
    assert asset.error.startswith("FileNotFoundError")
