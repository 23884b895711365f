"""Checking uploads and reading media: what a file is (from its bytes), whether we take
it, and its metadata and thumbnail.

Nothing here trusts a name or a Content-Type. Raster images are identified by their
signature and then opened by Pillow, whose header gives the size before any pixel is
decoded, so pixel floods are refused before they cost memory; then every frame is
decoded, so a truncated or corrupt file is refused too. Files with bytes after the
image's end, or markup inside a raster file, are polyglots and refused. Videos are
identified by their container header (ISO BMFF `ftyp` with a video brand; EBML with
the DocType "webm"); ffmpeg (the static build from imageio-ffmpeg) reads their
duration and size and makes a poster frame in the processing job, with a timeout.
SVG is parsed with defusedxml and accepted only when every element and attribute is
on an allowlist; it is stored re-serialised from the parsed tree.
"""

from __future__ import annotations

import io
import re
import subprocess
import warnings
from dataclasses import dataclass
from typing import IO

from django.conf import settings
from django.utils.text import slugify
from PIL import Image, ImageOps, ImageSequence

Image.MAX_IMAGE_PIXELS = None  # we check the size ourselves, before decoding

HEAD_BYTES = 8192
TAIL_BYTES = 8192
FFMPEG_TIMEOUT_SECONDS = 60
THUMBNAIL_SIZE = (480, 480)
_MARKUP = re.compile(
    rb"<\s*(script|html|body|iframe|svg|object|embed|\?php)|<\?=|javascript:", re.I
)


class UploadRejected(ValueError):
    """A file we do not take; the message names the file and the reason."""


@dataclass(frozen=True)
class Sniffed:
    kind: str  # "image" or "video"
    mime_type: str
    extension: str
    width: int | None = None
    height: int | None = None
    frame_count: int | None = None
    # For SVG: the sanitized bytes to store instead of the upload.
    replacement: bytes | None = None


IMAGE_TYPES = {
    "PNG": ("image/png", "png"),
    "JPEG": ("image/jpeg", "jpg"),
    "GIF": ("image/gif", "gif"),
    "WEBP": ("image/webp", "webp"),
}
ALLOWED = "PNG, JPEG, GIF, WebP or SVG image, or an MP4 or WebM video"
# ISO base media brands of video files (not HEIF images, not audio-only M4A).
VIDEO_BRANDS = {
    b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"dash",
    b"M4V ", b"M4VH", b"M4VP", b"qt  ", b"3gp4", b"3gp5", b"3gp6", b"3g2a", b"mmp4", b"f4v ",
}  # fmt: skip


# Major brands of ISO media files that are not videos (audio, HEIF/AVIF images, raw photos).
NOT_VIDEO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"heic", b"heix", b"mif1", b"msf1", b"avif", b"crx "}


def human_size(size: float) -> str:
    """12.4 MB, 1.5 KB, 300 bytes (powers of 1024)."""
    if size < 1024:
        return f"{size:.0f} bytes"
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            return f"{size:.1f} {unit}".replace(".0 ", " ")
    return ""


def _what_it_looks_like(head: bytes) -> str:
    signatures = (
        (b"PK\x03\x04", "a ZIP archive"),
        (b"%PDF", "a PDF document"),
        (b"\x7fELF", "a Linux program"),
        (b"MZ", "a Windows program"),
        (b"\x1f\x8b", "a gzip archive"),
        (b"ID3", "an MP3 file"),
        (b"RIFF", "a RIFF file that is not WebP"),
    )
    for signature, name in signatures:
        if head.startswith(signature):
            return f" (they look like {name})"
    text = head[:512].lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<script")):
        return " (they look like an HTML page)"
    if text.startswith((b"<?php",)):
        return " (they look like a PHP script)"
    if head[:4] and all(32 <= byte < 127 or byte in b"\r\n\t" for byte in head[:256]):
        return " (they look like text)"
    return ""


def read_head(file: IO[bytes], size: int = HEAD_BYTES) -> bytes:
    file.seek(0)
    head = file.read(size)
    file.seek(0)
    return head


