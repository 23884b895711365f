from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    name = "engagement_site.workspaces"
    label = "workspaces"
    verbose_name = "Workspaces and access"
