"""Uploads: every accepted type with the metadata the job reads, every refusal with a
message that names it and nothing stored, processing (twice, failing, raced by a
delete), publication on use, deletion, serving and tenancy."""

from __future__ import annotations

import hashlib
from pathlib import Path

import django_rq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rq import SimpleWorker

from content import assets as asset_services
from content import media, services
from content.assets import AssetInUse, asset_delete, asset_process, asset_update, asset_upload
from content.media import UploadRejected, human_size
from content.models import Asset
from engagement_site.storage import asset_storages_from_env
from engagement_site.workspaces.models import AuditLog
from engagement_site.workspaces.roles import Role
from engagement_site.workspaces.services import AuditContext
from tests.conftest import logged_in
from tests.content import samples

pytestmark = pytest.mark.django_db(transaction=True)

EDITOR = AuditContext.system("test editor")


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path) -> Path:
    """Each test's own asset storages (private under assets/, public under public/), so
    "nothing stored" is an empty directory."""
    settings.STORAGES = {
        **settings.STORAGES,
        **asset_storages_from_env("local", media_root=tmp_path),
    }
    return tmp_path


def _files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def _upload(workspace, name: str, data: bytes, **kwargs) -> Asset:
    return asset_upload(
        workspace=workspace,
        uploaded_file=SimpleUploadedFile(name, data, content_type="image/png"),
        context=EDITOR,
        **kwargs,
    )


def _run_jobs() -> None:
    queue = django_rq.get_queue("default")
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


def _file_url(workspace, asset, view: str = "content_asset_file") -> str:
    return reverse(view, kwargs={"workspace_slug": workspace.slug, "asset_id": asset.pk})


# --------------------------------------------------------------------------- accepted


