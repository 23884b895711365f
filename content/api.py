"""REST API of the content library (DRF APIViews with explicit serializers): assets
(multipart upload, list, read, change, delete), folders, and templates (CRUD, versions,
restore, diff, render preview for a profile, test send).

Every write goes through content.services / content.assets, which validate it and
write the audit row; this module turns their errors into 4xx answers naming the
problem."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import Http404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from content import assets as asset_services
from content import selectors, services
from content.channels import CONTENT_MODELS, ContentError
from content.diffing import content_diff
from content.media import UploadRejected
from content.models import Asset, Channel, Template, TemplateVersion
from content.rendering import TemplateRenderError, build_context, render_content
from engagement_site.api import newest_first_pagination
from engagement_site.workspaces.authentication import HasWorkspacePermission, api_workspace
from engagement_site.workspaces.models import Workspace
from engagement_site.workspaces.services import AuditContext
from segments.api import MAX_PAGE_SIZE, PAGE_PARAMETERS, _page, _query
from segments.models import Profile
from segments.segment_api import Refused, StrictInput
from segments.selectors import profile_get, profile_list

VIEW, EDIT = "content.view", "content.edit"
ARCHIVED = "The template is archived; unarchive it to change its content."


# A method field that answers None where there is nothing (drf-spectacular does not read
# `str | None` return hints as nullable).
_NULLABLE_STRING = {"type": "string", "nullable": True}


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "The request conflicts with the current state."


class TooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"
    default_detail = "The file is too large."


class ProviderRefused(APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_code = "provider_refused"
    default_detail = "The provider did not take the message."


class MailServerRefused(APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_code = "mail_server_refused"
    default_detail = "The mail server did not take the message."


# UploadRejected carries no kind, only its message, which starts with the file's name:
# the size and quota refusals are told apart by how the message ends, which a file
# name cannot fake ("quota.png" is not over the quota).
_SIZE = r"[0-9.]+ (?:bytes|KB|MB|GB)"
_TOO_LARGE = re.compile(
    rf"(?:; (?:images|videos) may be at most {_SIZE}"
    rf"|, over its quota of {_SIZE} \({_SIZE} used\)\. Delete unused media first)\.\Z"
)


def _upload_refusal(error: UploadRejected) -> APIException:
    """413 for a file over its kind's size limit or over the workspace's quota; 400
    for every other refusal (type, markup, pixel flood, polyglot, damage)."""
    message = str(error)
    if _TOO_LARGE.search(message):
        return TooLarge(message)
    return Refused(message)


def _render_failed(error: TemplateRenderError) -> Response:
    """422 naming the locale and field that failed, beside the usual code and message
    (built here: the exception handler would file extra keys under `errors`)."""
    return Response(
        {
            "code": "render_failed",
            "message": str(error),
            "locale": error.locale,
            "field": error.field,
        },
        status=status.HTTP_422_UNPROCESSABLE_ENTITY,
    )


def _content_errors(error: ContentError) -> serializers.ValidationError:
    """400 with `errors` keyed "locale.field" (e.g. "fr.subject")."""
    return serializers.ValidationError(error.errors)


def _refusal(error: DjangoValidationError) -> APIException:
    if hasattr(error, "error_dict"):
        return serializers.ValidationError(error.message_dict)
    return Refused(" ".join(error.messages))


# --------------------------------------------------------------------------- assets


class AssetOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=Asset.Kind.choices)
    mime_type = serializers.CharField(help_text="Sniffed from the file's bytes.")
    size_bytes = serializers.IntegerField()
    checksum_sha256 = serializers.CharField()
    width = serializers.IntegerField(allow_null=True)
    height = serializers.IntegerField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True, help_text="Videos and animations.")
    frame_count = serializers.IntegerField(allow_null=True)
    status = serializers.ChoiceField(
        choices=Asset.Status.choices, help_text="processing until the metadata job has run."
    )
    progress = serializers.IntegerField(help_text="0-100 while processing.")
    error = serializers.CharField(help_text="Why processing failed; empty otherwise.")
    tags = serializers.ListField(child=serializers.CharField())
    alt_text = serializers.CharField()
    folder = serializers.IntegerField(source="folder_id", allow_null=True)
    public_url = serializers.CharField(
        help_text="The address messages use; it answers once a template uses the asset."
    )
    is_public = serializers.BooleanField()
    file_url = serializers.SerializerMethodField(help_text="The original (members only).")
    thumbnail_url = serializers.SerializerMethodField(help_text="null until processed.")
    uploaded_by = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    # The serving views are the UI's (session and membership), so the URLs open for
    # members. The workspace comes from the context: asset.workspace would cost a query
    # per asset of a list.
    def _url(self, name: str, asset: Asset) -> str:
        workspace = self.context["workspace"]
        path = reverse(name, kwargs={"workspace_slug": workspace.slug, "asset_id": asset.pk})
        return self.context["request"].build_absolute_uri(path)

    def get_file_url(self, asset: Asset) -> str:
        return self._url("content_asset_file", asset)

    @extend_schema_field(_NULLABLE_STRING)
    def get_thumbnail_url(self, asset: Asset) -> str | None:
        return self._url("content_asset_thumbnail", asset) if asset.thumbnail else None

    @extend_schema_field(_NULLABLE_STRING)
    def get_uploaded_by(self, asset: Asset) -> str | None:
        return asset.uploaded_by.get_username() if asset.uploaded_by_id else None


class AssetDetailOutput(AssetOutput):
    used_by = serializers.SerializerMethodField(
        help_text="Templates whose current version uses it."
    )

    @extend_schema_field(
        {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
            },
        }
    )
    def get_used_by(self, asset: Asset) -> list[dict[str, Any]]:
        templates = selectors.asset_usages(workspace=self.context["workspace"], asset=asset)
        return [{"id": template.pk, "name": template.name} for template in templates]


class AssetListQuery(serializers.Serializer):
    q = serializers.CharField(
        required=False, default="", allow_blank=True, help_text="Name, tag or alt text."
    )
    tag = serializers.CharField(required=False, default="", allow_blank=True)
    kind = serializers.ChoiceField(
        choices=Asset.Kind.choices, required=False, allow_blank=True, default=""
    )
    folder = serializers.IntegerField(required=False, allow_null=True, default=None)


class AssetUploadInput(StrictInput):
    file = serializers.FileField(
        help_text="PNG, JPEG, GIF, WebP, SVG, MP4 or WebM; the type is read from the bytes."
    )
    tags = serializers.ListField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        default=list,
        help_text='Repeat the field, or separate tags by commas ("spring, sale").',
    )
    folder = serializers.IntegerField(required=False, allow_null=True, default=None)

    def validate_tags(self, tags: list[str]) -> list[str]:
        return [tag for value in tags for tag in value.split(",") if tag.strip()]


class AssetUpdateInput(StrictInput):
    name = serializers.CharField(required=False, max_length=255)
    alt_text = serializers.CharField(required=False, allow_blank=True, max_length=300)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, max_length=30
    )
    folder = serializers.IntegerField(required=False, allow_null=True)


def _folder(workspace: Workspace, folder_id: int | None):
    """The folder named by an id of the request: 404 when it is another workspace's."""
    if folder_id is None:
        return None
    return selectors.asset_folder_get(workspace=workspace, folder_id=folder_id)


