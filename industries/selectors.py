import re
from dataclasses import dataclass

from .models import IndustryConfig


@dataclass(frozen=True, slots=True)
class IndustryRule:
    """What agent validation needs to know about one industry, compiled once."""

    industry: str
    display_name: str
    enabled: bool
    professions: frozenset[str]
    license_label: str
    license_re: re.Pattern[str] | None


def industry_rules_get() -> dict[str, IndustryRule]:
    """All industries as compiled rules, keyed by slug (six rows: cheap to load per job)."""
    return {
        cfg.industry: IndustryRule(
            industry=cfg.industry,
            display_name=cfg.display_name,
            enabled=cfg.enabled,
            professions=frozenset(cfg.professions or ()),
            license_label=cfg.license_label,
            license_re=re.compile(cfg.license_pattern) if cfg.license_pattern else None,
        )
        for cfg in IndustryConfig.objects.all()
    }