def sniff_upload(*, name: str, file: IO[bytes], size: int) -> Sniffed:
    """Decide what an upload is and whether we take it. Raises UploadRejected."""
    head = read_head(file)
    if size == 0:
        raise UploadRejected(f"{name}: the file is empty.")
    if (
        head.startswith(b"\x89PNG\r\n\x1a\n")
        or head.startswith(b"\xff\xd8\xff")
        or head[:6]
        in (
            b"GIF87a",
            b"GIF89a",
        )
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
    ):
        _check_size(name, size, settings.ASSET_MAX_IMAGE_BYTES, "images")
        return _sniff_raster(name=name, file=file, size=size)
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _sniff_mp4(name=name, head=head, size=size)
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return _sniff_webm(name=name, head=head, size=size)
    if _looks_like_svg(head):
        _check_size(name, size, settings.ASSET_MAX_IMAGE_BYTES, "images")
        file.seek(0)
        return _sniff_svg(name=name, data=file.read())
    raise UploadRejected(
        f"{name}: the file's bytes are not a {ALLOWED}{_what_it_looks_like(head)}."
    )


def _check_size(name: str, size: int, limit: int, kind: str) -> None:
    if size > limit:
        raise UploadRejected(
            f"{name} is {human_size(size)}; {kind} may be at most {human_size(limit)}."
        )


