import io
import random

import factory
from django.core.files.base import ContentFile
from PIL import Image

from agents.tests.factories import AgentFactory

FORMAT_EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


def image_bytes(
    *, fmt: str = "JPEG", size: tuple[int, int] = (64, 48), seed: int = 0, mode: str = "RGB"
) -> bytes:
    """A small image with seeded noise, so each seed hashes differently."""
    rng = random.Random(seed)
    channels = len(mode)
    pixels = bytes(rng.getrandbits(8) for _ in range(size[0] * size[1] * channels))
    out = io.BytesIO()
    Image.frombytes(mode, size, pixels).save(out, format=fmt)
    return out.getvalue()


def photo_file(*, fmt: str = "JPEG", seed: int = 0, size: tuple[int, int] = (64, 48)) -> ContentFile:
    return ContentFile(image_bytes(fmt=fmt, seed=seed, size=size), name=f"photo-{seed}.{FORMAT_EXT[fmt]}")


class AgentWithPhotoFactory(AgentFactory):
    photo = factory.Sequence(lambda n: photo_file(fmt=("JPEG", "PNG", "WEBP")[n % 3], seed=n))
