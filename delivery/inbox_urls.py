"""Client-side API (write key) of delivery: inbox."""

from django.urls import path, re_path

from delivery import inbox_api

urlpatterns = [
    path("inbox/<str:user_id>", inbox_api.inbox_list, name="inbox_list"),
    re_path(
        r"^inbox/(?P<user_id>[^/]+)/messages/(?P<message_id>[^/]+)/(?P<action>read|clicked|dismissed)$",
        inbox_api.inbox_message_action,
        name="inbox_message_action",
    ),
]