def _asset_context(request, workspace: Workspace) -> dict[str, Any]:
    return {"request": request, "workspace": workspace}


class AssetListApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": VIEW, "POST": EDIT}
    parser_classes = [MultiPartParser]

    @extend_schema(
        parameters=[AssetListQuery, *PAGE_PARAMETERS],
        operation_id="v1_assets_list",
        responses=_page("AssetPage", AssetOutput(many=True)),
        summary="List media assets",
        description="Newest first.",
    )
    def get(self, request):
        workspace = api_workspace(request).workspace
        query = _query(AssetListQuery, request)
        assets = selectors.workspace_assets(
            workspace=workspace,
            query=query["q"],
            tag=query["tag"].lower(),
            kind=query["kind"],
            folder=_folder(workspace, query["folder"]),
        )
        paginator = newest_first_pagination("created_at", max_page_size=MAX_PAGE_SIZE)
        page = paginator.paginate_queryset(assets, request, view=self)
        return paginator.get_paginated_response(
            AssetOutput(page, many=True, context=_asset_context(request, workspace)).data
        )

    @extend_schema(
        request={"multipart/form-data": AssetUploadInput},
        responses={201: AssetDetailOutput},
        summary="Upload a media file",
        description="One file per request. The file is checked from its bytes before "
        "anything is stored: 400 names the problem (not an accepted type, an SVG with "
        "script, a pixel flood, a polyglot, a damaged image); 413 (`too_large`) when it "
        "is over its kind's size limit or the workspace's quota. Either way nothing is "
        "stored. Metadata and the thumbnail are made by a background job (`status` is "
        "`processing` until then). Audited (`asset.upload`).",
    )
    def post(self, request):
        payload = AssetUploadInput(data=request.data)
        payload.is_valid(raise_exception=True)
        workspace = api_workspace(request).workspace
        data = payload.validated_data
        try:
            asset = asset_services.asset_upload(
                workspace=workspace,
                uploaded_file=data["file"],
                context=AuditContext.from_request(request),
                folder=_folder(workspace, data["folder"]),
                tags=data["tags"],
            )
        except UploadRejected as error:
            raise _upload_refusal(error) from None
        return Response(
            AssetDetailOutput(asset, context=_asset_context(request, workspace)).data,
            status=status.HTTP_201_CREATED,
        )


class AssetApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": VIEW, "PATCH": EDIT, "DELETE": EDIT}
    parser_classes = [JSONParser]

    @extend_schema(responses=AssetDetailOutput, summary="Get a media asset")
    def get(self, request, asset_id: int):
        workspace = api_workspace(request).workspace
        asset = selectors.asset_get(workspace=workspace, asset_id=asset_id)
        return Response(AssetDetailOutput(asset, context=_asset_context(request, workspace)).data)

    @extend_schema(
        request=AssetUpdateInput,
        responses=AssetDetailOutput,
        summary="Change a media asset",
        description="Name, alt text, tags, folder (null: no folder). Audited (`asset.update`).",
    )
    def patch(self, request, asset_id: int):
        workspace = api_workspace(request).workspace
        asset = selectors.asset_get(workspace=workspace, asset_id=asset_id)
        payload = AssetUpdateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        if "folder" in data:
            data["folder"] = _folder(workspace, data["folder"])
        try:
            asset = asset_services.asset_update(
                asset=asset, context=AuditContext.from_request(request), **data
            )
        except DjangoValidationError as error:
            raise _refusal(error) from None
        return Response(AssetDetailOutput(asset, context=_asset_context(request, workspace)).data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "force", OpenApiTypes.BOOL, description="Delete even while templates use it."
            )
        ],
        responses={204: None},
        summary="Delete a media asset",
        description="409 while templates use it (the message names them) unless "
        "`force=true`. Audited (`asset.delete`).",
    )
    def delete(self, request, asset_id: int):
        asset = selectors.asset_get(workspace=api_workspace(request).workspace, asset_id=asset_id)
        force = request.query_params.get("force", "").lower() in ("1", "true", "yes")
        try:
            asset_services.asset_delete(
                asset=asset, context=AuditContext.from_request(request), force=force
            )
        except asset_services.AssetInUse as error:
            raise Conflict(" ".join(error.messages)) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class FolderOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    parent = serializers.IntegerField(source="parent_id", allow_null=True)


class FolderInput(StrictInput):
    name = serializers.CharField(max_length=100)
    parent = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="Default: at the top."
    )


# Renaming only: the services have no move, so `parent` is refused, not ignored.
class FolderRenameInput(StrictInput):
    name = serializers.CharField(max_length=100)


class FolderListApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": VIEW, "POST": EDIT}

    @extend_schema(responses=FolderOutput(many=True), summary="List asset folders")
    def get(self, request):
        folders = selectors.asset_folders(workspace=api_workspace(request).workspace)
        return Response(FolderOutput(folders, many=True).data)

    @extend_schema(
        request=FolderInput,
        responses={201: FolderOutput},
        summary="Create an asset folder",
        description="400 when the name is taken beside it. Audited (`asset_folder.create`).",
    )
    def post(self, request):
        payload = FolderInput(data=request.data)
        payload.is_valid(raise_exception=True)
        workspace = api_workspace(request).workspace
        try:
            folder = asset_services.asset_folder_create(
                workspace=workspace,
                name=payload.validated_data["name"],
                parent=_folder(workspace, payload.validated_data["parent"]),
                context=AuditContext.from_request(request),
            )
        except DjangoValidationError as error:
            raise _refusal(error) from None
        return Response(FolderOutput(folder).data, status=status.HTTP_201_CREATED)


class FolderApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"PATCH": EDIT, "DELETE": EDIT}

    @extend_schema(
        request=FolderRenameInput,
        responses=FolderOutput,
        summary="Rename an asset folder",
        description="Audited (`asset_folder.rename`).",
    )
    def patch(self, request, folder_id: int):
        workspace = api_workspace(request).workspace
        folder = selectors.asset_folder_get(workspace=workspace, folder_id=folder_id)
        payload = FolderRenameInput(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            folder = asset_services.asset_folder_rename(
                folder=folder,
                name=payload.validated_data["name"],
                context=AuditContext.from_request(request),
            )
        except DjangoValidationError as error:
            raise _refusal(error) from None
        return Response(FolderOutput(folder).data)

    @extend_schema(
        responses={204: None},
        summary="Delete an asset folder",
        description="With its sub-folders; their assets stay, in no folder. Audited "
        "(`asset_folder.delete`).",
    )
    def delete(self, request, folder_id: int):
        folder = selectors.asset_folder_get(
            workspace=api_workspace(request).workspace, folder_id=folder_id
        )
        asset_services.asset_folder_delete(
            folder=folder, context=AuditContext.from_request(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


# --------------------------------------------------------------------------- templates


@extend_schema_field(
    {
        "type": "object",
        "description": 'Fields per locale: {"default": {...}, "fr": {...}}. The fields '
        "depend on the channel (docs/content.md); every string may use Liquid.",
        "additionalProperties": {"type": "object", "additionalProperties": True},
        "example": {
            "default": {
                "subject": 'Hi {{ profile.first_name | default: "there" }}',
                "html": "<p>Hello</p>",
            }
        },
    }
)
class ContentField(serializers.JSONField):
    pass


class VersionOutput(serializers.Serializer):
    number = serializers.IntegerField()
    content = ContentField()
    locales = serializers.ListField(child=serializers.CharField())
    note = serializers.CharField()
    warnings = serializers.ListField(
        child=serializers.DictField(child=serializers.CharField()),
        help_text="Variables no known trait or event property has ({locale, field, variable, message}).",
    )
    author = serializers.SerializerMethodField(
        help_text="Who saved it; null for a version the system wrote (an import, an API key)."
    )
    created_at = serializers.DateTimeField()

    @extend_schema_field(_NULLABLE_STRING)
    def get_author(self, version: TemplateVersion) -> str | None:
        return version.author.get_username() if version.author_id else None


class VersionSummaryOutput(VersionOutput):
    content = None


class TemplateOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    channel = serializers.ChoiceField(choices=Channel.choices)
    description = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    archived = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    current_version = VersionOutput()

    def get_archived(self, template: Template) -> bool:
        return template.archived_at is not None


class TemplateListQuery(serializers.Serializer):
    channel = serializers.ChoiceField(
        choices=Channel.choices, required=False, allow_blank=True, default=""
    )
    q = serializers.CharField(required=False, allow_blank=True, default="")
    archived = serializers.BooleanField(
        required=False, default=False, help_text="List archived templates instead."
    )


class TemplateCreateInput(StrictInput):
    name = serializers.CharField(max_length=200)
    channel = serializers.ChoiceField(choices=Channel.choices)
    content = ContentField()
    description = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=500
    )
    tags = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, default=list
    )
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)


