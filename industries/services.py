from .models import IndustryConfig
from .seed import INDUSTRIES


def industries_seed() -> int:
    """Create or refresh the six industries of seed.py (the data migration does the same)."""
    for row in INDUSTRIES:
        values = {key: value for key, value in row.items() if key != "industry"}
        IndustryConfig.objects.update_or_create(industry=row["industry"], defaults=values)
    return len(INDUSTRIES)
