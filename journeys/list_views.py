"""The journeys list's actions: new (blank or from a template), duplicate, archive.
Each redirects: to the builder after a create or a duplicate, to the list otherwise."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from engagement_site.workspaces.access import workspace_view
from engagement_site.workspaces.services import AuditContext
from journeys import catalog, selectors, services
from journeys.models import Journey
from journeys.views import journey_list_context

BLANK = "blank"


def _editor(request: HttpRequest, journey) -> HttpResponse:
    return redirect("journey_editor", workspace_slug=request.workspace.slug, journey_id=journey.pk)


def _list(request: HttpRequest) -> HttpResponse:
    url = reverse("journey_list", kwargs={"workspace_slug": request.workspace.slug})
    status = request.POST.get("status", "")
    return redirect(f"{url}?status={status}" if status in Journey.Status.values else url)


def _errors(error: ValidationError) -> dict[str, list[str]]:
    return error.message_dict if hasattr(error, "error_dict") else {"name": error.messages}


@workspace_view("journeys.edit")
@require_http_methods(["GET", "POST"])
def journey_new(request: HttpRequest) -> HttpResponse:
    """The "New journey" dialog's form: a name and Blank or a catalog template. GET (and
    a POST with errors) shows the list with the dialog open."""
    values = {"name": "", "template": BLANK}
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        values = {
            "name": request.POST.get("name", "").strip(),
            "template": request.POST.get("template", BLANK) or BLANK,
        }
        name, description, definition, layout = "", "", None, None
        if values["template"] != BLANK:
            try:
                name, description, definition, layout = catalog.journey_template(
                    key=values["template"], workspace=request.workspace
                )
            except KeyError:
                errors["template"] = ["Choose Blank or one of the templates."]
        if not errors:
            try:
                journey = services.journey_create(
                    workspace=request.workspace,
                    name=values["name"] or name,
                    description=description,
                    definition=definition,
                    layout=layout,
                    context=AuditContext.from_request(request),
                )
            except ValidationError as error:
                errors = _errors(error)
            else:
                return _editor(request, journey)
    context = journey_list_context(request)
    context.update({"new_journey": values, "new_journey_errors": errors, "dialog_open": True})
    return render(request, "journeys/journey_list.html", context, status=400 if errors else 200)


@workspace_view("journeys.edit")
@require_POST
def journey_duplicate(request: HttpRequest, journey_id: int) -> HttpResponse:
    journey = selectors.journey_get(workspace=request.workspace, journey_id=journey_id)
    try:
        duplicate = services.journey_duplicate(
            journey=journey, context=AuditContext.from_request(request)
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return _list(request)
    messages.success(request, f"Made {duplicate.name}, a draft copy of {journey.name}.")
    return _editor(request, duplicate)


@workspace_view("journeys.edit")
@require_POST
def journey_archive(request: HttpRequest, journey_id: int) -> HttpResponse:
    journey = selectors.journey_get(workspace=request.workspace, journey_id=journey_id)
    try:
        services.journey_archive(journey=journey, context=AuditContext.from_request(request))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Archived {journey.name}.")
    return _list(request)