def _sniff_raster(*, name: str, file: IO[bytes], size: int) -> Sniffed:
    file.seek(0)
    data = file.read()
    if _MARKUP.search(data[:HEAD_BYTES]) or _MARKUP.search(data[-TAIL_BYTES:]):
        raise UploadRejected(f"{name}: the image contains HTML or script markup (a polyglot file).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image_format = image.format
            if image_format not in IMAGE_TYPES:
                raise UploadRejected(
                    f"{name}: {image_format} images are not accepted; use PNG, JPEG, GIF or WebP."
                )
            width, height = image.size
            frames = getattr(image, "n_frames", 1) or 1
            pixels = width * height * frames
            if pixels > settings.ASSET_MAX_PIXELS:
                raise UploadRejected(
                    f"{name}: {width}x{height} pixels{f' x {frames} frames' if frames > 1 else ''} "
                    f"is more than the {settings.ASSET_MAX_PIXELS:,} pixels an image may have "
                    "(a decompression bomb?)."
                )
            for frame in ImageSequence.Iterator(image):
                frame.load()
    except UploadRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadRejected(
            f"{name}: the image is too large to decode (a decompression bomb?)."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise UploadRejected(f"{name}: the image is damaged or truncated ({error}).") from None
    trailing = _bytes_after_end(image_format, data)
    if trailing:
        raise UploadRejected(
            f"{name}: {trailing:,} bytes follow the end of the image (a polyglot file?)."
        )
    mime_type, extension = IMAGE_TYPES[image_format]
    return Sniffed("image", mime_type, extension, width, height, frames)


def _bytes_after_end(image_format: str, data: bytes) -> int:
    """How many bytes follow the format's end marker (0 for a clean file)."""
    if image_format == "PNG":
        end = data.rfind(b"IEND")
        return max(0, len(data) - (end + 8)) if end != -1 else 0
    if image_format == "JPEG":
        end = data.rfind(b"\xff\xd9")
        return max(0, len(data) - (end + 2)) if end != -1 else 0
    if image_format == "GIF":
        stripped = data.rstrip(b"\x00")  # some encoders pad after the trailer
        return 0 if stripped.endswith(b"\x3b") else len(data) - (data.rfind(b"\x3b") + 1)
    if image_format == "WEBP":
        declared = int.from_bytes(data[4:8], "little") + 8
        return max(0, len(data) - declared - (declared % 2))
    return 0


def _sniff_mp4(*, name: str, head: bytes, size: int) -> Sniffed:
    box_size = int.from_bytes(head[:4], "big")
    brands = {head[8:12]} | {
        head[index : index + 4] for index in range(16, min(box_size, len(head)), 4)
    }
    major = head[8:12]
    if box_size < 16 or box_size > 4096 or major in NOT_VIDEO_BRANDS or not (brands & VIDEO_BRANDS):
        raise UploadRejected(
            f"{name}: the file is an ISO media file but not an MP4 video we accept."
        )
    _check_size(name, size, settings.ASSET_MAX_VIDEO_BYTES, "videos")
    return Sniffed("video", "video/mp4", "mp4")


def _sniff_webm(*, name: str, head: bytes, size: int) -> Sniffed:
    # The EBML header holds DocType (ID 0x4282) with the value "webm" (Matroska is "matroska").
    position = head.find(b"\x42\x82", 4, 64)
    if position == -1 or b"webm" not in head[position : position + 8]:
        raise UploadRejected(f"{name}: the file is a Matroska container but not a WebM video.")
    _check_size(name, size, settings.ASSET_MAX_VIDEO_BYTES, "videos")
    return Sniffed("video", "video/webm", "webm")


# --------------------------------------------------------------------------- SVG

_SVG_NS = "http://www.w3.org/2000/svg"
_XLINK_NS = "http://www.w3.org/1999/xlink"
SVG_ELEMENTS = frozenset(
    [
        "svg",
        "g",
        "defs",
        "symbol",
        "use",
        "title",
        "desc",
        "path",
        "rect",
        "circle",
        "ellipse",
        "line",
        "polyline",
        "polygon",
        "text",
        "tspan",
        "linearGradient",
        "radialGradient",
        "stop",
        "clipPath",
        "mask",
        "pattern",
        "filter",
        "feGaussianBlur",
        "feOffset",
        "feBlend",
        "feColorMatrix",
        "feFlood",
        "feComposite",
        "feMerge",
        "feMergeNode",
        "image",
    ]
)
SVG_ATTRIBUTES = frozenset(
    [
        "id",
        "class",
        "width",
        "height",
        "viewBox",
        "preserveAspectRatio",
        "x",
        "y",
        "x1",
        "x2",
        "y1",
        "y2",
        "cx",
        "cy",
        "r",
        "rx",
        "ry",
        "d",
        "points",
        "fill",
        "fill-opacity",
        "fill-rule",
        "stroke",
        "stroke-width",
        "stroke-linecap",
        "stroke-linejoin",
        "stroke-dasharray",
        "stroke-dashoffset",
        "stroke-opacity",
        "stroke-miterlimit",
        "opacity",
        "transform",
        "offset",
        "stop-color",
        "stop-opacity",
        "gradientUnits",
        "gradientTransform",
        "spreadMethod",
        "fx",
        "fy",
        "clip-path",
        "clip-rule",
        "mask",
        "font-family",
        "font-size",
        "font-weight",
        "font-style",
        "text-anchor",
        "dominant-baseline",
        "letter-spacing",
        "dx",
        "dy",
        "patternUnits",
        "patternTransform",
        "patternContentUnits",
        "maskUnits",
        "clipPathUnits",
        "stdDeviation",
        "in",
        "in2",
        "result",
        "mode",
        "values",
        "type",
        "operator",
        "k1",
        "k2",
        "k3",
        "k4",
        "flood-color",
        "flood-opacity",
        "filterUnits",
        "version",
        "href",
        "xml:space",
        "display",
        "visibility",
        "color",
        "style",
    ]
)


def _looks_like_svg(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith((b"<?xml", b"<svg", b"<!--", b"<!doctype svg")) and b"<svg" in text


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if tag.startswith("{") else tag


def _sniff_svg(*, name: str, data: bytes) -> Sniffed:
    from xml.etree import ElementTree

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring

    if b"<!doctype" in data.lower() or b"<!entity" in data.lower():
        raise UploadRejected(f"SVG refused: {name} declares a DOCTYPE or entities.")
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, ElementTree.ParseError) as error:
        raise UploadRejected(f"SVG refused: {name} is not well-formed XML ({error}).") from None
    if _local(root.tag) != "svg":
        raise UploadRejected(
            f"SVG refused: {name}'s root element is <{_local(root.tag)}>, not <svg>."
        )
    for element in root.iter():
        tag = _local(element.tag)
        if tag not in SVG_ELEMENTS:
            raise UploadRejected(f"SVG refused: {name} contains a <{tag}> element.")
        for attribute, value in element.attrib.items():
            local = _local(attribute)
            if local.lower().startswith("on"):
                raise UploadRejected(
                    f"SVG refused: {name} has an event handler attribute ({local})."
                )
            if (
                local not in SVG_ATTRIBUTES
                and attribute != "{http://www.w3.org/XML/1998/namespace}space"
            ):
                raise UploadRejected(
                    f"SVG refused: {name} has the attribute {local!r}, which is not allowed."
                )
            lowered = re.sub(r"\s", "", value).lower()
            if (
                local == "href"
                and not lowered.startswith("#")
                and not lowered.startswith("data:image/")
            ):
                raise UploadRejected(
                    f"SVG refused: {name} links to {value[:60]!r}; only links inside the file are allowed."
                )
            if (
                "javascript:" in lowered
                or "expression(" in lowered
                or "url(http" in lowered
                or "@import" in lowered
            ):
                raise UploadRejected(
                    f"SVG refused: {name} has script or external content in {local!r}."
                )
    ElementTree.register_namespace("", _SVG_NS)
    ElementTree.register_namespace("xlink", _XLINK_NS)
    cleaned = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    width = _svg_length(root.get("width"))
    height = _svg_length(root.get("height"))
    return Sniffed("image", "image/svg+xml", "svg", width, height, 1, replacement=cleaned)


def _svg_length(value: str | None) -> int | None:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(px)?\s*", value or "")
    return round(float(match.group(1))) if match else None


# --------------------------------------------------------------------------- metadata, thumbnails


@dataclass(frozen=True)
class MediaInfo:
    width: int | None
    height: int | None
    frame_count: int | None
    duration_ms: int | None
    thumbnail: bytes | None  # WebP


def image_info(data: bytes, mime_type: str) -> MediaInfo:
    if mime_type == "image/svg+xml":
        return MediaInfo(None, None, 1, None, None)
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        frames = getattr(image, "n_frames", 1) or 1
        duration = None
        if frames > 1:
            total = 0
            for frame in ImageSequence.Iterator(image):
                total += int(frame.info.get("duration", 0) or 0)
            duration = total or None
            image.seek(0)
        first = ImageOps.exif_transpose(image.copy())
        if first.mode not in ("RGB", "RGBA"):
            first = first.convert("RGBA")
        first.thumbnail(THUMBNAIL_SIZE)
        buffer = io.BytesIO()
        first.save(buffer, format="WEBP", quality=82)
    return MediaInfo(width, height, frames, duration, buffer.getvalue())


_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_VIDEO_SIZE = re.compile(r"Stream #\S+.*?: Video: .*?(\d{2,5})x(\d{2,5})")


def video_info(path: str) -> MediaInfo:
    """Duration, size and a poster frame from ffmpeg; what it cannot read stays None."""
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    probe = subprocess.run(
        [ffmpeg, "-nostdin", "-hide_banner", "-i", path],
        capture_output=True,
        timeout=FFMPEG_TIMEOUT_SECONDS,
        check=False,
    )
    output = probe.stderr.decode("utf-8", "replace")
    duration_ms = width = height = None
    match = _DURATION.search(output)
    if match:
        hours, minutes, seconds = match.groups()
        duration_ms = round((int(hours) * 3600 + int(minutes) * 60 + float(seconds)) * 1000)
    match = _VIDEO_SIZE.search(output)
    if match:
        width, height = int(match.group(1)), int(match.group(2))
    at = "1" if duration_ms and duration_ms > 2000 else "0"
    poster = subprocess.run(
        [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-ss", at, "-i", path,
         "-frames:v", "1", "-vf", "scale='min(480,iw)':-2", "-f", "image2pipe", "-vcodec", "png", "-"],
        capture_output=True,
        timeout=FFMPEG_TIMEOUT_SECONDS,
        check=False,
    )  # fmt: skip
    thumbnail = None
    if poster.returncode == 0 and poster.stdout:
        with Image.open(io.BytesIO(poster.stdout)) as frame:
            frame = frame.convert("RGB")
            frame.thumbnail(THUMBNAIL_SIZE)
            buffer = io.BytesIO()
            frame.save(buffer, format="WEBP", quality=80)
            thumbnail = buffer.getvalue()
    return MediaInfo(width, height, None, duration_ms, thumbnail)


# --------------------------------------------------------------------------- addresses


def public_file_name(asset) -> str:
    """Where the public copy lives: an unguessable token and a readable name."""
    stem, _, _ = asset.name.rpartition(".")
    slug = slugify(stem or asset.name)[:60] or "file"
    extension = asset.file.name.rsplit(".", 1)[-1] if "." in asset.file.name else "bin"
    return f"{asset.public_token}/{slug}.{extension}"


def asset_public_url(asset) -> str:
    """The absolute address messages use. Known before the copy exists (templates embed
    it while being written; saving them makes it public)."""
    from django.core.files.storage import storages

    url = storages["assets_public"].url(public_file_name(asset))
    if url.startswith("/"):
        return settings.PUBLIC_URL.rstrip("/") + url
    return url