@pytest.mark.parametrize(
    ("name", "make", "kind", "mime_type", "size", "frames", "duration_ms"),
    [
        ("photo.png", samples.png, "image", "image/png", (64, 48), 1, None),
        ("photo.jpeg", samples.jpeg, "image", "image/jpeg", (80, 60), 1, None),
        ("upright.jpg", samples.jpeg_turned, "image", "image/jpeg", (60, 80), 1, None),
        ("loop.gif", samples.animated_gif, "image", "image/gif", (30, 20), 3, 300),
        ("photo.webp", samples.webp, "image", "image/webp", (50, 40), 1, None),
        ("clip.mp4", samples.mp4, "video", "video/mp4", (320, 240), None, 3000),
        ("clip.webm", samples.webm, "video", "video/webm", (320, 240), None, 3000),
    ],
)
def test_each_allowed_type_is_accepted_with_its_metadata(
    workspace, owner, media_root, name, make, kind, mime_type, size, frames, duration_ms
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
    stem = asset.file.name.rsplit(".", 1)[0]
    assert asset.file.name.startswith(f"{workspace.pk}/") and name not in asset.file.name
    assert _files(media_root) == {f"assets/{asset.file.name}"}

    _run_jobs()
    asset.refresh_from_db()
    assert (asset.status, asset.progress, asset.error) == ("ready", 100, "")
    assert (asset.width, asset.height) == size
    assert asset.frame_count == frames
    assert asset.duration_ms == duration_ms
    assert asset.checksum_sha256 == hashlib.sha256(data).hexdigest()
    assert asset.thumbnail.name == f"{stem}.thumb.webp"
    assert (media_root / "assets" / asset.thumbnail.name).read_bytes()[8:12] == b"WEBP"
    assert _files(media_root) == {f"assets/{asset.file.name}", f"assets/{asset.thumbnail.name}"}
    assert asset.uploaded_by == owner
    row = AuditLog.objects.get(workspace=workspace, action="asset.upload")
    assert row.changes == {"name": name, "mime_type": mime_type, "size_bytes": len(data)}


def test_the_type_comes_from_the_bytes_not_the_name(workspace):
    asset = _upload(workspace, "actually-a-png.jpg", samples.png())
    assert asset.mime_type == "image/png"
    assert asset.file.name.endswith(".png")


def test_a_clean_svg_is_stored_reserialised_and_is_its_own_thumbnail(workspace, owner, media_root):
    asset = _upload(workspace, "logo.svg", samples.SVG_WITH_VIEWBOX)
    stored = (media_root / "assets" / asset.file.name).read_bytes()
    assert stored.startswith(b"<?xml") and b"<path" in stored and b'fill="url(#g)"' in stored
    assert b"comment" not in stored
    assert (asset.mime_type, asset.size_bytes) == ("image/svg+xml", len(stored))
    assert asset.checksum_sha256 == hashlib.sha256(stored).hexdigest()

    _run_jobs()
    asset.refresh_from_db()
    assert (asset.status, asset.width, asset.height) == ("ready", 120, 30)
    assert asset.thumbnail.name.endswith(".thumb.svg")
    response = logged_in(owner).get(_file_url(workspace, asset, "content_asset_thumbnail"))
    assert response["Content-Type"] == "image/svg+xml"
    assert response["Content-Security-Policy"].endswith("sandbox")
    assert b"".join(response.streaming_content) == stored


def test_an_svg_with_width_and_height_takes_its_size_from_them(workspace):
    asset = _upload(workspace, "logo.svg", samples.CLEAN_SVG)
    assert (asset.mime_type, asset.width, asset.height) == ("image/svg+xml", 24, 16)


# --------------------------------------------------------------------------- refused

_ALLOWED = "PNG, JPEG, GIF, WebP or SVG image, or an MP4 or WebM video"


def _refusals():
    png, gif, jpeg, mp4 = samples.png(), samples.animated_gif(), samples.jpeg(), samples.mp4()
    fake_end = samples.png_chunk(b"IEND", b"")
    return [
        ("archive.png", b"PK\x03\x04" + b"\x00" * 200, f"archive.png: the file's bytes are not a {_ALLOWED} (they look like a ZIP archive)."),
        ("page.png", b"<!doctype html><html><script>alert(1)</script></html>", f"page.png: the file's bytes are not a {_ALLOWED} (they look like an HTML page)."),
        ("empty.png", b"", "empty.png: the file is empty."),
        ("audio.mp4", b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A mp42", "audio.mp4: the file is an ISO media file but not an MP4 video we accept."),
        ("clip.webm", samples.mkv(), "clip.webm: the file is a Matroska container but not a WebM video."),
        # SVG outside the allowlist
        ("bad.svg", samples.SVG_WITH_SCRIPT, "SVG refused: bad.svg contains a <script> element."),
        ("onload.svg", samples.SVG_WITH_ONLOAD, "SVG refused: onload.svg has an event handler attribute (onload)."),
        ("foreign.svg", samples.SVG_WITH_FOREIGN_OBJECT, "SVG refused: foreign.svg contains a <foreignObject> element."),
        ("pixel.svg", samples.SVG_WITH_EXTERNAL_IMAGE, "SVG refused: pixel.svg links to 'https://tracker.example/pixel.png'; only links inside the file are allowed."),
        ("link.svg", samples.SVG_WITH_JAVASCRIPT_LINK, "SVG refused: link.svg links to 'javascript:alert(1)'; only links inside the file are allowed."),
        ("css.svg", samples.SVG_WITH_CSS_URL, "SVG refused: css.svg has script or external content in 'style'."),
        ("laughs.svg", samples.SVG_WITH_ENTITIES, "SVG refused: laughs.svg declares a DOCTYPE or entities."),
        # pixel floods and damaged files
        ("flood.png", samples.pixel_flood_png(), "flood.png: 400,000,000 pixels is more than the 50,000,000 pixels an image may have (a decompression bomb?)."),
        ("truncated.jpg", jpeg[:300], "truncated.jpg: the image is damaged or truncated (it ends before the end of the JPEG image)."),
        ("truncated.png", png[:-20], "truncated.png: the image is damaged or truncated (it ends before the end of the PNG image)."),
        ("short.mp4", mp4[:5000], "short.mp4: the video is damaged or truncated (it ends before the end of the MP4 video)."),
        # polyglots: markup near the start or end, or anything after the format's end
        ("polyglot.gif", gif + b"<script>alert(document.cookie)</script>", "polyglot.gif: the image contains HTML or script markup (a polyglot file)."),
        ("script.gif", gif + b"\nalert(document.cookie);", "script.gif: 24 bytes follow the end of the image (a polyglot file?)."),
        ("appended.png", png + b"PK\x03\x04hidden zip", "appended.png: 14 bytes follow the end of the image (a polyglot file?)."),
        ("fake-end.png", png + b"PK\x03\x04hidden" + fake_end, "fake-end.png: 22 bytes follow the end of the image (a polyglot file?)."),
        ("zip.jpg", jpeg + b"PK\x03\x04 zip comment \xff\xd9", "zip.jpg: 19 bytes follow the end of the image (a polyglot file?)."),
        ("page.mp4", mp4 + b"<html><script>alert(1)</script></html>", "page.mp4: the video contains HTML or script markup (a polyglot file)."),
    ]  # fmt: skip


_REFUSALS = _refusals()


@pytest.mark.parametrize(
    ("name", "data", "message"), _REFUSALS, ids=[name for name, _, _ in _REFUSALS]
)
def test_refused_uploads_name_the_problem_and_store_nothing(
    workspace, media_root, name, data, message
):
    with pytest.raises(UploadRejected) as caught:
        _upload(workspace, name, data)
    assert str(caught.value) == message
    assert not Asset.objects.exists()
    assert _files(media_root) == set()
    assert not AuditLog.objects.filter(action__startswith="asset").exists()
    assert django_rq.get_queue("default").count == 0


def test_pixel_floods_under_pillows_own_limit_are_refused_from_the_header(
    workspace, settings, media_root
):
    settings.ASSET_MAX_PIXELS = 10_000
    _upload(workspace, "one-frame.gif", samples.animated_gif(64, 48, 1))  # 3,072 pixels
    with pytest.raises(UploadRejected) as caught:
        _upload(workspace, "anim.gif", samples.animated_gif(64, 48, 4))  # 12,288 pixels
    assert str(caught.value) == (
        "anim.gif: 64x48 pixels x 4 frames is more than the 10,000 pixels an image may have "
        "(a decompression bomb?)."
    )
    with pytest.raises(UploadRejected) as caught:
        _upload(workspace, "wide.png", samples.png(120, 100))
    assert str(caught.value) == (
        "wide.png: 120x100 pixels is more than the 10,000 pixels an image may have "
        "(a decompression bomb?)."
    )
    assert list(Asset.objects.values_list("name", flat=True)) == ["one-frame.gif"]


def test_oversized_files_are_refused_per_kind(workspace, settings, media_root):
    settings.ASSET_MAX_IMAGE_BYTES = 1024
    data = samples.jpeg(400, 400)
    with pytest.raises(UploadRejected) as caught:
        _upload(workspace, "big.jpg", data)
    assert str(caught.value) == f"big.jpg is {human_size(len(data))}; images may be at most 1 KB."
    settings.ASSET_MAX_VIDEO_BYTES = 2048
    video = samples.webm()
    with pytest.raises(UploadRejected) as caught:
        _upload(workspace, "big.webm", video)
    assert str(caught.value) == f"big.webm is {human_size(len(video))}; videos may be at most 2 KB."
    assert not Asset.objects.exists()
    assert _files(media_root) == set()


def test_the_workspace_quota_is_enforced(workspace, other_workspace, settings, media_root):
    first = samples.png()
    settings.ASSET_WORKSPACE_QUOTA_BYTES = len(first) + 100
    kept = _upload(workspace, "one.png", first)
    with pytest.raises(UploadRejected) as caught:
        _upload(workspace, "two.png", first)
    assert str(caught.value) == (
        f"two.png: the workspace's media would take {human_size(2 * len(first))}, over its "
        f"quota of {human_size(len(first) + 100)} ({human_size(len(first))} used). "
        "Delete unused media first."
    )
    assert list(Asset.objects.filter(workspace=workspace)) == [kept]
    assert _files(media_root) == {f"assets/{kept.file.name}"}
    # Each workspace has its own quota.
    other = _upload(other_workspace, "two.png", first)
    assert other.workspace == other_workspace


# --------------------------------------------------------------------------- processing


def test_processing_twice_leaves_one_thumbnail(workspace, media_root):
    asset = _upload(workspace, "x.png", samples.png())
    asset_process(asset_id=asset.pk)
    first = Asset.objects.get(pk=asset.pk)
    Asset.objects.filter(pk=asset.pk).update(status="processing")  # a retried job
    asset_process(asset_id=asset.pk)
    _run_jobs()  # the job queued by the upload finds it ready
    again = Asset.objects.get(pk=asset.pk)
    assert (again.status, again.thumbnail.name) == ("ready", first.thumbnail.name)
    assert _files(media_root) == {f"assets/{asset.file.name}", f"assets/{first.thumbnail.name}"}


def test_an_asset_deleted_while_processing_leaves_no_thumbnail(workspace, media_root, monkeypatch):
    asset = _upload(workspace, "x.png", samples.png())
    real_image_info = asset_services.image_info

    def deleted_meanwhile(*args, **kwargs):
        Asset.objects.filter(pk=asset.pk).delete()
        return real_image_info(*args, **kwargs)

    monkeypatch.setattr(asset_services, "image_info", deleted_meanwhile)
    assert asset_process(asset_id=asset.pk) is None
    assert _files(media_root) == {f"assets/{asset.file.name}"}


def test_a_video_ffmpeg_cannot_read_in_time_is_ready_without_poster(
    workspace, media_root, monkeypatch, tmp_path
):
    data = samples.mp4()
    asset = _upload(workspace, "clip.mp4", data)
    slow = tmp_path / "slow-ffmpeg"
    slow.write_text("#!/bin/sh\nsleep 5\n")
    slow.chmod(0o755)
    monkeypatch.setattr("imageio_ffmpeg.get_ffmpeg_exe", lambda: str(slow))
    monkeypatch.setattr(media, "FFMPEG_TIMEOUT_SECONDS", 0.2)
    _run_jobs()
    asset.refresh_from_db()
    assert (asset.status, asset.progress, asset.error, asset.thumbnail.name) == (
        "ready",
        100,
        "",
        "",
    )
    assert (asset.width, asset.height, asset.duration_ms) == (None, None, None)


def test_a_failed_processing_marks_the_asset_failed_with_the_reason(workspace, media_root):
    asset = _upload(workspace, "x.png", samples.png())
    (media_root / "assets" / asset.file.name).unlink()
    _run_jobs()
    asset.refresh_from_db()
    assert asset.status == "failed"
    assert asset.error.startswith("FileNotFoundError")
    assert asset.thumbnail.name == ""


def test_the_ffmpeg_report_gives_duration_and_displayed_size():
    report = (
        "  Duration: 00:01:02.50, start: 0.000000, bitrate: 1205 kb/s\n"
        "  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(tv, "
        "bt709, progressive), 1920x1080 [SAR 1:1 DAR 16:9], 30 fps\n"
        "      displaymatrix: rotation of -90.00 degrees\n"
    )
    assert media.ffmpeg_report_parse(report) == (62500, 1080, 1920)
    assert media.ffmpeg_report_parse("Duration: N/A") == (None, None, None)


# --------------------------------------------------------------------------- publication, deletion


def test_a_template_using_the_asset_makes_it_public_and_blocks_its_deletion(
    workspace, owner, media_root, client
):
    asset = _upload(workspace, "Hero Image.png", samples.png())
    _run_jobs()
    asset.refresh_from_db()
    public_path = f"/media/public/{asset.public_token}/hero-image.png"
    assert asset.public_url == f"http://127.0.0.1:8000{public_path}"
    assert client.get(public_path).status_code == 404  # not used yet: not public
    assert _files(media_root) == {f"assets/{asset.file.name}", f"assets/{asset.thumbnail.name}"}

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
    assert response["Content-Security-Policy"].endswith("sandbox")
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    assert b"".join(response.streaming_content) == samples.png()

    with pytest.raises(AssetInUse) as caught:
        asset_delete(asset=asset, context=EDITOR)
    assert str(caught.value) == (
        "Hero Image.png is used by Hero. Remove it from them first, or delete it anyway."
    )
    assert Asset.objects.filter(pk=asset.pk).exists()
    assert not AuditLog.objects.filter(action="asset.delete").exists()

    # Once no template references it, deletion removes every file.
    services.template_save(
        template=template,
        content={"default": {"subject": "Hi", "html": "<p>no image</p>"}},
        context=EDITOR,
    )
    asset_delete(asset=asset, context=EDITOR)
    assert not Asset.objects.exists()
    assert _files(media_root) == set()
    assert client.get(public_path).status_code == 404


def test_renaming_a_published_asset_keeps_its_public_address(workspace, client):
    asset = _upload(workspace, "Hero.png", samples.png())
    address = asset.public_url
    services.template_create(
        workspace=workspace, name="Card", channel="in_app",
        content={"default": {"title": "T", "image_url": address}}, context=EDITOR,
    )  # fmt: skip
    asset.refresh_from_db()
    asset_update(asset=asset, context=EDITOR, name="Banner.png")
    asset.refresh_from_db()
    assert (asset.name, asset.public_url) == ("Banner.png", address)
    assert client.get(address.removeprefix("http://127.0.0.1:8000")).status_code == 200


def test_force_deletes_an_asset_in_use_and_says_so_in_the_audit_log(workspace, media_root):
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
    assert _files(media_root) == set()


# --------------------------------------------------------------------------- serving, tenancy


def test_originals_are_for_members_only_and_other_workspaces_get_404(
    workspace, other_workspace, owner, outsider, make_member
):
    asset = _upload(workspace, "x.png", samples.png())
    _run_jobs()
    file_url = _file_url(workspace, asset)
    response = logged_in(make_member(Role.VIEWER)).get(file_url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == samples.png()
    assert response["Content-Type"] == "image/png"
    assert response["Content-Security-Policy"].endswith("sandbox")
    assert response["Content-Disposition"] == "inline; filename*=UTF-8''x.png"
    assert logged_in(outsider).get(file_url).status_code == 404
    foreign = reverse(
        "content_asset_thumbnail",
        kwargs={"workspace_slug": other_workspace.slug, "asset_id": asset.pk},
    )
    assert logged_in(outsider).get(foreign).status_code == 404
    foreign_file = reverse(
        "content_asset_file",
        kwargs={"workspace_slug": other_workspace.slug, "asset_id": asset.pk},
    )
    assert logged_in(outsider).get(foreign_file).status_code == 404


def test_videos_are_served_in_byte_ranges(workspace, owner):
    data = samples.webm()
    asset = _upload(workspace, "clip.webm", data)
    client = logged_in(owner)
    url = _file_url(workspace, asset)
    response = client.get(url, headers={"Range": "bytes=0-99"})
    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 0-99/{len(data)}"
    assert response["Content-Type"] == "video/webm"
    assert b"".join(response.streaming_content) == data[:100]
    tail = client.get(url, headers={"Range": "bytes=-10"})
    assert (tail.status_code, b"".join(tail.streaming_content)) == (206, data[-10:])
    beyond = client.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert (beyond.status_code, beyond["Content-Range"]) == (416, f"bytes */{len(data)}")
    whole = client.get(url)
    assert (whole.status_code, whole["Accept-Ranges"]) == (200, "bytes")


def test_upload_page_answers_json_with_the_card_or_the_reason(
    workspace, owner, make_member, media_root
):
    url = reverse("content_asset_upload", kwargs={"workspace_slug": workspace.slug})
    client = logged_in(owner)
    accepted = client.post(url, {"file": SimpleUploadedFile("a.png", samples.png())})
    assert accepted.status_code == 201
    assert accepted.json()["name"] == "a.png"
    assert 'class="asset-card' in accepted.json()["card"]
    refused = client.post(url, {"file": SimpleUploadedFile("b.png", b"GIF89a not really")})
    assert refused.status_code == 400
    assert refused.json()["error"] == (
        "b.png: the image is damaged or truncated (an unknown GIF block 0x61 at byte 13)."
    )
    marketer = logged_in(make_member(Role.MARKETER))
    assert (
        marketer.post(url, {"file": SimpleUploadedFile("c.png", samples.png())}).status_code == 403
    )
    assert list(Asset.objects.values_list("name", flat=True)) == ["a.png"]
