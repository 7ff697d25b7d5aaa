from django.apps import AppConfig


class AssetsConfig(AppConfig):
    name = "assets"
    verbose_name = "Assets (R2)"
    # The R2 push's beat schedule is one of the schedules staff control: sync.schedules.
