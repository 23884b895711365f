"""REST API of segments (DRF APIViews with explicit serializers): list, create, read,
change and delete; preview an unsaved rule; list and export the members; static
segments from a CSV or a snapshot, and hand-made member changes of static segments.

Every write goes through segments.services, which validates it and writes the audit
row; this module turns their errors into 4xx answers that name the problem."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from engagement_site.workspaces.authentication import HasWorkspacePermission, api_workspace
from engagement_site.workspaces.models import Workspace
from engagement_site.workspaces.services import AuditContext
from segments import selectors, services
from segments.api import MAX_PAGE_SIZE, PAGE_PARAMETERS, NewestFirstPagination, _page, _query
from segments.describe import rule_summary, segment_summary
from segments.evaluation import PreviewTimeout, segment_preview
from segments.exports import EXPORT_COLUMNS, segment_members_export
from segments.models import Segment
from segments.rules import RuleError

SIZE_HISTORY_DAYS = 30
PREVIEW_SAMPLE_SIZE = 10
MAX_MEMBER_CHANGES = 10_000

# --------------------------------------------------------------------------- errors


class Refused(APIException):
    """A request the service refused as a whole (no single field to blame)."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"
    default_detail = "The request was refused."


class SegmentInUseConflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "segment_in_use"
    default_detail = "Other segments use this segment."


class PreviewTimedOut(APIException):
    """The preview's statement hit its time limit. 503, not 4xx: the rule is valid,
    and saved it is counted by the background recompute, which has no such limit."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "preview_timeout"
    default_detail = "The rule took too long to evaluate."


def _refusal(error: DjangoValidationError | RuleError) -> APIException:
    """The 4xx answer for a service's error: a RuleError belongs to the definition; a
    ValidationError keyed by field keeps its fields; any other is refused whole."""
    if isinstance(error, RuleError):
        return serializers.ValidationError({"definition": [str(error)]})
    if isinstance(error, services.SegmentInUse):
        return SegmentInUseConflict(" ".join(error.messages))
    if hasattr(error, "error_dict"):
        return serializers.ValidationError(error.message_dict)
    return Refused(" ".join(error.messages))


# --------------------------------------------------------------------------- serializers

DEFINITION_EXAMPLE = {
    "type": "and",
    "rules": [
        {
            "type": "event_count",
            "event": "order_completed",
            "op": "gte",
            "count": 2,
            "window": {"last_days": 7},
        },
        {"type": "attribute", "trait": "plan", "op": "eq", "value": "pro"},
    ],
}


@extend_schema_field(
    {
        "type": "object",
        "description": "A rule tree (see docs/segments.md): groups `and`, `or`, `not`; "
        "leaves `attribute`, `event_count`, `sequence`, `streak`, `recency`, `membership`.",
        "additionalProperties": True,
        "example": DEFINITION_EXAMPLE,
    }
)
class DefinitionField(serializers.JSONField):
    pass


@extend_schema_field(
    {
        "type": "string",
        "enum": Segment.Kind.values,
        "description": "dynamic: a rule; static: a list",
    },
    component_name="SegmentKind",
)
class SegmentKindField(serializers.ChoiceField):
    """Its own schema component: other `kind` fields (API keys, identities) have other
    values, and drf-spectacular would otherwise name their enums by a hash."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=Segment.Kind.choices, **kwargs)


# Inputs refuse fields they do not know, naming them, rather than ignoring them (a PATCH
# of `kind` must not answer 200 and change nothing). A comment, not a docstring:
# drf-spectacular would copy a docstring into every input's schema.
class StrictInput(serializers.Serializer):
    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            expected = ", ".join(self.fields)
            raise serializers.ValidationError(
                {name: [f"Unknown field; expected {expected}."] for name in unknown}
            )
        return attrs


class SegmentOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    kind = SegmentKindField()
    summary = serializers.SerializerMethodField(
        help_text='The rule in plain English ("People who did order_completed at least '
        "twice in the last 7 days\"), or where a static segment's list came from."
    )
    member_count = serializers.IntegerField()
    last_computed_at = serializers.DateTimeField(
        allow_null=True, help_text="The last full evaluation; null until the first one ran."
    )
    last_error = serializers.CharField(
        help_text="Why the last evaluation failed; empty when it succeeded."
    )
    source = serializers.CharField(help_text="Where a static segment's members came from.")
    recompute_interval_seconds = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_summary(self, segment: Segment) -> str:
        return segment_summary(segment, self.context.get("segment_names", {}))


class SegmentReferenceOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class SegmentSizeOutput(serializers.Serializer):
    hour = serializers.DateTimeField(help_text="The start of the hour (UTC).")
    member_count = serializers.IntegerField(help_text="Members at the hour's last refresh.")
    entered = serializers.IntegerField()
    exited = serializers.IntegerField()


class SegmentDetailOutput(SegmentOutput):
    definition = DefinitionField(help_text="The rule tree; empty for a static segment.")
    used_by = SegmentReferenceOutput(
        many=True, help_text="The segments whose rule names this one (it cannot be deleted)."
    )
    size_history = SegmentSizeOutput(
        many=True, help_text=f"Hourly sizes of the last {SIZE_HISTORY_DAYS} days, oldest first."
    )


class SegmentListQuery(serializers.Serializer):
    kind = SegmentKindField(
        required=False,
        allow_blank=True,
        default="",
        help_text="Only dynamic or only static segments.",
    )


class SegmentCreateInput(StrictInput):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    definition = DefinitionField()
    recompute_interval_seconds = serializers.IntegerField(
        required=False,
        default=300,
        min_value=services.MIN_RECOMPUTE_SECONDS,
        max_value=services.MAX_RECOMPUTE_SECONDS,
        help_text="How often the whole segment is re-evaluated (time-based rules change "
        "without new events).",
    )


class SegmentUpdateInput(StrictInput):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    definition = DefinitionField(
        required=False, help_text="Dynamic segments only; the members are re-evaluated."
    )
    recompute_interval_seconds = serializers.IntegerField(
        required=False,
        min_value=services.MIN_RECOMPUTE_SECONDS,
        max_value=services.MAX_RECOMPUTE_SECONDS,
    )


class SegmentPreviewInput(StrictInput):
    definition = DefinitionField()


class SampleProfileOutput(serializers.Serializer):
    id = serializers.IntegerField()
    user_id = serializers.CharField()
    email = serializers.CharField()
    last_seen = serializers.DateTimeField()


class SegmentPreviewOutput(serializers.Serializer):
    count = serializers.IntegerField(help_text="How many profiles match now.")
    sample = SampleProfileOutput(
        many=True,
        help_text=f"Up to {PREVIEW_SAMPLE_SIZE} of them, most recently seen first.",
    )
    summary = serializers.CharField(help_text="The rule in plain English.")


class SegmentMemberOutput(serializers.Serializer):
    profile_id = serializers.IntegerField()
    user_id = serializers.CharField(source="profile.user_id")
    email = serializers.CharField(source="profile.email")
    entered_at = serializers.DateTimeField()


class SegmentMembersChangeInput(StrictInput):
    add = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        default=list,
        max_length=MAX_MEMBER_CHANGES,
        help_text="Profile ids to add (members already in stay as they are).",
    )
    remove = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        default=list,
        max_length=MAX_MEMBER_CHANGES,
        help_text="Profile ids to remove (non-members are skipped).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        if not attrs["add"] and not attrs["remove"]:
            raise serializers.ValidationError(
                {"add": ["Name at least one profile id to add or to remove."]}
            )
        return attrs


class SegmentMembersChangeOutput(serializers.Serializer):
    added = serializers.ListField(
        child=serializers.IntegerField(), help_text="The profiles that entered."
    )
    removed = serializers.ListField(
        child=serializers.IntegerField(), help_text="The profiles that left."
    )
    member_count = serializers.IntegerField()


class StaticSegmentInput(StrictInput):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    file = serializers.FileField(
        help_text="CSV with a user_id, email, anonymous_id or profile_id column (or one "
        f"unnamed column of user ids or emails); at most {services.MAX_STATIC_CSV_BYTES} "
        "bytes."
    )