class TemplateUpdateInput(StrictInput):
    name = serializers.CharField(required=False, max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=500)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False)
    content = ContentField(
        required=False, help_text="New content: saved as a new version when it differs."
    )
    base_version = serializers.IntegerField(
        required=False, help_text="The version you edited; 409 if someone saved after it."
    )
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)


def _template_data(template: Template) -> dict[str, Any]:
    return TemplateOutput(template).data


class TemplateListApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": VIEW, "POST": EDIT}

    @extend_schema(
        parameters=[TemplateListQuery, *PAGE_PARAMETERS],
        operation_id="v1_templates_list",
        responses=_page("TemplatePage", TemplateOutput(many=True)),
        summary="List templates",
        description="Most recently changed first, with each one's current version.",
    )
    def get(self, request):
        workspace = api_workspace(request).workspace
        query = _query(TemplateListQuery, request)
        templates = selectors.workspace_templates(
            workspace=workspace,
            channel=query["channel"],
            query=query["q"],
            include_archived=query["archived"],
        )
        if query["archived"]:
            templates = templates.filter(archived_at__isnull=False)
        paginator = newest_first_pagination("updated_at", max_page_size=MAX_PAGE_SIZE)
        page = paginator.paginate_queryset(templates, request, view=self)
        return paginator.get_paginated_response(TemplateOutput(page, many=True).data)

    @extend_schema(
        request=TemplateCreateInput,
        responses={201: TemplateOutput},
        summary="Create a template",
        description="Version 1 is the given content. 400 with `errors` keyed "
        '"locale.field" when a field is missing, too long or its Liquid does not parse. '
        "Audited (`template.create`).",
    )
    def post(self, request):
        payload = TemplateCreateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            template = services.template_create(
                workspace=api_workspace(request).workspace,
                context=AuditContext.from_request(request),
                **payload.validated_data,
            )
        except ContentError as error:
            raise _content_errors(error) from None
        except DjangoValidationError as error:
            raise _refusal(error) from None
        return Response(_template_data(template), status=status.HTTP_201_CREATED)


class TemplateApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": VIEW, "PATCH": EDIT, "DELETE": EDIT}

    @extend_schema(responses=TemplateOutput, summary="Get a template")
    def get(self, request, template_id: int):
        template = selectors.template_get(
            workspace=api_workspace(request).workspace, template_id=template_id
        )
        return Response(_template_data(template))

    @extend_schema(
        request=TemplateUpdateInput,
        responses=TemplateOutput,
        summary="Change a template",
        description="Name, description, tags, and content (a new version when it "
        "differs). All or nothing: with `base_version`, a save made by someone else since "
        "then is answered 409 and nothing is written, nor is anything when one field is "
        "refused. 409 for new content of an archived template. Audited "
        "(`template.update`, `template.save`).",
    )
    def patch(self, request, template_id: int):
        workspace = api_workspace(request).workspace
        template = selectors.template_get(workspace=workspace, template_id=template_id)
        payload = TemplateUpdateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        context = AuditContext.from_request(request)
        if template.archived_at is not None and "content" in data:
            raise Conflict(ARCHIVED)
        try:
            # One transaction: a taken name must not leave the new version saved.
            with transaction.atomic():
                if "content" in data:
                    services.template_save(
                        template=template,
                        content=data["content"],
                        context=context,
                        base_version=data.get("base_version"),
                        note=data["note"],
                    )
                if {"name", "description", "tags"} & set(data):
                    services.template_update(
                        template=template,
                        context=context,
                        name=data.get("name"),
                        description=data.get("description"),
                        tags=data.get("tags"),
                    )
        except services.TemplateConflict as error:
            raise Conflict(" ".join(error.messages)) from None
        except ContentError as error:
            raise _content_errors(error) from None
        except DjangoValidationError as error:
            raise _refusal(error) from None
        return Response(
            _template_data(selectors.template_get(workspace=workspace, template_id=template.pk))
        )

    @extend_schema(
        responses={204: None},
        summary="Delete a template",
        description="With all its versions; 400 while a journey pins one of them "
        "(archive it instead). Audited (`template.delete`).",
    )
    def delete(self, request, template_id: int):
        template = selectors.template_get(
            workspace=api_workspace(request).workspace, template_id=template_id
        )
        try:
            services.template_delete(template=template, context=AuditContext.from_request(request))
        except DjangoValidationError as error:
            raise _refusal(error) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class TemplateArchiveApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"POST": EDIT}
    archived = True

    @extend_schema(
        request=None, responses=TemplateOutput, summary="Archive or unarchive a template"
    )
    def post(self, request, template_id: int):
        template = selectors.template_get(
            workspace=api_workspace(request).workspace, template_id=template_id
        )
        template = services.template_archive(
            template=template, context=AuditContext.from_request(request), archived=self.archived
        )
        return Response(_template_data(template))


