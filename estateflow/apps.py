from django.contrib.admin.apps import AdminConfig


class EstateFlowAdminConfig(AdminConfig):
    """django.contrib.admin with the project's site as `admin.site`."""

    default_site = "estateflow.admin_site.EstateFlowAdminSite"
