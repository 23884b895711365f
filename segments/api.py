"""REST API views of the segments app (DRF APIViews with explicit serializers):
profiles (list, get, trait updates, events, export, erase), events, rejected events
and event schemas."""

from __future__ import annotations

import math
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from engagement_site.workspaces.authentication import HasWorkspacePermission, api_workspace
from engagement_site.workspaces.models import AuditAction, Workspace
from engagement_site.workspaces.services import AuditContext, audit_record
from segments import privacy, selectors
from segments.forms import event_schema_properties_errors
from segments.models import EventSchema, Profile

MAX_PAGE_SIZE = 500

# --------------------------------------------------------------------------- pagination


class IdCursor(CursorPagination):
    """Newest first by id: unique and never changes, unlike last_seen."""

    ordering = "-id"
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE


class EventNameCursor(CursorPagination):
    ordering = "event_name"
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE


class NewestFirstPagination:
    """Keyset pagination on (a time column, id), newest first, for the event and
    quarantine tables (see selectors.TimeCursor). Pages only forward: `next` is the
    URL of the following page, null on the last one."""

    cursor_query_param = "cursor"
    page_size_query_param = "page_size"
    page_size = IdCursor.page_size

    def __init__(self, *, time_field: str) -> None:
        self.time_field = time_field
        self.next_cursor: selectors.TimeCursor | None = None
        self.request: Request | None = None

    def paginate_queryset(self, queryset, request: Request) -> list:
        self.request = request
        after = None
        raw = request.query_params.get(self.cursor_query_param)
        if raw:
            after = selectors.TimeCursor.decode(raw)
            if after is None:
                raise NotFound("Invalid cursor")
        size = self._page_size(request)
        page, self.next_cursor = selectors.newest_first_page(
            queryset, time_field=self.time_field, after=after, size=size
        )
        return page

    def _page_size(self, request: Request) -> int:
        try:
            size = int(request.query_params.get(self.page_size_query_param, ""))
        except ValueError:
            return self.page_size
        return max(1, min(size, MAX_PAGE_SIZE))

    def get_paginated_response(self, data: list) -> Response:
        next_url = None
        if self.next_cursor is not None and self.request is not None:
            next_url = replace_query_param(
                self.request.build_absolute_uri(),
                self.cursor_query_param,
                self.next_cursor.encode(),
            )
        return Response({"next": next_url, "results": data})


PAGE_PARAMETERS = [
    OpenApiParameter(
        "cursor", OpenApiTypes.STR, description="The `next` (or `previous`) link's cursor."
    ),
    OpenApiParameter(
        "page_size",
        OpenApiTypes.INT,
        description=f"Rows per page (default 50, at most {MAX_PAGE_SIZE}).",
    ),
]


def _page(name: str, item: serializers.Serializer, *, backwards: bool = True):
    """The schema of a page: {next, previous, results} (newest-first keyset lists have
    no `previous`)."""
    fields: dict[str, serializers.Field] = {
        "next": serializers.URLField(allow_null=True, help_text="The next page; null on the last."),
    }
    if backwards:
        fields["previous"] = serializers.URLField(
            allow_null=True, help_text="The previous page; null on the first."
        )
    fields["results"] = item
    return inline_serializer(name=name, fields=fields)


def _errors(error: DjangoValidationError, field: str) -> serializers.ValidationError:
    detail = error.message_dict if hasattr(error, "error_dict") else error.messages
    return serializers.ValidationError({field: detail})


# --------------------------------------------------------------------------- serializers


class ProfileOutput(serializers.Serializer):
    id = serializers.IntegerField()
    user_id = serializers.CharField(help_text="Blank while the person is known only anonymously.")
    anonymous_ids = serializers.ListField(child=serializers.CharField())
    email = serializers.CharField()
    phone = serializers.CharField()
    time_zone = serializers.CharField()
    locale = serializers.CharField()
    traits = serializers.DictField()
    first_seen = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()
    created_at = serializers.DateTimeField()


class IdentityOutput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["user_id", "anonymous_id"])
    value = serializers.CharField()
    created_at = serializers.DateTimeField()


