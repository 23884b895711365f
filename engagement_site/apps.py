from django.apps import AppConfig


class EngagementSiteConfig(AppConfig):
    name = "engagement_site"
    verbose_name = "Engagement"
