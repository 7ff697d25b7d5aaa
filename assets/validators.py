"""Validation of agent photos: a real JPEG, PNG or WebP of sane size, checked with Pillow.

Used by the Agent admin form and by the asset push (which re-checks what it
reads from storage: a file may have reached storage by another path).
"""

import warnings
from dataclasses import dataclass
from typing import IO

from django.core.exceptions import ValidationError
from PIL import Image, UnidentifiedImageError

AGENT_PHOTO_MAX_BYTES = 5 * 1024 * 1024
AGENT_PHOTO_MIN_SIDE = 32
AGENT_PHOTO_MAX_SIDE = 8000
# Well under Pillow's own bomb threshold (~89 Mpx): decoding 40 Mpx RGBA for
# the thumbnail costs ~160 MB, the most we want a worker to spend on a photo.
AGENT_PHOTO_MAX_PIXELS = 40_000_000

# Pillow format -> (content type, file extension used in bucket keys)
AGENT_PHOTO_FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
}


@dataclass(frozen=True)
class PhotoInfo:
    format: str
    content_type: str
    ext: str
    width: int
    height: int
    size: int


def _file_size(file: IO[bytes]) -> int:
    size = getattr(file, "size", None)
    if isinstance(size, int):
        return size
    pos = file.tell()
    file.seek(0, 2)
    end = file.tell()
    file.seek(pos)
    return end


def agent_photo_validate(file: IO[bytes]) -> PhotoInfo:
    """Check `file` is a JPEG/PNG/WebP photo within limits; raise ValidationError naming the problem.

    The format comes from the bytes, never from the file name, so a renamed
    text file or an SVG called photo.jpg is refused. Dimensions are read from
    the header before any pixel is decoded, so a decompression bomb is refused
    without spending its memory; the pixels are then decoded once to catch
    truncated or corrupt files that a header check lets through.
    """
    name = getattr(file, "name", None) or "photo"
    size = _file_size(file)
    if size > AGENT_PHOTO_MAX_BYTES:
        raise ValidationError(
            f"{name}: the photo is {size / 1024 / 1024:.1f} MB; the limit is "
            f"{AGENT_PHOTO_MAX_BYTES // 1024 // 1024} MB.",
            code="photo_too_large",
        )
    if size == 0:
        raise ValidationError(f"{name}: the file is empty.", code="photo_empty")

    allowed = ", ".join(sorted({"JPEG", "PNG", "WebP"}))
    file.seek(0)
    with warnings.catch_warnings():
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; make it an error.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(file, formats=list(AGENT_PHOTO_FORMATS))
        except UnidentifiedImageError:
            raise ValidationError(
                f"{name}: not a supported image (allowed: {allowed}); the file content is not a "
                "JPEG, PNG or WebP image, whatever its name says.",
                code="photo_not_image",
            ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ValidationError(
                f"{name}: the image declares too many pixels (possible decompression bomb).",
                code="photo_bomb",
            ) from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ValidationError(
                f"{name}: the image cannot be read ({exc}).", code="photo_corrupt"
            ) from None

        with image:
            fmt = image.format or ""
            if fmt not in AGENT_PHOTO_FORMATS:  # pragma: no cover - formats= already restricts
                raise ValidationError(f"{name}: format {fmt} is not allowed (allowed: {allowed}).")
            width, height = image.size
            if width < AGENT_PHOTO_MIN_SIDE or height < AGENT_PHOTO_MIN_SIDE:
                raise ValidationError(
                    f"{name}: the image is {width}×{height} px; each side must be at least "
                    f"{AGENT_PHOTO_MIN_SIDE} px.",
                    code="photo_too_small",
                )
            if width > AGENT_PHOTO_MAX_SIDE or height > AGENT_PHOTO_MAX_SIDE:
                raise ValidationError(
                    f"{name}: the image is {width}×{height} px; each side must be at most "
                    f"{AGENT_PHOTO_MAX_SIDE} px.",
                    code="photo_too_big",
                )
            if width * height > AGENT_PHOTO_MAX_PIXELS:
                raise ValidationError(
                    f"{name}: the image is {width}×{height} px ({width * height / 1e6:.0f} Mpx); the limit "
                    f"is {AGENT_PHOTO_MAX_PIXELS / 1e6:.0f} Mpx.",
                    code="photo_too_many_pixels",
                )
            if getattr(image, "n_frames", 1) > 1:
                raise ValidationError(
                    f"{name}: animated images are not accepted as a profile photo.", code="photo_animated"
                )
            try:
                image.load()
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
                raise ValidationError(
                    f"{name}: the image data is truncated or corrupt ({exc}).", code="photo_corrupt"
                ) from None
    file.seek(0)
    content_type, ext = AGENT_PHOTO_FORMATS[fmt]
    return PhotoInfo(format=fmt, content_type=content_type, ext=ext, width=width, height=height, size=size)