class MergeOutput(serializers.Serializer):
    merged_at = serializers.DateTimeField()
    reason = serializers.ChoiceField(choices=["identify", "alias"])
    merged_profile_id = serializers.IntegerField(help_text="The profile that no longer exists.")
    merged_identities = serializers.ListField(child=serializers.JSONField())
    merged_traits = serializers.DictField()
    events_moved = serializers.IntegerField()
    message_id = serializers.CharField()


class ProfileDetailOutput(ProfileOutput):
    identities = IdentityOutput(many=True)
    merges = MergeOutput(many=True)


class ProfileListQuery(serializers.Serializer):
    user_id = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Exact user id."
    )
    email = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Exact email."
    )
    search = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="Part of the user id, the email or the name trait (case-insensitive).",
    )


class ProfileTraitsInput(serializers.Serializer):
    traits = serializers.DictField(
        allow_empty=False,
        help_text="Merged into the traits (JSON Merge Patch): null removes a key, an object "
        "merges into an object, anything else replaces. email, phone, time_zone and locale "
        "also update the profile's columns of the same name.",
    )

    def validate_traits(self, traits: dict) -> dict:
        """Only values PostgreSQL's jsonb and our JSON encoder can hold: no NUL
        characters, finite numbers, integers within 64 bits."""

        def check(value, path: str) -> None:
            if isinstance(value, str) and "\x00" in value:
                raise serializers.ValidationError(f"{path}: contains a NUL character")
            if isinstance(value, bool) or value is None:
                return
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                raise serializers.ValidationError(f"{path}: integer outside the 64-bit range")
            if isinstance(value, float) and not math.isfinite(value):
                raise serializers.ValidationError(f"{path}: not a finite number")
            if isinstance(value, dict):
                for key, item in value.items():
                    if "\x00" in key:
                        raise serializers.ValidationError(f"{path}: a key contains a NUL character")
                    check(item, f"{path}.{key}")
            if isinstance(value, list):
                for index, item in enumerate(value):
                    check(item, f"{path}[{index}]")

        for key, value in traits.items():
            check(value, f"traits.{key}" if "\x00" not in key else "traits")
            if "\x00" in key:
                raise serializers.ValidationError("traits: a key contains a NUL character")
        return traits


class ExportEventOutput(serializers.Serializer):
    id = serializers.IntegerField()
    type = serializers.ChoiceField(
        choices=["track", "identify", "page", "screen", "group", "alias"]
    )
    name = serializers.CharField()
    timestamp = serializers.DateTimeField(help_text="Corrected for the device's clock skew.")
    original_timestamp = serializers.DateTimeField(allow_null=True)
    sent_at = serializers.DateTimeField(allow_null=True)
    received_at = serializers.DateTimeField()
    message_id = serializers.CharField()
    properties = serializers.DictField()
    context = serializers.DictField()
    violations = serializers.ListField(child=serializers.JSONField())


class EventOutput(ExportEventOutput):
    profile_id = serializers.IntegerField()


class EventFilterQuery(serializers.Serializer):
    name = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Exact event name."
    )


class EventListQuery(EventFilterQuery):
    user_id = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="The profile's user id."
    )
    since = serializers.DateTimeField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Events at or after this time (ISO 8601).",
    )
    until = serializers.DateTimeField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Events before this time (ISO 8601).",
    )


class RejectedEventOutput(serializers.Serializer):
    id = serializers.IntegerField()
    received_at = serializers.DateTimeField()
    code = serializers.CharField()
    reason = serializers.CharField()
    event_type = serializers.CharField()
    event_name = serializers.CharField()
    message_id = serializers.CharField()
    payload = serializers.JSONField(allow_null=True)
    raw = serializers.CharField(help_text="The payload as text when it was not JSON.")


class RejectedEventListQuery(serializers.Serializer):
    code = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Exact rejection code."
    )


class TraitChangeOutput(serializers.Serializer):
    changed_at = serializers.DateTimeField()
    trait = serializers.CharField(help_text="Dotted path for nested traits.")
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)
    source = serializers.CharField()
    message_id = serializers.CharField()


