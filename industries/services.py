from .models import IndustryConfig
from .seed import industries_upsert


def industries_seed() -> int:
    """Create or refresh the six industries (the data migration runs the same upsert)."""
    return industries_upsert(IndustryConfig)
