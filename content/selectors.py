"""Reads of the content app; every function takes the workspace."""

from __future__ import annotations

from django.db.models import Q, QuerySet, Sum
from django.http import Http404

from content.models import Asset, AssetFolder, AssetUsage, Template, TemplateVersion
from engagement_site.workspaces.models import Workspace

# Profile columns a template may use besides the traits (see content.rendering).
PROFILE_COLUMNS = frozenset(
    {"id", "user_id", "email", "phone", "locale", "time_zone", "first_seen", "last_seen"}
)


# --------------------------------------------------------------------------- templates


def workspace_templates(
    *,
    workspace: Workspace,
    channel: str = "",
    query: str = "",
    include_archived: bool = False,
) -> QuerySet[Template]:
    templates = Template.objects.filter(workspace=workspace).select_related(
        "current_version", "current_version__author"
    )
    if channel:
        templates = templates.filter(channel=channel)
    if query:
        templates = templates.filter(
            Q(name__icontains=query)
            | Q(description__icontains=query)
            | Q(tags__contains=[query.lower()])
        )
    if not include_archived:
        templates = templates.filter(archived_at__isnull=True)
    return templates.order_by("-updated_at", "pk")


def template_get(*, workspace: Workspace, template_id: int) -> Template:
    template = (
        Template.objects.filter(workspace=workspace, pk=template_id)
        .select_related("current_version", "current_version__author")
        .first()
    )
    if template is None:
        raise Http404("No such template in this workspace.")
    return template


def template_versions(*, workspace: Workspace, template: Template) -> QuerySet[TemplateVersion]:
    return (
        TemplateVersion.objects.filter(template__workspace=workspace, template=template)
        .select_related("author")
        .order_by("-number")
    )


def template_version_get(
    *, workspace: Workspace, template: Template, number: int
) -> TemplateVersion:
    version = (
        TemplateVersion.objects.filter(
            template__workspace=workspace, template=template, number=number
        )
        .select_related("author", "template")
        .first()
    )
    if version is None:
        raise Http404("No such version of this template.")
    return version


def template_version_by_id(*, workspace: Workspace, version_id: int) -> TemplateVersion:
    """A pinned version (journeys store the id), only inside the workspace."""
    version = (
        TemplateVersion.objects.filter(template__workspace=workspace, pk=version_id)
        .select_related("template")
        .first()
    )
    if version is None:
        raise Http404("No such template version in this workspace.")
    return version


def template_assets(*, workspace: Workspace, template: Template) -> QuerySet[Asset]:
    return Asset.objects.filter(workspace=workspace, usages__template=template).order_by("name")


def template_journey_usages(*, workspace: Workspace, template: Template) -> list[str]:
    """Names of the journeys whose versions pin this template (journeys arrive with the
    engine; until then nothing pins a template)."""
    try:
        from journeys.selectors import journeys_using_template
    except ImportError:
        return []
    return journeys_using_template(workspace=workspace, template=template)


def template_message_count(*, workspace: Workspace, template: Template) -> int:
    from delivery.selectors import template_message_count as count

    return count(workspace=workspace, template=template)


def known_variables(*, workspace: Workspace) -> tuple[set[str], set[str]]:
    """(trait names, event property names) the workspace's data is known to have:
    traits of recently seen profiles, and properties of recent events and of the
    event schema registry. Used to flag variables a template uses that nothing has."""
    from segments.models import EventSchema
    from segments.selectors import (
        workspace_event_names,
        workspace_event_properties,
        workspace_trait_keys,
    )

    traits = set(workspace_trait_keys(workspace=workspace))
    names = workspace_event_names(workspace=workspace)
    properties: set[str] = set()
    for keys in workspace_event_properties(workspace=workspace, names=names[:50]).values():
        properties.update(keys)
    for declared in EventSchema.objects.filter(workspace=workspace).values_list(
        "properties", flat=True
    ):
        if isinstance(declared, dict):
            properties.update(declared)
    return traits, properties


# --------------------------------------------------------------------------- assets


def workspace_assets(
    *,
    workspace: Workspace,
    query: str = "",
    tag: str = "",
    kind: str = "",
    folder: AssetFolder | None = None,
    unfiled: bool = False,
) -> QuerySet[Asset]:
    assets = Asset.objects.filter(workspace=workspace).select_related("uploaded_by", "folder")
    if query:
        assets = assets.filter(
            Q(name__icontains=query)
            | Q(tags__contains=[query.lower()])
            | Q(alt_text__icontains=query)
        )
    if tag:
        assets = assets.filter(tags__contains=[tag])
    if kind:
        assets = assets.filter(kind=kind)
    if folder is not None:
        assets = assets.filter(folder=folder)
    elif unfiled:
        assets = assets.filter(folder__isnull=True)
    return assets.order_by("-created_at", "-pk")


def asset_get(*, workspace: Workspace, asset_id: int) -> Asset:
    asset = (
        Asset.objects.filter(workspace=workspace, pk=asset_id)
        .select_related("folder", "uploaded_by")
        .first()
    )
    if asset is None:
        raise Http404("No such asset in this workspace.")
    return asset


def assets_by_ids(*, workspace: Workspace, asset_ids: list[int]) -> list[Asset]:
    return list(Asset.objects.filter(workspace=workspace, pk__in=asset_ids))


def asset_usages(*, workspace: Workspace, asset: Asset) -> list[Template]:
    """Templates whose current version references the asset (journeys reach assets
    through their templates)."""
    return list(
        Template.objects.filter(workspace=workspace, asset_usages__asset=asset).order_by("name")
    )


def asset_tags(*, workspace: Workspace) -> list[str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT unnest(tags) AS tag FROM content_asset WHERE workspace_id = %s ORDER BY tag LIMIT 500",
            [workspace.pk],
        )
        return [row[0] for row in cursor.fetchall()]


def asset_folders(*, workspace: Workspace) -> QuerySet[AssetFolder]:
    return AssetFolder.objects.filter(workspace=workspace).order_by("name")


def asset_folder_get(*, workspace: Workspace, folder_id: int) -> AssetFolder:
    folder = AssetFolder.objects.filter(workspace=workspace, pk=folder_id).first()
    if folder is None:
        raise Http404("No such folder in this workspace.")
    return folder


def asset_storage_used(*, workspace: Workspace) -> int:
    return (
        Asset.objects.filter(workspace=workspace).aggregate(total=Sum("size_bytes"))["total"] or 0
    )


def asset_usage_counts(*, workspace: Workspace, asset_ids: list[int]) -> dict[int, int]:
    from django.db.models import Count

    rows = (
        AssetUsage.objects.filter(asset__workspace=workspace, asset_id__in=asset_ids)
        .values("asset_id")
        .annotate(n=Count("pk"))
    )
    return {row["asset_id"]: row["n"] for row in rows}
