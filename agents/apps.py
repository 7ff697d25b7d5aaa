from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        # Registers the "estateflow" system checks (the model against the D1 migrations).
        from . import checks  # noqa: F401