class ProfileExportOutput(serializers.Serializer):
    format = serializers.CharField(help_text=f"Always {privacy.EXPORT_FORMAT}.")
    exported_at = serializers.DateTimeField()
    workspace = serializers.CharField(help_text="The workspace's slug.")
    profile = ProfileOutput()
    identities = IdentityOutput(many=True)
    merges = MergeOutput(many=True)
    trait_changes = TraitChangeOutput(many=True)
    events = ExportEventOutput(many=True)
    rejected_events = RejectedEventOutput(many=True)


class ProfileEraseOutput(serializers.Serializer):
    profile_id = serializers.IntegerField()
    erased = serializers.DictField(
        child=serializers.IntegerField(), help_text="Rows removed, by kind."
    )


PROPERTY_SPEC_SCHEMA = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": EventSchema.PropertyType.values},
        "required": {"type": "boolean", "default": False},
    },
    "required": ["type"],
    "additionalProperties": False,
}


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": PROPERTY_SPEC_SCHEMA,
        "example": {"plan": {"type": "string", "required": True}, "seats": {"type": "integer"}},
    }
)
class SchemaPropertiesField(serializers.JSONField):
    pass


class EventSchemaOutput(serializers.Serializer):
    id = serializers.IntegerField()
    event_name = serializers.CharField()
    properties = SchemaPropertiesField()
    allow_additional_properties = serializers.BooleanField()
    updated_at = serializers.DateTimeField()


class EventSchemaInput(serializers.Serializer):
    event_name = serializers.CharField(max_length=200)
    properties = SchemaPropertiesField()
    allow_additional_properties = serializers.BooleanField(default=True)

    def validate_properties(self, value: Any) -> Any:
        errors = event_schema_properties_errors(value)
        if errors:
            raise serializers.ValidationError(errors)
        return value


# --------------------------------------------------------------------------- profiles