class TemplateUnarchiveApi(TemplateArchiveApi):
    archived = False


class TemplateVersionListApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": VIEW}

    @extend_schema(
        responses=VersionSummaryOutput(many=True),
        summary="List a template's versions",
        description="Newest first, without their content (get one version for it).",
    )
    def get(self, request, template_id: int):
        workspace = api_workspace(request).workspace
        template = selectors.template_get(workspace=workspace, template_id=template_id)
        versions = selectors.template_versions(workspace=workspace, template=template)
        return Response(VersionSummaryOutput(versions, many=True).data)


class TemplateVersionApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": VIEW}

    @extend_schema(responses=VersionOutput, summary="Get one version of a template")
    def get(self, request, template_id: int, number: int):
        workspace = api_workspace(request).workspace
        template = selectors.template_get(workspace=workspace, template_id=template_id)
        version = selectors.template_version_get(
            workspace=workspace, template=template, number=number
        )
        return Response(VersionOutput(version).data)


class TemplateRestoreApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"POST": EDIT}

    @extend_schema(
        request=None,
        responses=TemplateOutput,
        summary="Restore a version",
        description="Its content becomes a new current version (none when it is the "
        "current content already). 409 for an archived template. Audited "
        "(`template.restore`).",
    )
    def post(self, request, template_id: int, number: int):
        workspace = api_workspace(request).workspace
        template = selectors.template_get(workspace=workspace, template_id=template_id)
        version = selectors.template_version_get(
            workspace=workspace, template=template, number=number
        )
        if template.archived_at is not None:
            raise Conflict(ARCHIVED)
        try:
            services.template_restore(
                template=template, version=version, context=AuditContext.from_request(request)
            )
        except ContentError as error:
            raise _content_errors(error) from None
        except DjangoValidationError as error:
            raise _refusal(error) from None
        return Response(
            _template_data(selectors.template_get(workspace=workspace, template_id=template.pk))
        )


# ?from=1&to=3, as the versions page has it; `from` is a Python keyword, hence
# get_fields rather than class attributes.
class DiffQuery(serializers.Serializer):
    def get_fields(self) -> dict[str, serializers.Field]:
        return {
            "from": serializers.IntegerField(min_value=1, help_text="The older version."),
            "to": serializers.IntegerField(min_value=1, help_text="The newer version."),
        }


class FieldDiffOutput(serializers.Serializer):
    locale = serializers.CharField()
    field = serializers.CharField()
    status = serializers.ChoiceField(choices=["changed", "added", "removed"])
    lines = serializers.ListField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text='[sign, text] pairs: " " same, "+" added, "-" removed, "@" hunk header.',
    )


class TemplateDiffApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": VIEW}

    @extend_schema(
        parameters=[DiffQuery],
        responses=FieldDiffOutput(many=True),
        summary="Compare two versions",
        description="Every field that differs, line by line; 404 for a version the "
        "template does not have.",
    )
    def get(self, request, template_id: int):
        workspace = api_workspace(request).workspace
        template = selectors.template_get(workspace=workspace, template_id=template_id)
        query = _query(DiffQuery, request)
        old = selectors.template_version_get(
            workspace=workspace, template=template, number=query["from"]
        )
        new = selectors.template_version_get(
            workspace=workspace, template=template, number=query["to"]
        )
        diffs = content_diff(old.content, new.content)
        return Response(
            [
                {
                    "locale": d.locale,
                    "field": d.field,
                    "status": d.status,
                    "lines": [list(line) for line in d.lines],
                }
                for d in diffs
            ]
        )


class EventInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    properties = serializers.DictField(required=False, default=dict)
    timestamp = serializers.DateTimeField(required=False, allow_null=True, default=None)


class RenderInput(StrictInput):
    profile_id = serializers.IntegerField(required=False, help_text="Render for this profile.")
    user_id = serializers.CharField(
        required=False, help_text="Or for the profile with this user id."
    )
    locale = serializers.CharField(
        required=False, allow_blank=True, default=None, help_text="Default: the profile's locale."
    )
    event = EventInput(required=False, help_text="The trigger event `{{ event.* }}` reads.")
    version = serializers.IntegerField(required=False, help_text="Default: the current version.")
    content = ContentField(
        required=False, help_text="Render this unsaved content instead of a version."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        for one, other in (("profile_id", "user_id"), ("version", "content")):
            if one in attrs and other in attrs:
                raise serializers.ValidationError({other: [f"Give {one} or {other}, not both."]})
        return attrs


class RenderOutput(serializers.Serializer):
    locale = serializers.CharField(help_text="The translation used (fr-CA -> fr -> default).")
    version = serializers.IntegerField(
        allow_null=True, help_text="The version rendered; null for unsaved content."
    )
    fields = serializers.DictField(
        help_text="Every field rendered; email adds inlined HTML and the text part."
    )
    sms = serializers.DictField(
        allow_null=True, help_text="SMS only: encoding, characters, segments."
    )
    warnings = serializers.ListField(
        child=serializers.DictField(), help_text="The version's (or the content's) warnings."
    )


class RenderFailedOutput(serializers.Serializer):
    code = serializers.CharField(default="render_failed")
    message = serializers.CharField(help_text='"locale.field: what went wrong".')
    locale = serializers.CharField()
    field = serializers.CharField()


def _render_profile(workspace: Workspace, data: dict[str, Any]) -> Profile | None:
    """The profile named by id or user id, inside the workspace (404 otherwise)."""
    if "profile_id" in data:
        return profile_get(workspace=workspace, profile_id=data["profile_id"])
    if data.get("user_id"):
        profile = profile_list(workspace=workspace, user_id=data["user_id"]).first()
        if profile is None:
            raise Http404("No profile with that user id in this workspace.")
        return profile
    return None


def _sms_stats(rendered) -> dict[str, Any] | None:
    sms = rendered.sms
    if sms is None:
        return None
    return {
        "encoding": sms.encoding,
        "characters": sms.characters,
        "segments": sms.segments,
        "per_segment": sms.per_segment,
        "remaining": sms.remaining,
    }


class TemplateRenderApi(APIView):
    permission_classes = [HasWorkspacePermission]
    # A preview writes nothing: whoever may read the template may see it rendered.
    required_permissions = {"POST": VIEW}

    @extend_schema(
        request=RenderInput,
        responses={200: RenderOutput, 422: RenderFailedOutput},
        summary="Render a template",
        description="Render a version (or unsaved content) for a profile of this "
        "workspace, in its locale, with a trigger event; nothing is sent or stored. "
        "404 for a profile or version this workspace does not have; 400 with `errors` "
        'keyed "locale.field" for unsaved content that does not validate; 422 '
        "(`render_failed`) when the template does not render, naming the `locale` and "
        "`field`.",
    )
    def post(self, request, template_id: int):
        workspace = api_workspace(request).workspace
        template = selectors.template_get(workspace=workspace, template_id=template_id)
        payload = RenderInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        profile = _render_profile(workspace, data)
        version_number = None
        if "content" in data:
            try:
                content, warnings = services.template_content_check(
                    workspace=workspace, channel=template.channel, content=data["content"]
                )
            except ContentError as error:
                raise _content_errors(error) from None
        else:
            version = (
                selectors.template_version_get(
                    workspace=workspace, template=template, number=data["version"]
                )
                if "version" in data
                else template.current_version
            )
            content, version_number, warnings = version.content, version.number, version.warnings
        locale = data["locale"] if data["locale"] is not None else _profile_locale(profile)
        context = build_context(workspace=workspace, profile=profile, event=data.get("event"))
        try:
            rendered = render_content(
                channel=template.channel, content=content, locale=locale, context=context
            )
        except TemplateRenderError as error:
            return _render_failed(error)
        return Response(
            RenderOutput(
                {
                    "locale": rendered.locale,
                    "version": version_number,
                    "fields": rendered.fields,
                    "sms": _sms_stats(rendered),
                    "warnings": warnings,
                }
            ).data
        )


def _profile_locale(profile: Profile | None) -> str:
    return profile.locale if profile is not None else ""


class TestSendInput(StrictInput):
    to = serializers.CharField(max_length=254, help_text="An email address (email templates).")
    locale = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Default: the profile's locale."
    )
    profile_id = serializers.IntegerField(required=False, help_text="Personalize for this profile.")
    event = EventInput(required=False, help_text="The trigger event `{{ event.* }}` reads.")


