import uuid
from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from estateflow.storage import shared_storage
from industries.constants import (
    AGENT_STATUSES,
    BIO_TONES,
    CLIENT_FOCUSES,
    CONTENT_STYLES,
    STATE_CHOICES,
    SUBSCRIPTION_TIERS,
)

from .validators import (
    validate_agent_email,
    validate_agent_id,
    validate_agent_slug,
    validate_http_url,
    validate_json_object,
    validate_json_string_list,
    validate_not_blank,
)


def new_agent_id() -> str:
    return uuid.uuid4().hex


def default_property_types() -> list[str]:
    return ["single_family", "condo"]


def default_languages() -> list[str]:
    return ["English"]


def _choices(values: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(v, v.replace("_", " ").capitalize()) for v in values]


def _range(low: int | Decimal, high: int | Decimal) -> list:
    # Inclusive; the upper bounds are generous but catch unit and typo errors.
    return [MinValueValidator(low), MaxValueValidator(high)]


# The import reports a state outside the choices with this, not Django's generic message.
STATE_INVALID_CHOICE = (
    "Unknown state code %(value)r: use a 2-letter code of the 50 states, DC, AS, GU, MP, PR or VI."
)


class Agent(models.Model):
    """A licensed professional; the first blocks mirror D1 `agents` column by column.

    Nullable TEXT columns of D1 stay nullable here (null, not "") so a row maps
    1:1 to D1 and a rollback restores NULL exactly.
    """

    # --- identity --------------------------------------------------------------
    id = models.CharField(
        primary_key=True, max_length=64, default=new_agent_id, editable=False, validators=[validate_agent_id]
    )
    slug = models.SlugField(max_length=120, unique=True, blank=True, validators=[validate_agent_slug])
    name = models.CharField(max_length=200, validators=[validate_not_blank])
    # --- contact ---------------------------------------------------------------
    email = models.CharField(max_length=254, null=True, blank=True, validators=[validate_agent_email])
    phone = models.CharField(max_length=40, null=True, blank=True)
    cell_phone = models.CharField(max_length=40, null=True, blank=True)
    office_phone = models.CharField(max_length=40, null=True, blank=True)
    # --- licensing ---------------------------------------------------------------
    license_number = models.CharField(max_length=64, null=True, blank=True)
    mls_id = models.CharField(max_length=64, null=True, blank=True)
    state = models.CharField(
        max_length=2, choices=STATE_CHOICES, error_messages={"invalid_choice": STATE_INVALID_CHOICE}
    )
    city = models.CharField(max_length=100, null=True, blank=True)
    # --- brokerage ---------------------------------------------------------------
    brokerage = models.CharField(max_length=200, null=True, blank=True)
    brokerage_license = models.CharField(max_length=64, null=True, blank=True)
    # --- profile -----------------------------------------------------------------
    bio = models.TextField(null=True, blank=True)
    photo_url = models.CharField(max_length=500, null=True, blank=True, validators=[validate_http_url])
    video_intro_url = models.CharField(max_length=500, null=True, blank=True, validators=[validate_http_url])
    # --- status ------------------------------------------------------------------
    status = models.CharField(max_length=20, default="active", choices=_choices(AGENT_STATUSES))
    ghost_profile = models.BooleanField(default=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=200, null=True, blank=True)
    profile_views = models.IntegerField(default=0, validators=_range(0, 2_147_483_647))
    fake_leads_count = models.IntegerField(default=7, validators=_range(0, 10_000))
    # --- metadata ----------------------------------------------------------------
    source = models.CharField(max_length=100, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Set explicitly by every write path (save() and the bulk import SQL):
    # auto_now does not run in bulk paths, and the sync must not miss a change.
    updated_at = models.DateTimeField(default=timezone.now, editable=False)
    enriched_at = models.DateTimeField(null=True, blank=True)
    # --- geography (002) ----------------------------------------------------------
    primary_region = models.CharField(max_length=100, null=True, blank=True)
    primary_county = models.CharField(max_length=100, null=True, blank=True)
    service_regions = models.JSONField(default=list, blank=True, validators=[validate_json_string_list])
    service_zipcodes = models.JSONField(default=list, blank=True, validators=[validate_json_string_list])
    service_radius_miles = models.IntegerField(default=25, validators=_range(0, 500))
    # --- specialty (002) ----------------------------------------------------------
    primary_specialty = models.CharField(max_length=50, default="general")
    secondary_specialties = models.JSONField(default=list, blank=True, validators=[validate_json_string_list])
    property_types = models.JSONField(
        default=default_property_types, blank=True, validators=[validate_json_string_list]
    )
    price_ranges = models.JSONField(default=dict, blank=True, validators=[validate_json_object])
    client_focus = models.CharField(max_length=20, default="both", choices=_choices(CLIENT_FOCUSES))
    language_capabilities = models.JSONField(
        default=default_languages, blank=True, validators=[validate_json_string_list]
    )
    # --- experience (002) ---------------------------------------------------------
    years_experience = models.IntegerField(default=0, validators=_range(0, 80))
    transactions_ytd = models.IntegerField(default=0, validators=_range(0, 100_000))
    total_volume_sold = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        default=Decimal("0"),
        validators=_range(Decimal("0"), Decimal("9999999999.99")),
    )
    avg_days_to_close = models.IntegerField(null=True, blank=True, validators=_range(0, 3_650))
    # --- tier (002) -----------------------------------------------------------------
    subscription_tier = models.CharField(max_length=20, default="ghost", choices=_choices(SUBSCRIPTION_TIERS))
    tier_started_at = models.DateTimeField(null=True, blank=True)
    tier_expires_at = models.DateTimeField(null=True, blank=True)
    # --- content (002) --------------------------------------------------------------
    bio_tone = models.CharField(max_length=30, default="professional", choices=_choices(BIO_TONES))
    content_style = models.CharField(max_length=30, default="informative", choices=_choices(CONTENT_STYLES))
    unique_value_props = models.JSONField(default=list, blank=True, validators=[validate_json_string_list])
    features = models.JSONField(default=dict, blank=True, validators=[validate_json_object])
    # --- industry (003) --------------------------------------------------------------
    industry = models.ForeignKey(
        "industries.IndustryConfig",
        on_delete=models.PROTECT,
        db_column="industry",
        default="real_estate",
        related_name="agents",
        db_index=False,  # idx_agents_industry_profession leads with industry
    )
    profession = models.CharField(max_length=50, default="agent")
    specializations = models.JSONField(default=list, blank=True, validators=[validate_json_string_list])

    # --- back-office only (not in D1) ------------------------------------------------
    photo = models.ImageField(upload_to="agents/photos/", null=True, blank=True, storage=shared_storage)

    class Meta:
        db_table = "agents"
        ordering = ["name", "id"]
        permissions = [
            ("import_agent", "Can import agents"),
            ("export_agent", "Can export agents"),
            ("export_contacts_agent", "Can export agent contact details"),
        ]
        indexes = [
            # The natural key imports match on when a row has no id. Not unique: the live
            # D1 has no licence constraint and a thousand of its agents share one licence;
            # imports report shared licences as warnings instead.
            models.Index(fields=["industry", "state", "license_number"], name="idx_agents_ind_state_license"),
            models.Index(fields=["state", "city"], name="idx_agents_state_city"),
            models.Index(fields=["state", "city", "primary_region"], name="idx_agents_state_city_region"),
            models.Index(fields=["industry", "profession"], name="idx_agents_industry_profession"),
            models.Index(fields=["primary_specialty", "client_focus"], name="idx_agents_specialty_focus"),
            models.Index(fields=["subscription_tier"], name="idx_agents_tier"),
            models.Index(fields=["license_number"], name="idx_agents_license"),
            models.Index(fields=["mls_id"], name="idx_agents_mls"),
            models.Index(fields=["brokerage"], name="idx_agents_brokerage"),
            models.Index(fields=["status"], name="idx_agents_status"),
            models.Index(fields=["ghost_profile", "claimed_at"], name="idx_agents_ghost_claimed"),
            # The admin's default order (Meta.ordering); trigram indexes: agents/migrations/0003.
            models.Index(fields=["name", "id"], name="idx_agents_name_id"),
            # The admin's industry (+ state) filter, counted and paged in name order from one index.
            models.Index(fields=["industry", "state", "name", "id"], name="idx_agents_ind_state_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.state})"

    def save(self, *args, **kwargs) -> None:
        from .services import agent_slug_assign

        if not self.slug:
            agent_slug_assign(agent=self)
        self.updated_at = timezone.now()
        super().save(*args, **kwargs)

    def clean(self) -> None:
        from .validation import agent_instance_validate

        agent_instance_validate(self)