class CsvMatchReportOutput(serializers.Serializer):
    column = serializers.CharField(help_text="The identifier column that was read.")
    rows = serializers.IntegerField(help_text="Non-empty values in that column.")
    matched = serializers.IntegerField(help_text="Distinct values naming a profile.")
    unmatched = serializers.IntegerField(help_text="Distinct values naming nobody.")
    duplicates = serializers.IntegerField(help_text="Values repeated in the file.")
    unmatched_examples = serializers.ListField(
        child=serializers.CharField(), help_text="Up to 5 of the unmatched values."
    )


class StaticSegmentCreatedOutput(SegmentDetailOutput):
    match_report = CsvMatchReportOutput()


class SegmentSnapshotInput(StrictInput):
    name = serializers.CharField(max_length=200, help_text="The new static segment's name.")
    description = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text='Default: "Members of <segment> on <date and time> UTC".',
    )


# --------------------------------------------------------------------------- helpers


def _segment_detail(workspace: Workspace, segment: Segment) -> dict[str, Any]:
    sizes = selectors.segment_sizes(
        workspace=workspace,
        segment=segment,
        since=timezone.now() - timedelta(days=SIZE_HISTORY_DAYS),
    )
    usages = selectors.segment_usages(workspace=workspace, segment=segment)
    return {
        **SegmentOutput(
            segment, context={"segment_names": selectors.segment_names(workspace=workspace)}
        ).data,
        "definition": segment.definition,
        "used_by": SegmentReferenceOutput(usages, many=True).data,
        "size_history": SegmentSizeOutput(sizes, many=True).data,
    }


class NameCursor(CursorPagination):
    """Alphabetical: names are unique within a workspace, so the cursor is exact."""

    ordering = "name"
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE


# --------------------------------------------------------------------------- segments


class SegmentListApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": "segments.view", "POST": "segments.edit"}

    @extend_schema(
        parameters=[SegmentListQuery, *PAGE_PARAMETERS],
        operation_id="v1_segments_list",
        responses=_page("SegmentPage", SegmentOutput(many=True)),
        summary="List segments",
        description="Alphabetical, with each segment's size and rule in plain English.",
    )
    def get(self, request):
        workspace = api_workspace(request).workspace
        segments = selectors.workspace_segments(workspace=workspace)
        kind = _query(SegmentListQuery, request)["kind"]
        if kind:
            segments = segments.filter(kind=kind)
        paginator = NameCursor()
        page = paginator.paginate_queryset(segments, request, view=self)
        context = {"segment_names": selectors.segment_names(workspace=workspace)}
        return paginator.get_paginated_response(
            SegmentOutput(page, many=True, context=context).data
        )

    @extend_schema(
        request=SegmentCreateInput,
        responses={201: SegmentDetailOutput},
        summary="Create a dynamic segment",
        description="The members are computed by a background job queued at once: "
        "`member_count` is 0 and `last_computed_at` null until it has run. An invalid "
        "rule is refused with the rule's path in `errors.definition`. Audited "
        "(`segment.create`).",
    )
    def post(self, request):
        payload = SegmentCreateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        workspace = api_workspace(request).workspace
        try:
            segment = services.segment_create(
                workspace=workspace,
                context=AuditContext.from_request(request),
                **payload.validated_data,
            )
        except (DjangoValidationError, RuleError) as error:
            raise _refusal(error) from None
        return Response(_segment_detail(workspace, segment), status=status.HTTP_201_CREATED)


class SegmentApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {
        "GET": "segments.view",
        "PATCH": "segments.edit",
        "DELETE": "segments.edit",
    }

    @extend_schema(responses=SegmentDetailOutput, summary="Get a segment")
    def get(self, request, segment_id: int):
        workspace = api_workspace(request).workspace
        segment = selectors.segment_get(workspace=workspace, segment_id=segment_id)
        return Response(_segment_detail(workspace, segment))

    @extend_schema(
        request=SegmentUpdateInput,
        responses=SegmentDetailOutput,
        summary="Change a segment",
        description="Name, description, recompute interval, and (dynamic segments only) "
        "the rule. A new rule is re-evaluated by a background job; the members stay as "
        "they were until it has run. Audited (`segment.update`) when something changed.",
    )
    def patch(self, request, segment_id: int):
        workspace = api_workspace(request).workspace
        segment = selectors.segment_get(workspace=workspace, segment_id=segment_id)
        payload = SegmentUpdateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            segment = services.segment_update(
                segment=segment,
                context=AuditContext.from_request(request),
                **payload.validated_data,
            )
        except (DjangoValidationError, RuleError) as error:
            raise _refusal(error) from None
        return Response(_segment_detail(workspace, segment))

    @extend_schema(
        responses={204: None},
        summary="Delete a segment",
        description="Deletes it with its membership history. 409 while other segments "
        "use it (the message names them). Audited (`segment.delete`).",
    )
    def delete(self, request, segment_id: int):
        workspace = api_workspace(request).workspace
        segment = selectors.segment_get(workspace=workspace, segment_id=segment_id)
        try:
            services.segment_delete(segment=segment, context=AuditContext.from_request(request))
        except DjangoValidationError as error:
            raise _refusal(error) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class SegmentPreviewApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"POST": "segments.edit"}

    @extend_schema(
        request=SegmentPreviewInput,
        responses=SegmentPreviewOutput,
        summary="Preview a rule",
        description="How many profiles an unsaved rule matches now, a sample of them and "
        "the rule in plain English; nothing is stored. 400 names the offending rule's "
        "path; 503 (`preview_timeout`) when the rule takes longer than the preview's "
        "time limit (5 s): save it and the background recompute counts it.",
    )
    def post(self, request):
        payload = SegmentPreviewInput(data=request.data)
        payload.is_valid(raise_exception=True)
        workspace = api_workspace(request).workspace
        definition = payload.validated_data["definition"]
        try:
            rule = services.segment_definition_check(workspace=workspace, definition=definition)
            count, sample_ids = segment_preview(
                segment_or_definition=rule,
                workspace=workspace,
                sample_size=PREVIEW_SAMPLE_SIZE,
            )
        except RuleError as error:
            raise _refusal(error) from None
        except PreviewTimeout as error:
            raise PreviewTimedOut(str(error)) from None
        sample = selectors.profiles_by_ids(workspace=workspace, profile_ids=sample_ids)
        summary = rule_summary(rule, segment_names=selectors.segment_names(workspace=workspace))
        return Response(
            SegmentPreviewOutput({"count": count, "sample": sample, "summary": summary}).data
        )


# --------------------------------------------------------------------------- members


class SegmentMembersApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": "segments.view", "POST": "segments.edit"}

    @extend_schema(
        parameters=PAGE_PARAMETERS,
        operation_id="v1_segments_members_list",
        responses=_page("SegmentMemberPage", SegmentMemberOutput(many=True), backwards=False),
        summary="List a segment's members",
        description="The current members, most recent entries first.",
    )
    def get(self, request, segment_id: int):
        workspace = api_workspace(request).workspace
        segment = selectors.segment_get(workspace=workspace, segment_id=segment_id)
        members = selectors.segment_members(workspace=workspace, segment=segment)
        paginator = NewestFirstPagination(time_field="entered_at")
        page = paginator.paginate_queryset(members, request)
        return paginator.get_paginated_response(SegmentMemberOutput(page, many=True).data)

    @extend_schema(
        request=SegmentMembersChangeInput,
        responses=SegmentMembersChangeOutput,
        summary="Add and remove members of a static segment",
        description="Idempotent: adding a member or removing a non-member changes "
        "nothing. Every id must be a profile of this workspace, else nothing changes "
        "(400). A dynamic segment's members follow its rule (400). Audited "
        "(`segment.members`) when something changed.",
    )
    def post(self, request, segment_id: int):
        workspace = api_workspace(request).workspace
        segment = selectors.segment_get(workspace=workspace, segment_id=segment_id)
        payload = SegmentMembersChangeInput(data=request.data)
        payload.is_valid(raise_exception=True)
        add, remove = payload.validated_data["add"], payload.validated_data["remove"]
        unknown = {
            field: _unknown_profiles(workspace, ids)
            for field, ids in (("add", add), ("remove", remove))
        }
        errors = {
            field: [f"No such profile in this workspace: {', '.join(map(str, ids))}."]
            for field, ids in unknown.items()
            if ids
        }
        if errors:
            raise serializers.ValidationError(errors)
        try:
            added, removed = services.static_segment_members_change(
                segment=segment, add=add, remove=remove, context=AuditContext.from_request(request)
            )
        except DjangoValidationError as error:
            raise _refusal(error) from None
        segment.refresh_from_db(fields=["member_count"])
        return Response(
            SegmentMembersChangeOutput(
                {
                    "added": sorted(added),
                    "removed": sorted(removed),
                    "member_count": segment.member_count,
                }
            ).data
        )


