"""What each agent column is, for django-import-export: exports now, the import pipeline's parsing.

The Resource is declarative: one Field per D1 column with the widget that
parses and renders it. The import pipeline takes the widgets from here, so
a column is described once.
"""

from import_export import fields, resources

from .models import Agent
from .widgets import (
    BooleanWidget,
    DateTimeWidget,
    DecimalWidget,
    IntegerWidget,
    JSONWidget,
    KeyWidget,
    TextWidget,
    UpperCodeWidget,
)

# OWASP's list of characters that make a spreadsheet read a cell as a formula.
FORMULA_LEADING_CHARACTERS = ("=", "+", "-", "@", "\t", "\r")

# Agent columns D1 does not mirror (the photo file lives in the back-office's storage; the
# public site has photo_url). Every other field is a D1 column: agents.checks holds the
# model to the D1 migrations.
BACK_OFFICE_ONLY_COLUMNS = frozenset({"photo"})
# Every mirrored D1 column, in model order.
D1_AGENT_COLUMNS: tuple[str, ...] = tuple(
    f.column for f in Agent._meta.concrete_fields if f.column not in BACK_OFFICE_ONLY_COLUMNS
)

_KEY_COLUMNS = (
    "status",
    "subscription_tier",
    "client_focus",
    "bio_tone",
    "content_style",
    "profession",
    "primary_specialty",
    "industry",
)


def _widget_for(field) -> object:
    internal = field.get_internal_type()
    if field.column in _KEY_COLUMNS:
        return KeyWidget()
    if field.column == "state":
        return UpperCodeWidget()
    if internal == "JSONField":
        default = field.get_default()
        return JSONWidget(expected=dict if isinstance(default, dict) else list)
    if internal == "BooleanField":
        return BooleanWidget()
    if internal == "IntegerField":
        return IntegerWidget()
    if internal == "DecimalField":
        return DecimalWidget(decimal_places=field.decimal_places)
    if internal == "DateTimeField":
        return DateTimeWidget()
    return TextWidget()


def formula_escape(value: object) -> object:
    """Prefix a quote to text a spreadsheet would evaluate (=cmd|..., +1+1, @SUM ...)."""
    if isinstance(value, str) and value.startswith(FORMULA_LEADING_CHARACTERS):
        return "'" + value
    return value


class AgentResource(resources.ModelResource):
    class Meta:
        model = Agent
        fields = D1_AGENT_COLUMNS
        export_order = D1_AGENT_COLUMNS
        import_id_fields = ("id",)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # One explicit widget per D1 column; the industry is its slug (no query per row).
        for model_field in Agent._meta.concrete_fields:
            if model_field.column not in D1_AGENT_COLUMNS:
                continue
            self.fields[model_field.column] = fields.Field(
                attribute=model_field.attname,
                column_name=model_field.column,
                widget=_widget_for(model_field),
            )

    def export_field(self, field, instance, **kwargs):
        return formula_escape(super().export_field(field, instance, **kwargs))

    def column_widgets(self) -> dict[str, object]:
        """{D1 column: widget} — what the import pipeline parses cells with."""
        return {name: field.widget for name, field in self.fields.items()}


# Exporting these needs agents.export_contacts_agent on top of agents.export_agent.
CONTACT_COLUMNS: tuple[str, ...] = ("email", "phone", "cell_phone", "office_phone")


class AgentResourceWithoutContacts(AgentResource):
    """The export for users without the contact-details permission: no email or phone column."""

    class Meta(AgentResource.Meta):
        fields = tuple(c for c in D1_AGENT_COLUMNS if c not in CONTACT_COLUMNS)
        export_order = fields

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for column in CONTACT_COLUMNS:
            self.fields.pop(column, None)


def agent_export_resource_for(user) -> type[AgentResource]:
    if user.has_perm("agents.export_contacts_agent"):
        return AgentResource
    return AgentResourceWithoutContacts
