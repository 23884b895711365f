from django.urls import path

from engagement_site.workspaces import views

urlpatterns = [
    path("settings/", views.settings_general, name="settings_general"),
    path("settings/members/", views.settings_members, name="settings_members"),
    path(
        "settings/members/<int:membership_id>/role",
        views.member_change_role,
        name="member_change_role",
    ),
    path("settings/members/<int:membership_id>/remove", views.member_remove, name="member_remove"),
    path("settings/api-keys/", views.settings_api_keys, name="settings_api_keys"),
    path("settings/api-keys/<int:api_key_id>/revoke", views.api_key_revoke, name="api_key_revoke"),
    path("settings/audit-log/", views.settings_audit_log, name="settings_audit_log"),
]
