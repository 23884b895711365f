"""Checking uploads and reading media: what a file is (from its bytes), whether we take
it, and its metadata and thumbnail.

Nothing here trusts a name or a Content-Type. Raster images are identified by their
signature, their structure is walked to its end (PNG chunks to IEND, JPEG segments and
scans to the final end-of-image marker, GIF blocks to the trailer, WebP to the length
its RIFF header declares): a file that ends early is refused as truncated, and one
that goes on after the end is a polyglot and refused, as is a file with markup near its
start or end. Pillow then opens the image, whose header gives the size before any pixel
is decoded, so pixel floods are refused before they cost memory; then every frame is
decoded, so a corrupt file is refused too. Videos are identified by their container
header (ISO BMFF `ftyp` with a video brand; EBML whose DocType is "webm") and their
top-level structure is walked the same way; ffmpeg (the static build from
imageio-ffmpeg) reads their duration and size and makes a poster frame in the
processing job, with a timeout. SVG is parsed with defusedxml and accepted only when
every element and attribute is on an allowlist; it is stored re-serialised from the
parsed tree.
"""

from __future__ import annotations

import io
import logging
import re
import subprocess
import warnings
from dataclasses import dataclass
from typing import IO

import filetype
from django.conf import settings
from django.utils.text import slugify
from PIL import Image, ImageOps

logger = logging.getLogger(__name__)

HEAD_BYTES = 8192
TAIL_BYTES = 8192
FFMPEG_TIMEOUT_SECONDS = 60
THUMBNAIL_SIZE = (480, 480)
_MARKUP = re.compile(
    rb"<\s*(script|html|body|iframe|svg|object|embed|\?php)|<\?=|javascript:", re.I
)
# Top-level boxes (MP4) or elements (WebM) we walk at most; real files have a handful,
# fragmented MP4 a few thousand.
MAX_TOP_LEVEL_ITEMS = 200_000


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


# What the bytes of a refused file look like, by the `filetype` guess of its head.
_LOOKS_LIKE = {
    "application/zip": "a ZIP archive",
    "application/pdf": "a PDF document",
    "application/x-executable": "a Linux program",
    "application/x-msdownload": "a Windows program",
    "application/gzip": "a gzip archive",
    "application/x-rar-compressed": "a RAR archive",
    "application/x-7z-compressed": "a 7-Zip archive",
    "application/x-tar": "a tar archive",
    "application/msword": "a Word document",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "a Word document",
    "application/vnd.ms-excel": "an Excel workbook",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "an Excel workbook",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": (
        "a PowerPoint presentation"
    ),
    "image/tiff": "a TIFF image",
    "image/bmp": "a BMP image",
    "image/x-icon": "an icon file",
    "image/vnd.adobe.photoshop": "a Photoshop document",
    "image/heic": "a HEIC image",
    "image/avif": "an AVIF image",
    "audio/mpeg": "an MP3 file",
    "audio/x-wav": "a WAV file",
    "audio/ogg": "an Ogg file",
    "audio/x-flac": "a FLAC file",
    "video/x-matroska": "a Matroska (MKV) video",
    "video/x-msvideo": "an AVI video",
    "video/x-flv": "a Flash video",
    "video/mpeg": "an MPEG video",
}


