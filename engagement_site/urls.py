from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from content.media_urls import public_urlpatterns as public_media_patterns
from delivery import views as delivery_views
from engagement_site import health, views
from engagement_site.workspaces import api as workspaces_api

handler404 = "engagement_site.views.not_found"
handler500 = "engagement_site.views.server_error"

admin.site.site_header = "Engagement administration"
admin.site.site_title = "Engagement admin"
admin.site.index_title = "Workspaces, people and the audit log"

workspace_patterns = [
    path("", views.workspace_home, name="workspace_home"),
    path("", include("journeys.urls")),
    path("", include("segments.urls")),
    path("", include("segments.import_urls")),
    path("", include("content.urls")),
    path("", include("analytics.urls")),
    path("", include("delivery.urls")),
    path("", include("engagement_site.workspaces.urls")),
]

api_v1_patterns = [
    path("workspace/", workspaces_api.WorkspaceApi.as_view(), name="api_workspace"),
    path("api-keys/", workspaces_api.ApiKeyListApi.as_view(), name="api_api_keys"),
    path(
        "api-keys/<int:api_key_id>/revoke",
        workspaces_api.ApiKeyRevokeApi.as_view(),
        name="api_api_key_revoke",
    ),
    path("audit-log/", workspaces_api.AuditLogListApi.as_view(), name="api_audit_log"),
    path("", include("segments.api_urls")),
    path("", include("content.api_urls")),
    path("", include("journeys.api_urls")),
    path("", include("analytics.api_urls")),
    # Called by apps and browsers with the workspace's write key.
    path("", include("delivery.inbox_urls")),
    path("", include("delivery.device_urls")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    # One login page for the app and the admin, so every login is throttled and audited.
    path("admin/login/", RedirectView.as_view(pattern_name="login", query_string=True)),
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    # Segment-compatible tracking API (write keys), outside /api/ as Segment's clients expect.
    path("v1/", include("segments.tracking_urls")),
    # Links inside messages, for the people they go to (no login; signed tokens).
    path("u/<str:token>/", delivery_views.unsubscribe, name="unsubscribe"),
    path("p/<str:token>/", delivery_views.preferences, name="preferences"),
    path("c/<str:token>/", delivery_views.opt_in_confirm, name="opt_in_confirm"),
    path("t/o/<str:token>.gif", delivery_views.track_open, name="track_open"),
    path("t/c/<str:token>/", delivery_views.track_click, name="track_click"),
    path("hooks/<slug:channel>/<str:token>/", delivery_views.provider_hook, name="provider_hook"),
    path("w/<slug:workspace_slug>/", include(workspace_patterns)),
    path("api/v1/", include(api_v1_patterns)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    # The split view serves its start-up script as a file: the CSP refuses inline scripts.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api_schema"), name="api_docs"),
    path("django-rq/", include("django_rq.urls")),
    *public_media_patterns,
]