class TestSendOutput(serializers.Serializer):
    detail = serializers.CharField(help_text="What was sent, to whom.")


class TemplateTestSendApi(APIView):
    permission_classes = [HasWorkspacePermission]
    # As in the editor: whoever may preview may send the preview to one address.
    required_permissions = {"POST": VIEW}

    @extend_schema(
        request=TestSendInput,
        responses={200: TestSendOutput, 422: RenderFailedOutput},
        summary="Send a test of the current version",
        description="Once, to one address, subject prefixed [Test]. 400 for an address "
        "that is not one; 404 for a profile this workspace does not have; 409 for "
        "channels without a configured delivery channel yet; 422 (`render_failed`) when "
        "the version does not render; 502 when the mail server or the provider refuses the "
        "message. SMS and WhatsApp go to the phone number in `to`, webhooks to the "
        "template's URL, through the workspace's channel settings; push and in-app "
        "answer 409. "
        "Audited (`template.test_send`, without the address).",
    )
    def post(self, request, template_id: int):
        workspace = api_workspace(request).workspace
        template = selectors.template_get(workspace=workspace, template_id=template_id)
        payload = TestSendInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        profile = _render_profile(workspace, data)
        context = build_context(workspace=workspace, profile=profile, event=data.get("event"))
        try:
            detail = services.template_send_test(
                template=template,
                version=template.current_version,
                locale=data["locale"] or _profile_locale(profile),
                render_context=context,
                to=data["to"],
                context=AuditContext.from_request(request),
            )
        except services.TestSendUnavailable as error:
            raise Conflict(" ".join(error.messages)) from None
        except TemplateRenderError as error:
            return _render_failed(error)
        except DjangoValidationError as error:
            raise _refusal(error) from None
        except services.TestSendFailed as error:
            raise ProviderRefused(str(error)) from None
        except OSError as error:  # SMTP down or refusing
            raise MailServerRefused(f"The mail server did not take the message: {error}") from None
        return Response(TestSendOutput({"detail": detail}).data)


class ChannelFieldOutput(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    widget = serializers.CharField()
    help = serializers.CharField()
    liquid = serializers.BooleanField(help_text="Whether the field is rendered with Liquid.")
    required = serializers.BooleanField()
    max_length = serializers.IntegerField(allow_null=True)
    choices = serializers.ListField(child=serializers.CharField(), required=False)


class ChannelFieldsApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": VIEW}

    @extend_schema(
        responses={
            200: {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "object"}},
            }
        },
        summary="The fields of each channel",
        description="{channel: [field, ...]}: what a template's content holds per locale.",
    )
    def get(self, request):
        api_workspace(request)
        return Response(
            {
                channel: ChannelFieldOutput(model.form_fields(), many=True).data
                for channel, model in CONTENT_MODELS.items()
            }
        )
