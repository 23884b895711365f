from django.urls import path

from journeys import editor_views, inspector, list_views, settings_panel, views

urlpatterns = [
    path("journeys/", views.journey_list, name="journey_list"),
    # The list's actions (journeys/list_views.py).
    path("journeys/new/", list_views.journey_new, name="journey_new"),
    path(
        "journeys/<int:journey_id>/duplicate/",
        list_views.journey_duplicate,
        name="journey_duplicate",
    ),
    path("journeys/<int:journey_id>/archive/", list_views.journey_archive, name="journey_archive"),
    # The visual builder (journeys/editor_views.py).
    path("journeys/<int:journey_id>/", editor_views.journey_editor, name="journey_editor"),
    # The inspector side panel (journeys/inspector.py), rendered for the builder by htmx.
    path(
        "journeys/<int:journey_id>/inspector/",
        inspector.inspector_form,
        name="journey_inspector",
    ),
    path(
        "journeys/<int:journey_id>/inspector/apply/",
        inspector.inspector_apply,
        name="journey_inspector_apply",
    ),
    path("journeys/event-names/", inspector.event_names, name="journey_event_names"),
    path(
        "journeys/<int:journey_id>/settings-panel/",
        settings_panel.journey_settings,
        name="journey_settings",
    ),
]
