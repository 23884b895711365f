"""Imports in the UI: upload -> map columns (with a dry run) -> import with live progress."""

from __future__ import annotations

from django import forms
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from engagement_site.workspaces.access import workspace_view
from engagement_site.workspaces.services import AuditContext
from segments.importers import (
    FIELDS,
    IGNORE,
    OPEN_PREFIXES,
    DryRun,
    ImportFileError,
    ImportKind,
    columns_of,
    import_draft_create,
    import_job_mapping_preview,
    import_job_start,
)
from segments.models import ImportJob


class UploadForm(forms.Form):
    kind = forms.ChoiceField(choices=ImportKind.choices, initial=ImportKind.PROFILES)
    file = forms.FileField(
        help_text="CSV with a header row, a JSON array of objects, or JSON Lines."
    )


def _import_get(*, workspace, import_id: int) -> ImportJob:
    job = (
        ImportJob.objects.filter(workspace=workspace, pk=import_id)
        .select_related("created_by")
        .first()
    )
    if job is None:
        raise Http404("No such import")
    return job


def _file_columns(job: ImportJob) -> list[str]:
    with job.file.open("rb") as handle:
        return columns_of(handle.read(), job.file_format)


@workspace_view("segments.edit")
def import_list(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = import_draft_create(
                workspace=request.workspace,
                kind=form.cleaned_data["kind"],
                uploaded_file=form.cleaned_data["file"],
                context=AuditContext.from_request(request),
            )
        except ImportFileError as error:
            form.add_error("file", str(error))
        else:
            return redirect(
                "import_detail", workspace_slug=request.workspace.slug, import_id=job.pk
            )
    jobs = ImportJob.objects.filter(workspace=request.workspace).select_related("created_by")
    page = Paginator(jobs, 25).get_page(request.GET.get("page"))
    return render(
        request, "imports/import_list.html", {"area": "profiles", "form": form, "page": page}
    )


def _mapping_from_post(job: ImportJob, post) -> dict[str, str]:
    mapping = {}
    for index, column in enumerate(_file_columns(job)):
        target = post.get(f"map-{index}", job.mapping[column])
        if target == "__open__":
            target = OPEN_PREFIXES[job.kind] + post.get(f"open-{index}", "").strip()
        mapping[column] = target
    return mapping


@workspace_view("segments.edit")
def import_detail(request: HttpRequest, import_id: int) -> HttpResponse:
    job = _import_get(workspace=request.workspace, import_id=import_id)
    if job.status != ImportJob.Status.DRAFT:
        template = "imports/_progress.html" if request.htmx else "imports/import_detail.html"
        return render(request, template, {"area": "profiles", "job": job})

    if request.method == "POST":
        mapping = _mapping_from_post(job, request.POST)
    else:  # in the file's column order (a JSON object in PostgreSQL keeps no order)
        mapping = {column: job.mapping.get(column, IGNORE) for column in _file_columns(job)}
    problem = ""
    if request.method == "POST" and request.POST.get("action") == "import":
        try:
            import_job_start(job=job, mapping=mapping, context=AuditContext.from_request(request))
        except ImportFileError as error:
            problem = str(error)
        else:
            return redirect(
                "import_detail", workspace_slug=request.workspace.slug, import_id=job.pk
            )
    try:
        preview = import_job_mapping_preview(job=job, mapping=mapping)
    except ImportFileError as error:
        preview, problem = DryRun(), str(error)
    prefix = OPEN_PREFIXES[job.kind]
    rows = [
        {
            "index": index,
            "column": column,
            "target": target,
            "open_name": target[len(prefix) :] if target.startswith(prefix) else "",
        }
        for index, (column, target) in enumerate(mapping.items())
    ]
    return render(
        request,
        "imports/import_detail.html",
        {
            "area": "profiles",
            "job": job,
            "rows": rows,
            "fields": [(name, required) for name, (required, _) in FIELDS[job.kind].items()],
            "open_prefix": prefix,
            "ignore": IGNORE,
            "preview": preview,
            "problem": problem,
        },
    )