def _query(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data


def _profile_detail(workspace: Workspace, profile: Profile) -> dict[str, Any]:
    identities = selectors.profile_identities(workspace=workspace, profile=profile)
    merges = selectors.profile_merges(workspace=workspace, profile=profile)
    return {
        **ProfileOutput(profile).data,
        "identities": IdentityOutput(identities, many=True).data,
        "merges": MergeOutput(merges, many=True).data,
    }


class ProfileListApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": "segments.view"}

    @extend_schema(
        parameters=[ProfileListQuery, *PAGE_PARAMETERS],
        operation_id="v1_profiles_list",
        responses=_page("ProfilePage", ProfileOutput(many=True)),
        summary="List profiles",
        description="Newest profiles first.",
    )
    def get(self, request):
        profiles = selectors.profile_list(
            workspace=api_workspace(request).workspace, **_query(ProfileListQuery, request)
        )
        paginator = IdCursor()
        page = paginator.paginate_queryset(profiles, request, view=self)
        return paginator.get_paginated_response(ProfileOutput(page, many=True).data)


class ProfileApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": "segments.view", "PATCH": "segments.edit"}

    @extend_schema(responses=ProfileDetailOutput, summary="Get a profile")
    def get(self, request, profile_id: int):
        workspace = api_workspace(request).workspace
        profile = selectors.profile_get(workspace=workspace, profile_id=profile_id)
        return Response(_profile_detail(workspace, profile))

    @extend_schema(
        request=ProfileTraitsInput,
        responses=ProfileDetailOutput,
        summary="Update a profile's traits",
        description="Each changed trait is recorded in the trait history with the source `api`.",
    )
    def patch(self, request, profile_id: int):
        # The profile first: another workspace's id is a 404 whatever the body says.
        workspace = api_workspace(request).workspace
        profile = selectors.profile_get(workspace=workspace, profile_id=profile_id)
        payload = ProfileTraitsInput(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            profile = privacy.profile_traits_update(
                workspace=workspace,
                profile=profile,
                patch=payload.validated_data["traits"],
                context=AuditContext.from_request(request),
            )
        except DjangoValidationError as error:
            raise _errors(error, "traits") from None
        return Response(_profile_detail(workspace, profile))


class ProfileEventListApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": "segments.view"}

    @extend_schema(
        parameters=[EventFilterQuery, *PAGE_PARAMETERS],
        operation_id="v1_profiles_events_list",
        responses=_page("ProfileEventPage", EventOutput(many=True), backwards=False),
        summary="List a profile's events",
        description="Newest first (by the corrected timestamp).",
    )
    def get(self, request, profile_id: int):
        workspace = api_workspace(request).workspace
        profile = selectors.profile_get(workspace=workspace, profile_id=profile_id)
        events = selectors.profile_events(
            workspace=workspace, profile=profile, **_query(EventFilterQuery, request)
        )
        paginator = NewestFirstPagination(time_field="timestamp")
        page = paginator.paginate_queryset(events, request)
        return paginator.get_paginated_response(EventOutput(page, many=True).data)


class ProfileExportApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": "segments.export"}

    @extend_schema(
        responses=ProfileExportOutput,
        summary="Export everything held about a profile",
        description="For a data subject's access request. Recorded in the audit log.",
    )
    def get(self, request, profile_id: int):
        workspace = api_workspace(request).workspace
        profile = selectors.profile_get(workspace=workspace, profile_id=profile_id)
        document = privacy.profile_export(
            workspace=workspace, profile=profile, context=AuditContext.from_request(request)
        )
        return Response(document)


class ProfileEraseApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"POST": "segments.erase"}

    @extend_schema(
        request=None,
        responses=ProfileEraseOutput,
        summary="Erase a profile",
        description="Deletes the profile, its events, identities, merges, trait history "
        "and the quarantined events that carry its ids, for a data subject's erasure "
        "request. Cannot be undone. Recorded in the audit log with the counts only.",
    )
    def post(self, request, profile_id: int):
        workspace = api_workspace(request).workspace
        profile = selectors.profile_get(workspace=workspace, profile_id=profile_id)
        counts = privacy.profile_erase(
            workspace=workspace, profile=profile, context=AuditContext.from_request(request)
        )
        return Response(ProfileEraseOutput({"profile_id": profile_id, "erased": counts}).data)


# --------------------------------------------------------------------------- events


class EventListApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": "segments.view"}

    @extend_schema(
        parameters=[EventListQuery, *PAGE_PARAMETERS],
        operation_id="v1_events_list",
        responses=_page("EventPage", EventOutput(many=True), backwards=False),
        summary="List events",
        description="Newest first (by the corrected timestamp).",
    )
    def get(self, request):
        events = selectors.workspace_events(
            workspace=api_workspace(request).workspace, **_query(EventListQuery, request)
        )
        paginator = NewestFirstPagination(time_field="timestamp")
        page = paginator.paginate_queryset(events, request)
        return paginator.get_paginated_response(EventOutput(page, many=True).data)


class RejectedEventListApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": "segments.view"}

    @extend_schema(
        parameters=[RejectedEventListQuery, *PAGE_PARAMETERS],
        operation_id="v1_rejected_events_list",
        responses=_page("RejectedEventPage", RejectedEventOutput(many=True), backwards=False),
        summary="List quarantined events",
        description="Events refused inside accepted requests, newest first, with the reason.",
    )
    def get(self, request):
        rows = selectors.rejected_events(
            workspace=api_workspace(request).workspace, **_query(RejectedEventListQuery, request)
        )
        paginator = NewestFirstPagination(time_field="received_at")
        page = paginator.paginate_queryset(rows, request)
        return paginator.get_paginated_response(RejectedEventOutput(page, many=True).data)


# --------------------------------------------------------------------------- event schemas


class EventSchemaListApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": "segments.view", "POST": "segments.edit"}

    @extend_schema(
        parameters=PAGE_PARAMETERS,
        operation_id="v1_event_schemas_list",
        responses=_page("EventSchemaPage", EventSchemaOutput(many=True)),
        summary="List event schemas",
    )
    def get(self, request):
        schemas = selectors.event_schemas(workspace=api_workspace(request).workspace)
        paginator = EventNameCursor()
        page = paginator.paginate_queryset(schemas, request, view=self)
        return paginator.get_paginated_response(EventSchemaOutput(page, many=True).data)

    @extend_schema(
        request=EventSchemaInput,
        responses={201: EventSchemaOutput},
        summary="Create an event schema",
        description="One schema per event name: the properties it expects and their types.",
    )
    def post(self, request):
        payload = EventSchemaInput(data=request.data)
        payload.is_valid(raise_exception=True)
        schema = _event_schema_save(
            workspace=api_workspace(request).workspace,
            schema=None,
            context=AuditContext.from_request(request),
            **payload.validated_data,
        )
        return Response(EventSchemaOutput(schema).data, status=status.HTTP_201_CREATED)


class EventSchemaApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {
        "GET": "segments.view",
        "PUT": "segments.edit",
        "DELETE": "segments.edit",
    }

    @extend_schema(responses=EventSchemaOutput, summary="Get an event schema")
    def get(self, request, event_schema_id: int):
        schema = selectors.event_schema_get(
            workspace=api_workspace(request).workspace, event_schema_id=event_schema_id
        )
        return Response(EventSchemaOutput(schema).data)

    @extend_schema(
        request=EventSchemaInput, responses=EventSchemaOutput, summary="Replace an event schema"
    )
    def put(self, request, event_schema_id: int):
        workspace = api_workspace(request).workspace
        schema = selectors.event_schema_get(workspace=workspace, event_schema_id=event_schema_id)
        payload = EventSchemaInput(data=request.data)
        payload.is_valid(raise_exception=True)
        schema = _event_schema_save(
            workspace=workspace,
            schema=schema,
            context=AuditContext.from_request(request),
            **payload.validated_data,
        )
        return Response(EventSchemaOutput(schema).data)

    @extend_schema(responses={204: None}, summary="Delete an event schema")
    def delete(self, request, event_schema_id: int):
        workspace = api_workspace(request).workspace
        schema = selectors.event_schema_get(workspace=workspace, event_schema_id=event_schema_id)
        with transaction.atomic():
            audit_record(
                context=AuditContext.from_request(request),
                action=AuditAction.EVENT_SCHEMA_DELETE,
                workspace=workspace,
                target=schema,
                changes=_schema_fields(schema),
            )
            schema.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


# Writes of event schemas. They belong in segments/services.py beside the ingestion
# code that reads the schemas; they live here until that module is free to edit.

SCHEMA_FIELDS = ("event_name", "properties", "allow_additional_properties")


def _schema_fields(schema: EventSchema) -> dict[str, Any]:
    return {field: getattr(schema, field) for field in SCHEMA_FIELDS}


def _event_schema_save(
    *, workspace: Workspace, schema: EventSchema | None, context: AuditContext, **fields: Any
) -> EventSchema:
    """Create (schema=None) or replace an event schema, audited. The caller validated
    `fields` with EventSchemaInput."""
    taken = selectors.event_schemas(workspace=workspace).filter(event_name=fields["event_name"])
    if schema is not None:
        taken = taken.exclude(pk=schema.pk)
    duplicate = serializers.ValidationError(
        {"event_name": [f'A schema for "{fields["event_name"]}" already exists.']}
    )
    if taken.exists():
        raise duplicate
    before = _schema_fields(schema) if schema is not None else {}
    schema = schema or EventSchema(workspace=workspace)
    for field, value in fields.items():
        setattr(schema, field, value)
    try:
        with transaction.atomic():
            schema.save()
            audit_record(
                context=context,
                action=AuditAction.EVENT_SCHEMA_UPDATE
                if before
                else AuditAction.EVENT_SCHEMA_CREATE,
                workspace=workspace,
                target=schema,
                changes={
                    field: {"before": before[field], "after": fields[field]}
                    for field in SCHEMA_FIELDS
                    if before and before[field] != fields[field]
                }
                if before
                else fields,
            )
    except IntegrityError:  # created by a concurrent request since the check above
        raise duplicate from None
    return schema
