"""Real media files for the upload tests, made in memory (videos by the ffmpeg binary
the app itself uses)."""

from __future__ import annotations

import functools
import io
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import imageio_ffmpeg
from PIL import Image


def png(width: int = 64, height: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg(width: int = 80, height: int = 60) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (40, 200, 40)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def jpeg_turned(width: int = 80, height: int = 60) -> bytes:
    """Stored landscape with EXIF orientation 6 (a phone held upright): shown portrait."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (40, 200, 40)).save(
        buffer, format="JPEG", exif=exif.tobytes()
    )
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def webp(width: int = 50, height: int = 40) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (40, 40, 200)).save(buffer, format="WEBP")
    return buffer.getvalue()


def animated_gif(width: int = 30, height: int = 20, frames: int = 3) -> bytes:
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    images = [Image.new("RGB", (width, height), colors[index % 4]) for index in range(frames)]
    buffer = io.BytesIO()
    images[0].save(
        buffer, format="GIF", save_all=True, append_images=images[1:], duration=100, loop=0
    )
    return buffer.getvalue()


def pixel_flood_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A PNG whose header claims width x height (grey, 1 bit) with a tiny compressed body:
    a few kilobytes on disk, 400 million pixels once decoded."""

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", body)
        + png_chunk(b"IEND", b"")
    )


@functools.cache
def _video(extension: str, codec_args: tuple[str, ...]) -> bytes:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"clip.{extension}"
        subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-f", "lavfi",
             "-i", "testsrc=size=320x240:rate=10:duration=3", *codec_args, str(path)],
            check=True,
            timeout=120,
        )  # fmt: skip
        return path.read_bytes()


def mp4() -> bytes:
    return _video("mp4", ("-c:v", "libx264", "-pix_fmt", "yuv420p"))


def webm() -> bytes:
    return _video("webm", ("-c:v", "libvpx"))


def mkv() -> bytes:
    """Matroska, WebM's parent format, with a codec WebM does not allow."""
    return _video("mkv", ("-c:v", "libx264", "-pix_fmt", "yuv420p"))


CLEAN_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="24" height="16" viewBox="0 0 24 16">'
    b'<rect x="0" y="0" width="24" height="16" fill="#5a52e0"/><circle cx="8" cy="8" r="4" fill="white"/></svg>'
)
SVG_WITH_SCRIPT = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b'<script>fetch("/api/v1/api-keys/")</script><rect width="10" height="10"/></svg>'
)
SVG_WITH_ONLOAD = (
    b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="1" height="1"/></svg>'
)
SVG_WITH_FOREIGN_OBJECT = (
    b'<svg xmlns="http://www.w3.org/2000/svg"><foreignObject width="9" height="9">'
    b'<div xmlns="http://www.w3.org/1999/xhtml">hi</div></foreignObject></svg>'
)
SVG_WITH_EXTERNAL_IMAGE = (
    b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
    b'<image xlink:href="https://tracker.example/pixel.png" width="1" height="1"/></svg>'
)
SVG_WITH_JAVASCRIPT_LINK = (
    b'<svg xmlns="http://www.w3.org/2000/svg"><use href="javascript:alert(1)"/></svg>'
)
SVG_WITH_CSS_URL = (
    b'<svg xmlns="http://www.w3.org/2000/svg">'
    b'<rect width="9" height="9" style="fill: url( \'https://tracker.example/x\' )"/></svg>'
)
SVG_WITH_ENTITIES = (
    b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
    b'<svg xmlns="http://www.w3.org/2000/svg"><text>&lol2;</text></svg>'
)
# No width / height: the size comes from the viewBox.
SVG_WITH_VIEWBOX = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 120 30">'
    b'<!-- a comment --><path d="M0 0h120v30H0z" fill="url(#g)"/>'
    b'<linearGradient id="g"><stop offset="0" stop-color="#000"/></linearGradient></svg>'
)