def _what_it_looks_like(head: bytes) -> str:
    guess = filetype.guess(head)
    if guess is not None:
        return f" (they look like {_LOOKS_LIKE.get(guess.mime, guess.extension.upper() + ' data')})"
    if head.startswith(b"RIFF"):
        return " (they look like a RIFF file that is not WebP)"
    text = head[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<script")):
        return " (they look like an HTML page)"
    if text.startswith(b"<?php"):
        return " (they look like a PHP script)"
    if text.startswith(b"<?xml"):
        return " (they look like an XML document that is not an SVG image)"
    if head[:4] and all(32 <= byte < 127 or byte in b"\r\n\t" for byte in head[:256]):
        return " (they look like text)"
    return ""


def read_head(file: IO[bytes], size: int = HEAD_BYTES) -> bytes:
    file.seek(0)
    head = file.read(size)
    file.seek(0)
    return head


def sniff_upload(*, name: str, file: IO[bytes], size: int) -> Sniffed:
    """Decide what an upload is and whether we take it. Raises UploadRejected.

    Images are read into memory (at most ASSET_MAX_IMAGE_BYTES, checked first); videos
    are only sampled (their head, tail and top-level structure)."""
    head = read_head(file)
    if size == 0:
        raise UploadRejected(f"{name}: the file is empty.")
    if (
        head.startswith(b"\x89PNG\r\n\x1a\n")
        or head.startswith(b"\xff\xd8\xff")
        or head[:6] in (b"GIF87a", b"GIF89a")
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
    ):
        _check_size(name, size, settings.ASSET_MAX_IMAGE_BYTES, "images")
        return _sniff_raster(name=name, file=file, size=size)
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _sniff_mp4(name=name, file=file, head=head, size=size)
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return _sniff_webm(name=name, file=file, head=head, size=size)
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


def _check_markup(name: str, kind: str, head: bytes, tail: bytes) -> None:
    if _MARKUP.search(head[:HEAD_BYTES]) or _MARKUP.search(tail[-TAIL_BYTES:]):
        raise UploadRejected(
            f"{name}: the {kind} contains HTML or script markup (a polyglot file)."
        )


def _check_end(name: str, kind: str, trailing: bytes, count: int | None = None) -> None:
    """Refuse bytes after the format's end (`trailing`: all of them, or the first ones
    of `count`). Zero padding is harmless (some encoders write it); anything else is a
    second file riding along."""
    count = len(trailing) if count is None else count
    if trailing.strip(b"\x00") or count > len(trailing):
        raise UploadRejected(
            f"{name}: {count:,} bytes follow the end of the {kind} (a polyglot file?)."
        )


class _Truncated(Exception):
    """The structure ends before the file's format says it should."""


class _Damaged(Exception):
    """The structure is not what the format allows (the message says where)."""


def _damaged_or_truncated(name: str, kind: str, label: str, error: Exception) -> UploadRejected:
    if isinstance(error, _Truncated):
        detail = f"it ends before the end of the {label} {kind}"
    else:
        detail = str(error)
    return UploadRejected(f"{name}: the {kind} is damaged or truncated ({detail}).")


# --------------------------------------------------------------------------- raster images


def _sniff_raster(*, name: str, file: IO[bytes], size: int) -> Sniffed:
    file.seek(0)
    data = file.read()
    file.seek(0)
    _check_markup(name, "image", data, data)
    image_format, label, find_end = _RASTER_FORMATS[_raster_format(data)]
    try:
        end = find_end(data)
    except (_Truncated, _Damaged) as error:
        raise _damaged_or_truncated(name, "image", label, error) from None
    _check_end(name, "image", data[end:])
    with _open_image(name=name, data=data, image_format=image_format) as image:
        width, height = image.size
        frames = getattr(image, "n_frames", 1) or 1
        _decode_all_frames(name=name, image=image)
    mime_type, extension = IMAGE_TYPES[image_format]
    return Sniffed("image", mime_type, extension, width, height, frames)


def _raster_format(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    return "WEBP"


def _png_end(data: bytes) -> int:
    """Offset just after the IEND chunk, walking the chunks by their lengths (an "IEND"
    appended after a payload is not the image's end)."""
    position = 8
    while True:
        if position + 12 > len(data):
            raise _Truncated
        length = int.from_bytes(data[position : position + 4], "big")
        chunk_type = data[position + 4 : position + 8]
        if not chunk_type.isalpha():
            raise _Damaged(f"no PNG chunk where one should start, at byte {position:,}")
        position += 12 + length
        if position > len(data):
            raise _Truncated
        if chunk_type == b"IEND":
            return position


def _jpeg_end(data: bytes) -> int:
    """Offset just after the end-of-image marker of the image, walking the segments by
    their lengths (an EXIF thumbnail's markers are inside one) and the entropy-coded
    data of each scan. Complete JPEGs right after it (the secondary images of MPF files
    that phones write) are part of the file; anything else after it is not."""
    end = _jpeg_image_end(data, 0)
    while data[end : end + 3] == b"\xff\xd8\xff":
        try:
            end = _jpeg_image_end(data, end)
        except (_Truncated, _Damaged):
            break
    return end


def _jpeg_image_end(data: bytes, start: int) -> int:
    size = len(data)
    position = start + 2
    while True:
        if position >= size:
            raise _Truncated
        if data[position] != 0xFF:
            raise _Damaged(f"no JPEG marker where one should be, at byte {position:,}")
        while position < size and data[position] == 0xFF:  # fill bytes
            position += 1
        if position >= size:
            raise _Truncated
        marker = data[position]
        position += 1
        if marker == 0xD9:  # end of image
            return position
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length
            continue
        if position + 2 > size:
            raise _Truncated
        length = int.from_bytes(data[position : position + 2], "big")
        if length < 2:
            raise _Damaged(f"a JPEG segment of impossible length at byte {position:,}")
        position += length
        if position > size:
            raise _Truncated
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next real marker
            while True:
                position = data.find(b"\xff", position)
                if position == -1 or position + 1 >= size:
                    raise _Truncated
                following = data[position + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7:  # stuffed byte, restart
                    position += 2
                elif following == 0xFF:
                    position += 1
                else:
                    break


def _gif_end(data: bytes) -> int:
    """Offset just after the trailer byte (0x3B), walking the blocks."""
    size = len(data)
    if size < 13:
        raise _Truncated
    flags = data[10]
    position = 13 + (3 * 2 ** ((flags & 0x07) + 1) if flags & 0x80 else 0)

    def skip_sub_blocks(position: int) -> int:
        while True:
            if position >= size:
                raise _Truncated
            block_size = data[position]
            position += 1 + block_size
            if block_size == 0:
                return position

    while True:
        if position >= size:
            raise _Truncated
        block = data[position]
        if block == 0x3B:
            return position + 1
        if block == 0x21:  # extension: introducer, label, sub-blocks
            position = skip_sub_blocks(position + 2)
        elif block == 0x2C:  # image descriptor, local colour table, LZW code size, data
            if position + 10 > size:
                raise _Truncated
            image_flags = data[position + 9]
            position += 10 + (3 * 2 ** ((image_flags & 0x07) + 1) if image_flags & 0x80 else 0)
            position = skip_sub_blocks(position + 1)
        else:
            raise _Damaged(f"an unknown GIF block 0x{block:02X} at byte {position:,}")


def _webp_end(data: bytes) -> int:
    declared = int.from_bytes(data[4:8], "little") + 8
    declared += declared % 2  # RIFF pads an odd length
    if declared > len(data) + 1:
        raise _Truncated
    return declared


_RASTER_FORMATS = {
    "PNG": ("PNG", "PNG", _png_end),
    "JPEG": ("JPEG", "JPEG", _jpeg_end),
    "GIF": ("GIF", "GIF", _gif_end),
    "WEBP": ("WEBP", "WebP", _webp_end),
}


def _pixel_limit() -> int:
    # Pillow refuses on its own above MAX_IMAGE_PIXELS (a warning, made an error below).
    limits = [settings.ASSET_MAX_PIXELS]
    if Image.MAX_IMAGE_PIXELS:
        limits.append(Image.MAX_IMAGE_PIXELS)
    return min(limits)


def _too_many_pixels(name: str, description: str) -> UploadRejected:
    return UploadRejected(
        f"{name}: {description} is more than the {_pixel_limit():,} pixels an image may "
        "have (a decompression bomb?)."
    )


def _open_image(*, name: str, data: bytes, image_format: str) -> Image.Image:
    """Open (not decode) an image as the format its signature says, and refuse it when
    width x height x frames is over the limit: nothing has been decoded yet.

    Pillow's own guard stays on (a decompression-bomb warning is turned into an error),
    so a file that reaches Pillow another way than through here is still bounded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[image_format])
            frames = getattr(image, "n_frames", 1) or 1
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        found = re.search(r"\((\d+) pixels\)", str(error))
        pixels = f"{int(found.group(1)):,} pixels" if found else "the image"
        raise _too_many_pixels(name, pixels) from None
    except Exception as error:
        raise UploadRejected(f"{name}: the image is damaged or truncated ({error}).") from None
    width, height = image.size
    if width * height * frames > _pixel_limit():
        image.close()
        frames_text = f" x {frames} frames" if frames > 1 else ""
        raise _too_many_pixels(name, f"{width}x{height} pixels{frames_text}")
    return image


def _decode_all_frames(*, name: str, image: Image.Image) -> None:
    """Decode every frame, so a corrupt image is refused now rather than broken in a
    message. A frame may be larger than the header said: the budget is checked again
    before each frame is decoded."""
    decoded = 0
    try:
        for index in range(getattr(image, "n_frames", 1) or 1):
            image.seek(index)
            width, height = image.size
            decoded += width * height
            if decoded > _pixel_limit():
                raise _too_many_pixels(name, f"{decoded:,} pixels over {index + 1} frames")
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image.load()
    except UploadRejected:
        raise
    except Exception as error:
        raise UploadRejected(f"{name}: the image is damaged or truncated ({error}).") from None


# --------------------------------------------------------------------------- videos


def _sniff_mp4(*, name: str, file: IO[bytes], head: bytes, size: int) -> Sniffed:
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
    _check_video(name=name, file=file, size=size, label="MP4", find_end=_mp4_end)
    return Sniffed("video", "video/mp4", "mp4")


def _sniff_webm(*, name: str, file: IO[bytes], head: bytes, size: int) -> Sniffed:
    if _ebml_doc_type(head) != "webm":
        raise UploadRejected(f"{name}: the file is a Matroska container but not a WebM video.")
    _check_size(name, size, settings.ASSET_MAX_VIDEO_BYTES, "videos")
    _check_video(name=name, file=file, size=size, label="WebM", find_end=_webm_end)
    return Sniffed("video", "video/webm", "webm")


def _check_video(*, name: str, file: IO[bytes], size: int, label: str, find_end) -> None:
    file.seek(0)
    head = file.read(HEAD_BYTES)
    file.seek(max(0, size - TAIL_BYTES))
    _check_markup(name, "video", head, file.read())
    try:
        end = find_end(file, size)
    except (_Truncated, _Damaged) as error:
        raise _damaged_or_truncated(name, "video", label, error) from None
    if end < size:
        file.seek(end)
        _check_end(name, "video", file.read(min(size - end, 1024 * 1024)), size - end)
    file.seek(0)


def _mp4_end(file: IO[bytes], size: int) -> int:
    """Where the last top-level box ends. A box running past the end of the file means
    a truncated upload; a file without a 'moov' box cannot be played."""
    position = 0
    has_movie = False
    for _ in range(MAX_TOP_LEVEL_ITEMS):
        if position >= size:
            break
        file.seek(position)
        header = file.read(16)
        box_type = header[4:8]
        if len(header) < 8 or not all(32 <= byte < 127 for byte in box_type):
            break  # not a box: whatever follows is not part of the video
        box_size = int.from_bytes(header[:4], "big")
        if box_size == 1:  # 64-bit size follows the type
            if len(header) < 16:
                raise _Truncated
            box_size = int.from_bytes(header[8:16], "big")
        elif box_size == 0:  # runs to the end of the file
            box_size = size - position
        if box_size < 8:
            raise _Damaged(f"an MP4 box of impossible size at byte {position:,}")
        if position + box_size > size:
            raise _Truncated
        has_movie = has_movie or box_type == b"moov"
        position += box_size
    else:
        raise _Damaged("too many MP4 boxes")
    if not has_movie:
        raise _Damaged("it has no 'moov' box, so no player can read it")
    return position


def _read_vint(buffer: bytes, position: int, *, keep_marker: bool) -> tuple[int, int, bool]:
    """An EBML variable-length integer: (value, its length, whether it means "unknown")."""
    if position >= len(buffer):
        raise _Truncated
    first = buffer[position]
    length, mask = 1, 0x80
    while length <= 8 and not first & mask:
        mask >>= 1
        length += 1
    if length > 8:
        raise _Damaged(f"an invalid EBML element header at byte {position:,}")
    if position + length > len(buffer):
        raise _Truncated
    value = first if keep_marker else first & (mask - 1)
    for index in range(1, length):
        value = (value << 8) | buffer[position + index]
    unknown = not keep_marker and value == (1 << (7 * length)) - 1
    return value, length, unknown


def _ebml_doc_type(head: bytes) -> str | None:
    """The DocType ("webm", "matroska") of the EBML header at the start of `head`."""
    try:
        _, id_length, _ = _read_vint(head, 0, keep_marker=True)
        header_size, size_length, _ = _read_vint(head, id_length, keep_marker=False)
        position = id_length + size_length
        end = min(len(head), position + header_size)
        while position < end:
            element_id, id_length, _ = _read_vint(head, position, keep_marker=True)
            element_size, size_length, _ = _read_vint(head, position + id_length, keep_marker=False)
            start = position + id_length + size_length
            if element_id == 0x4282:
                return head[start : start + element_size].rstrip(b"\x00").decode("ascii", "replace")
            position = start + element_size
    except (_Truncated, _Damaged):
        return None
    return None


def _webm_end(file: IO[bytes], size: int) -> int:
    """Where the last top-level element (EBML header, Segment) ends. A Segment of
    unknown size (a live recording) runs to the end of the file."""
    position = 0
    for _ in range(MAX_TOP_LEVEL_ITEMS):
        if position >= size:
            return position
        file.seek(position)
        header = file.read(12)
        try:
            _, id_length, _ = _read_vint(header, 0, keep_marker=True)
            element_size, size_length, unknown = _read_vint(header, id_length, keep_marker=False)
        except _Damaged:
            return position  # not an element: whatever follows is not part of the video
        except _Truncated:
            if position + len(header) >= size:
                raise
            return position
        if unknown:
            return size
        position += id_length + size_length + element_size
        if position > size:
            raise _Truncated
    raise _Damaged("too many WebM elements")


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
# An <image> may embed a raster image; an embedded SVG could carry its own script.
_DATA_IMAGE = re.compile(r"data:image/(png|jpeg|gif|webp)[;,]")
_CSS_URL = re.compile(r"url\(\s*['\"]?\s*([^'\")\s]*)", re.I)


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
            _check_svg_attribute(name, tag, attribute, value)
    ElementTree.register_namespace("", _SVG_NS)
    ElementTree.register_namespace("xlink", _XLINK_NS)
    cleaned = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
    width, height = _svg_size(root)
    return Sniffed("image", "image/svg+xml", "svg", width, height, 1, replacement=cleaned)


def _check_svg_attribute(name: str, tag: str, attribute: str, value: str) -> None:
    local = _local(attribute)
    if local.lower().startswith("on"):
        raise UploadRejected(f"SVG refused: {name} has an event handler attribute ({local}).")
    if local not in SVG_ATTRIBUTES and attribute != "{http://www.w3.org/XML/1998/namespace}space":
        raise UploadRejected(
            f"SVG refused: {name} has the attribute {local!r}, which is not allowed."
        )
    lowered = re.sub(r"[\s\x00-\x1f]", "", value).lower()
    if local == "href" and not (
        lowered.startswith("#") or (tag == "image" and _DATA_IMAGE.match(lowered))
    ):
        raise UploadRejected(
            f"SVG refused: {name} links to {value[:60]!r}; only links inside the file are allowed."
        )
    external_url = any(not target.startswith("#") for target in _CSS_URL.findall(lowered))
    if "javascript:" in lowered or "expression(" in lowered or external_url or "@import" in lowered:
        raise UploadRejected(f"SVG refused: {name} has script or external content in {local!r}.")


def _svg_length(value: str | None) -> int | None:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(px)?\s*", value or "")
    return round(float(match.group(1))) if match else None


def _svg_size(root) -> tuple[int | None, int | None]:
    """From width and height in pixels, else from the viewBox."""
    width, height = _svg_length(root.get("width")), _svg_length(root.get("height"))
    if width is not None and height is not None:
        return width, height
    try:
        _, _, box_width, box_height = (float(part) for part in root.get("viewBox", "").split())
    except ValueError:
        return width, height
    return round(box_width), round(box_height)


# --------------------------------------------------------------------------- metadata, thumbnails


@dataclass(frozen=True)
class MediaInfo:
    width: int | None
    height: int | None
    frame_count: int | None
    duration_ms: int | None
    thumbnail: bytes | None
    thumbnail_extension: str = "webp"


def _thumbnail_webp(image: Image.Image) -> bytes:
    """The first frame, upright (EXIF orientation applied), at most 480 x 480, as WebP."""
    image.seek(0)
    first = ImageOps.exif_transpose(image)
    has_alpha = first.mode in ("RGBA", "LA", "PA") or "transparency" in first.info
    first = first.convert("RGBA" if has_alpha else "RGB")
    first.thumbnail(THUMBNAIL_SIZE)
    buffer = io.BytesIO()
    first.save(buffer, format="WEBP", quality=82)
    return buffer.getvalue()


def image_info(data: bytes, mime_type: str, *, name: str = "image") -> MediaInfo:
    """Size as displayed (a quarter-turn EXIF orientation swaps width and height), frame
    count, total duration of an animation, and a WebP thumbnail of the first frame. An
    SVG is its own thumbnail (browsers scale it; it was sanitized on upload).

    Opens through the same pixel-budget check as uploads: raises UploadRejected."""
    if mime_type == "image/svg+xml":
        from defusedxml.ElementTree import fromstring

        width, height = _svg_size(fromstring(data, forbid_dtd=True))
        return MediaInfo(width, height, 1, None, data, thumbnail_extension="svg")
    image_format = next(key for key, (mime, _) in IMAGE_TYPES.items() if mime == mime_type)
    with _open_image(name=name, data=data, image_format=image_format) as image:
        width, height = image.size
        if image.getexif().get(0x0112) in (5, 6, 7, 8):  # stored turned by a quarter
            width, height = height, width
        frames = getattr(image, "n_frames", 1) or 1
        duration = None
        if frames > 1:
            total = 0
            for index in range(frames):
                image.seek(index)
                total += int(image.info.get("duration", 0) or 0)
            duration = total or None
        thumbnail = _thumbnail_webp(image)
    return MediaInfo(width, height, frames, duration, thumbnail)


_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_VIDEO_SIZE = re.compile(r"Stream #\S+.*?: Video: .*?(?<![\w.])(\d{2,5})x(\d{2,5})(?![\w.])")
_ROTATION = re.compile(r"rotation of (-?\d+(?:\.\d+)?) degrees")
# ffmpeg is told the container instead of guessing it from the bytes, and may read
# nothing but the one local file (no playlists pointing elsewhere).
_DEMUXERS = {"video/mp4": "mov", "video/webm": "matroska"}


def ffmpeg_report_parse(report: str) -> tuple[int | None, int | None, int | None]:
    """(duration_ms, width, height) from what `ffmpeg -i` prints; None where absent.
    A video stored turned by a quarter (phones) reports its displayed size."""
    duration_ms = width = height = None
    match = _DURATION.search(report)
    if match:
        hours, minutes, seconds = match.groups()
        duration_ms = round((int(hours) * 3600 + int(minutes) * 60 + float(seconds)) * 1000)
    match = _VIDEO_SIZE.search(report)
    if match:
        width, height = int(match.group(1)), int(match.group(2))
        rotation = _ROTATION.search(report)
        if rotation and round(abs(float(rotation.group(1)))) % 180 == 90:
            width, height = height, width
    return duration_ms, width, height


def video_info(path: str, mime_type: str | None = None) -> MediaInfo:
    """Duration, size and a poster frame (at 1 s; the first frame of a video of 2 s or
    less) from ffmpeg, each run bounded by FFMPEG_TIMEOUT_SECONDS. Whatever ffmpeg
    cannot tell (it fails, times out, finds no video stream) stays None: a video
    without a poster is still usable."""
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    source = ["-protocol_whitelist", "file"]
    if mime_type in _DEMUXERS:
        source += ["-f", _DEMUXERS[mime_type]]
    source += ["-i", f"file:{path}"]
    try:
        probe = subprocess.run(
            [ffmpeg, "-nostdin", "-hide_banner", *source],
            capture_output=True,
            timeout=FFMPEG_TIMEOUT_SECONDS,
            check=False,
        )
    except (subprocess.TimeoutExpired, OSError):
        logger.warning("ffmpeg could not read %s", path, exc_info=True)
        return MediaInfo(None, None, None, None, None)
    duration_ms, width, height = ffmpeg_report_parse(probe.stderr.decode("utf-8", "replace"))
    if width is None:  # no video stream ffmpeg can decode: no poster either
        return MediaInfo(None, None, None, duration_ms, None)
    at = "1" if duration_ms and duration_ms > 2000 else "0"
    thumbnail = None
    try:
        poster = subprocess.run(
            [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-ss", at, *source,
             "-frames:v", "1", "-vf", "scale='min(960,iw)':-2", "-f", "image2pipe",
             "-vcodec", "png", "-"],
            capture_output=True,
            timeout=FFMPEG_TIMEOUT_SECONDS,
            check=False,
        )  # fmt: skip
        if poster.returncode == 0 and poster.stdout:
            with _open_image(name=path, data=poster.stdout, image_format="PNG") as frame:
                thumbnail = _thumbnail_webp(frame)
        else:
            logger.warning("ffmpeg made no poster for %s: %s", path, poster.stderr[-500:])
    except (subprocess.TimeoutExpired, OSError, UploadRejected):
        logger.warning("ffmpeg could not make a poster for %s", path, exc_info=True)
    return MediaInfo(width, height, None, duration_ms, thumbnail)


# --------------------------------------------------------------------------- addresses


def public_file_name(asset) -> str:
    """Where the public copy lives: an unguessable token and a readable name. Known
    before the copy exists; once it exists, that name is kept (renaming the asset
    afterwards must not change the address messages already use)."""
    if asset.public_file:
        return asset.public_file.name
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
