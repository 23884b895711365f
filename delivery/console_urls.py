"""Pages of delivery for the workspace's people: messages, dead letters, channels."""

from django.urls import path

from delivery import console_views as views

urlpatterns = [
    path("messages/", views.message_list, name="delivery_messages"),
    path("messages/dead-letters/", views.dead_letters, name="delivery_dead_letters"),
    path(
        "messages/dead-letters/retry/", views.dead_letters_retry, name="delivery_dead_letters_retry"
    ),
    path(
        "messages/dead-letters/discard/",
        views.dead_letters_discard,
        name="delivery_dead_letters_discard",
    ),
    path("messages/<int:message_id>/", views.message_detail, name="delivery_message"),
    path("settings/channels/", views.channel_list, name="settings_channels"),
    path("settings/channels/<slug:channel>/", views.channel_edit, name="settings_channel"),
    path("settings/delivery/", views.delivery_settings, name="settings_delivery"),
    path("settings/delivery/caps/", views.frequency_cap_add, name="delivery_cap_add"),
    path(
        "settings/delivery/caps/<int:cap_id>/remove/",
        views.frequency_cap_remove,
        name="delivery_cap_remove",
    ),
    path("settings/delivery/suppressions/", views.suppression_add, name="delivery_suppression_add"),
    path(
        "settings/delivery/suppressions/<int:suppression_id>/remove/",
        views.suppression_remove,
        name="delivery_suppression_remove",
    ),
    path(
        "settings/delivery/secrets/<slug:kind>/",
        views.secret_reveal,
        name="delivery_secret",
    ),
]
