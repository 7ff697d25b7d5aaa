import re

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from .validators import validate_snake_case_list


class IndustryConfig(models.Model):
    """One industry of the directory; mirrors D1 `industry_config` 1:1 (first block)."""

    # --- mirrored D1 columns -------------------------------------------------
    industry = models.CharField(primary_key=True, max_length=32, help_text="Slug, e.g. real_estate.")
    display_name = models.CharField(max_length=100)
    professions = models.JSONField(default=list, validators=[validate_snake_case_list])
    required_licenses = models.BooleanField(default=True)
    specializations = models.JSONField(
        null=True, blank=True, default=list, validators=[validate_snake_case_list]
    )
    tools = models.JSONField(null=True, blank=True, default=list, validators=[validate_snake_case_list])
    lead_types = models.JSONField(null=True, blank=True, default=list, validators=[validate_snake_case_list])
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    # --- back-office only (not in D1) ------------------------------------------
    enabled = models.BooleanField(default=True, help_text="Disabled industries accept no new agents.")
    license_label = models.CharField(
        max_length=60, default="License number", help_text="How the licence is called, e.g. NMLS ID."
    )
    license_pattern = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="Regular expression a licence number must match in full; empty means free text.",
    )
    updated_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        db_table = "industry_config"
        ordering = ["industry"]
        verbose_name = "industry"
        verbose_name_plural = "industries"

    def __str__(self) -> str:
        return self.display_name

    def save(self, *args, **kwargs) -> None:
        self.updated_at = timezone.now()
        super().save(*args, **kwargs)

    def clean(self) -> None:
        super().clean()
        if self.license_pattern:
            try:
                re.compile(self.license_pattern)
            except re.error as exc:
                raise ValidationError({"license_pattern": f"Not a valid regular expression: {exc}"}) from exc
        if not self.professions:
            raise ValidationError({"professions": "An industry needs at least one profession."})
