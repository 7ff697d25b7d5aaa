"""Pillow work for the push: the thumbnail published next to each original."""

import io

from PIL import Image, ImageOps

THUMB_MAX_SIDE = 256
THUMB_FORMAT = "WEBP"
THUMB_CONTENT_TYPE = "image/webp"
THUMB_EXT = "webp"


def thumbnail_make(data: bytes, *, max_side: int = THUMB_MAX_SIDE) -> bytes:
    """A WebP at most `max_side` px on its longer side, upright per EXIF, metadata stripped.

    Callers validate `data` first (assets.validators), so its pixel count is bounded.
    """
    with Image.open(io.BytesIO(data)) as image:
        # draft() lets the JPEG decoder scale down while decoding: far less
        # memory and time for a large photo.
        image.draft("RGB", (max_side * 2, max_side * 2))
        image = ImageOps.exif_transpose(image)
        has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        # No exif= / icc_profile= arguments: the public thumbnail carries no metadata.
        image.save(out, format=THUMB_FORMAT, quality=82, method=4)
        return out.getvalue()