def _unknown_profiles(workspace: Workspace, profile_ids: list[int]) -> list[int]:
    known = {
        profile.pk
        for profile in selectors.profiles_by_ids(workspace=workspace, profile_ids=profile_ids)
    }
    return sorted(set(profile_ids) - known)


class CsvDownloadNegotiation(BaseContentNegotiation):
    """The export answers CSV whatever the Accept header asks for, and its errors
    JSON (DRF would otherwise refuse `Accept: text/csv` with 406 before the view)."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class SegmentExportApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": "segments.export"}
    renderer_classes = [JSONRenderer]
    content_negotiation_class = CsvDownloadNegotiation

    @extend_schema(
        responses={(200, "text/csv"): OpenApiTypes.STR},
        summary="Export a segment's members as CSV",
        description="The current members in profile id order, streamed, with the header "
        "`" + ",".join(EXPORT_COLUMNS) + "` (`entered_at` in ISO 8601). Audited "
        "(`segment.export`).",
    )
    def get(self, request, segment_id: int):
        workspace = api_workspace(request).workspace
        segment = selectors.segment_get(workspace=workspace, segment_id=segment_id)
        return segment_members_export(
            request=request._request,
            workspace=workspace,
            segment=segment,
            context=AuditContext.from_request(request),
        )


# --------------------------------------------------------------------------- static


class StaticSegmentCreateApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"POST": "segments.edit"}
    parser_classes = [MultiPartParser]

    @extend_schema(
        request=StaticSegmentInput,
        responses={201: StaticSegmentCreatedOutput},
        summary="Create a static segment from a CSV",
        description="Values naming nobody are counted in `match_report`, not fatal; a "
        "file that names nobody is refused and nothing is stored. Audited "
        "(`segment.create`).",
    )
    def post(self, request):
        payload = StaticSegmentInput(data=request.data)
        payload.is_valid(raise_exception=True)
        workspace = api_workspace(request).workspace
        upload = payload.validated_data["file"]
        if upload.size > services.MAX_STATIC_CSV_BYTES:  # refused before it is read
            raise serializers.ValidationError(
                {
                    "file": [
                        f"The file is {upload.size} bytes; at most "
                        f"{services.MAX_STATIC_CSV_BYTES} are taken."
                    ]
                }
            )
        data = upload.read()
        try:
            segment, report = services.static_segment_create_from_csv(
                workspace=workspace,
                name=payload.validated_data["name"],
                description=payload.validated_data["description"],
                data=data,
                filename=upload.name,
                context=AuditContext.from_request(request),
            )
        except DjangoValidationError as error:
            raise _refusal(error) from None
        return Response(
            {
                **_segment_detail(workspace, segment),
                "match_report": CsvMatchReportOutput(report).data,
            },
            status=status.HTTP_201_CREATED,
        )


class SegmentSnapshotApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"POST": "segments.edit"}

    @extend_schema(
        request=SegmentSnapshotInput,
        responses={201: SegmentDetailOutput},
        summary="Freeze a segment's members into a new static segment",
        description="Audited (`segment.snapshot`).",
    )
    def post(self, request, segment_id: int):
        workspace = api_workspace(request).workspace
        segment = selectors.segment_get(workspace=workspace, segment_id=segment_id)
        payload = SegmentSnapshotInput(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            snapshot = services.static_segment_snapshot(
                segment=segment,
                context=AuditContext.from_request(request),
                **payload.validated_data,
            )
        except DjangoValidationError as error:
            raise _refusal(error) from None
        return Response(_segment_detail(workspace, snapshot), status=status.HTTP_201_CREATED)
