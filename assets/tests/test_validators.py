import io
import struct
import zlib

import pytest
from django.core.exceptions import ValidationError
from PIL import Image

from assets.images import thumbnail_make
from assets.validators import AGENT_PHOTO_MAX_BYTES, agent_photo_validate

from .factories import image_bytes


def _named(data: bytes, name: str) -> io.BytesIO:
    handle = io.BytesIO(data)
    handle.name = name
    return handle


def _png_with_declared_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width×height pixels (the shape of a decompression bomb)."""
    data = bytearray(image_bytes(fmt="PNG", size=(32, 32), mode="L"))
    ihdr = bytearray(data[12:29])  # type + 13 bytes of IHDR data
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


@pytest.mark.parametrize(("fmt", "content_type", "ext"), [("JPEG", "image/jpeg", "jpg"), ("PNG", "image/png", "png"), ("WEBP", "image/webp", "webp")])  # fmt: skip
def test_accepts_jpeg_png_webp(fmt, content_type, ext):
    info = agent_photo_validate(_named(image_bytes(fmt=fmt, size=(40, 32)), "a.bin"))
    assert (info.format, info.content_type, info.ext, info.width, info.height) == (
        fmt,
        content_type,
        ext,
        40,
        32,
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"hello, I am a text file pretending", "not a supported image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not a supported image"),
        (image_bytes(fmt="GIF", size=(64, 64), mode="L"), "not a supported image"),
        (image_bytes(fmt="BMP", size=(64, 64)), "not a supported image"),
        (image_bytes(fmt="PNG", size=(16, 64)), "at least 32 px"),
        (_png_with_declared_size(8001, 100), "at most 8000 px"),
        (_png_with_declared_size(7000, 7000), "the limit is 40 Mpx"),
        (_png_with_declared_size(60000, 60000), "decompression bomb"),
        (image_bytes(fmt="JPEG", size=(256, 256))[:900], "truncated or corrupt"),
        (b"", "empty"),
    ],
    ids=[
        "text",
        "svg",
        "gif",
        "bmp",
        "too-small",
        "too-wide",
        "too-many-pixels",
        "bomb",
        "truncated",
        "empty",
    ],
)
def test_rejects_with_clear_message(data, message):
    with pytest.raises(ValidationError) as excinfo:
        agent_photo_validate(_named(data, "portrait.jpg"))
    text = " ".join(excinfo.value.messages)
    assert message in text and "portrait.jpg" in text


def test_rejects_over_five_megabytes_before_decoding():
    data = image_bytes(fmt="PNG", size=(64, 64)) + b"\0" * AGENT_PHOTO_MAX_BYTES
    with pytest.raises(ValidationError, match="limit is 5 MB"):
        agent_photo_validate(_named(data, "big.png"))


def test_rejects_animated_webp():
    frames = [Image.new("RGB", (40, 40), color) for color in ("red", "blue")]
    out = io.BytesIO()
    frames[0].save(out, format="WEBP", save_all=True, append_images=frames[1:])
    with pytest.raises(ValidationError, match="animated"):
        agent_photo_validate(_named(out.getvalue(), "anim.webp"))


def test_thumbnail_is_small_webp_and_keeps_alpha():
    thumb = thumbnail_make(image_bytes(fmt="PNG", size=(600, 300), mode="RGBA"))
    with Image.open(io.BytesIO(thumb)) as image:
        assert image.format == "WEBP" and image.size == (256, 128) and image.mode == "RGBA"
