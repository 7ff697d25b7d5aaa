"""Declarative column mapping of agents for django-import-export (export now, import later)."""

from import_export import fields, resources, widgets

from industries.models import IndustryConfig

from .models import Agent

# OWASP's list of characters that make a spreadsheet read a cell as a formula.
FORMULA_LEADING_CHARACTERS = ("=", "+", "-", "@", "\t", "\r")

# Every mirrored D1 column, in D1 order; the back-office-only columns stay out.
D1_AGENT_COLUMNS: tuple[str, ...] = tuple(
    f.column for f in Agent._meta.concrete_fields if f.name not in ("photo",)
)


def formula_escape(value: object) -> object:
    """Prefix a quote to text a spreadsheet would evaluate (=cmd|..., +1+1, @SUM ...)."""
    if isinstance(value, str) and value.startswith(FORMULA_LEADING_CHARACTERS):
        return "'" + value
    return value


class AgentResource(resources.ModelResource):
    industry = fields.Field(
        attribute="industry",
        column_name="industry",
        widget=widgets.ForeignKeyWidget(IndustryConfig, field="industry"),
    )

    class Meta:
        model = Agent
        fields = D1_AGENT_COLUMNS
        export_order = D1_AGENT_COLUMNS
        import_id_fields = ("id",)

    def export_field(self, field, instance, **kwargs):
        return formula_escape(super().export_field(field, instance, **kwargs))
