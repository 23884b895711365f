"""REST API of journeys (DRF APIViews with explicit serializers): journeys, their
draft, check, publish (with the in-flight choice), pause / resume / stop / archive,
versions, enrollments, API entries, and a profile's trace. Writes go through
journeys.services (validated, audited)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.response import Response
from rest_framework.views import APIView

from engagement_site.api import error_response, newest_first_pagination
from engagement_site.workspaces.authentication import HasWorkspacePermission, api_workspace
from engagement_site.workspaces.services import AuditContext
from journeys import selectors, services
from journeys.graph import DefinitionError
from journeys.models import Enrollment, Journey
from segments.api import MAX_PAGE_SIZE, PAGE_PARAMETERS, _page, _query
from segments.segment_api import Refused, StrictInput

VIEW, EDIT, PUBLISH = "journeys.view", "journeys.edit", "journeys.publish"


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "The request conflicts with the journey's state."


def _refusal(error: Exception) -> APIException:
    if isinstance(error, DefinitionError):
        return serializers.ValidationError({"definition": [e.as_dict() for e in error.errors]})
    if isinstance(error, services.DraftConflict | services.JourneyStateError):
        return Conflict(" ".join(error.messages))
    if isinstance(error, DjangoValidationError) and hasattr(error, "error_dict"):
        return serializers.ValidationError(error.message_dict)
    return Refused(" ".join(getattr(error, "messages", [str(error)])))


@extend_schema_field(
    {
        "type": "object",
        "description": "A journey definition: {nodes, edges, settings} (docs/journeys.md).",
        "additionalProperties": True,
    }
)
class DefinitionField(serializers.JSONField):
    pass


_NUMBER_0_1 = {"type": "number", "minimum": 0, "maximum": 1}


@extend_schema_field(
    {
        "type": "object",
        "description": "Made-up profiles for a what-if run, rolled back afterwards "
        "(journeys.simulation.GeneratedAudience).",
        "required": ["count"],
        "additionalProperties": False,
        "properties": {
            "count": {"type": "integer", "minimum": 1, "maximum": services.MAX_SIMULATED},
            "seed": {"type": "integer", "description": "Same seed, same profiles."},
            "traits": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {}},
                "description": "{trait: [values picked from at random]}",
            },
            "email_share": {**_NUMBER_0_1, "description": "Share with an email (default 1)."},
            "phone_share": {**_NUMBER_0_1, "description": "Share with a phone (default 0)."},
            "time_zones": {"type": "array", "items": {"type": "string"}},
            "events": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string"},
                        "share": {**_NUMBER_0_1, "description": "Default 1."},
                        "after_seconds": {
                            "type": "integer",
                            "description": "From the start; negative for before it.",
                        },
                        "properties": {"type": "object", "additionalProperties": True},
                    },
                },
            },
        },
    }
)
class GeneratedAudienceField(serializers.JSONField):
    pass


class JourneyVersionOutput(serializers.Serializer):
    number = serializers.IntegerField()
    definition = DefinitionField()
    template_versions = serializers.DictField(
        child=serializers.IntegerField(), help_text="{template id: pinned template version id}"
    )
    note = serializers.CharField()
    published_by = serializers.SerializerMethodField()
    published_at = serializers.DateTimeField()

    @extend_schema_field({"type": "string", "nullable": True})
    def get_published_by(self, version) -> str | None:
        return version.published_by.get_username() if version.published_by_id else None


class JourneyOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    status = serializers.ChoiceField(choices=Journey.Status.choices)
    paused_reason = serializers.CharField()
    live_version = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    @extend_schema_field({"type": "integer", "nullable": True})
    def get_live_version(self, journey: Journey) -> int | None:
        return journey.live_version.number if journey.live_version_id else None


class DraftOutput(serializers.Serializer):
    definition = DefinitionField()
    layout = serializers.JSONField()
    revision = serializers.IntegerField(help_text="Send it back as base_revision when saving.")
    updated_at = serializers.DateTimeField()


class JourneyDetailOutput(JourneyOutput):
    draft = DraftOutput()


class JourneyCreateInput(StrictInput):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=500
    )
    definition = DefinitionField(required=False, default=None)
    layout = serializers.JSONField(required=False, default=None)


class JourneyUpdateInput(StrictInput):
    name = serializers.CharField(required=False, max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=500)


class DraftInput(StrictInput):
    definition = DefinitionField()
    layout = serializers.JSONField(required=False, default=None)
    base_revision = serializers.IntegerField(required=False, default=None)


class PublishInput(StrictInput):
    in_flight = serializers.ChoiceField(
        choices=services.IN_FLIGHT_CHOICES,
        default="stay",
        help_text="stay: profiles in the journey finish on their version; migrate: they "
        "move to this one (same node ids, or `node_map` for removed nodes).",
    )
    node_map = serializers.DictField(child=serializers.CharField(), required=False, default=dict)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)


class CheckOutput(serializers.Serializer):
    valid = serializers.BooleanField()
    errors = serializers.ListField(child=serializers.DictField(child=serializers.CharField()))


class EnrollmentOutput(serializers.Serializer):
    id = serializers.IntegerField()
    profile_id = serializers.IntegerField()
    user_id = serializers.CharField(source="profile.user_id")
    version = serializers.IntegerField(source="version.number")
    state = serializers.ChoiceField(choices=Enrollment.State.choices)
    current_node = serializers.CharField()
    next_run_at = serializers.DateTimeField(allow_null=True)
    entered_at = serializers.DateTimeField()
    exited_at = serializers.DateTimeField(allow_null=True)
    exit_reason = serializers.CharField()
    last_error = serializers.CharField()


class EnrollInput(StrictInput):
    profile_id = serializers.IntegerField(min_value=1)
    properties = serializers.DictField(
        required=False, default=dict, help_text="Available as event.properties."
    )


class StepOutput(serializers.Serializer):
    node_id = serializers.CharField()
    visit = serializers.IntegerField()
    outcome = serializers.CharField()
    port = serializers.CharField()
    detail = serializers.JSONField()
    created_at = serializers.DateTimeField()


class TraceOutput(serializers.Serializer):
    journey_id = serializers.IntegerField()
    journey = serializers.CharField()
    enrollment = EnrollmentOutput()
    steps = StepOutput(many=True)


def _detail(journey: Journey) -> dict[str, Any]:
    return JourneyDetailOutput(journey).data


class JourneyListQuery(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=Journey.Status.choices, required=False, allow_blank=True, default=""
    )


class JourneyListApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": VIEW, "POST": EDIT}

    @extend_schema(
        parameters=[JourneyListQuery, *PAGE_PARAMETERS],
        operation_id="v1_journeys_list",
        responses=_page("JourneyPage", JourneyOutput(many=True)),
        summary="List journeys",
    )
    def get(self, request):
        workspace = api_workspace(request).workspace
        journeys = selectors.workspace_journeys(
            workspace=workspace, status=_query(JourneyListQuery, request)["status"]
        )
        paginator = newest_first_pagination("updated_at", max_page_size=MAX_PAGE_SIZE)
        page = paginator.paginate_queryset(journeys, request, view=self)
        return paginator.get_paginated_response(JourneyOutput(page, many=True).data)

    @extend_schema(
        request=JourneyCreateInput,
        responses={201: JourneyDetailOutput},
        summary="Create a journey",
        description="A draft (the definition may be incomplete). Audited (`journey.create`).",
    )
    def post(self, request):
        payload = JourneyCreateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            journey = services.journey_create(
                workspace=api_workspace(request).workspace,
                context=AuditContext.from_request(request),
                **payload.validated_data,
            )
        except DjangoValidationError as error:
            raise _refusal(error) from None
        return Response(_detail(journey), status=status.HTTP_201_CREATED)


class JourneyApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": VIEW, "PATCH": EDIT}

    @extend_schema(responses=JourneyDetailOutput, summary="Get a journey with its draft")
    def get(self, request, journey_id: int):
        return Response(
            _detail(
                selectors.journey_get(
                    workspace=api_workspace(request).workspace, journey_id=journey_id
                )
            )
        )

    @extend_schema(
        request=JourneyUpdateInput,
        responses=JourneyDetailOutput,
        summary="Rename or describe a journey",
    )
    def patch(self, request, journey_id: int):
        workspace = api_workspace(request).workspace
        journey = selectors.journey_get(workspace=workspace, journey_id=journey_id)
        payload = JourneyUpdateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            journey = services.journey_update(
                journey=journey,
                context=AuditContext.from_request(request),
                **payload.validated_data,
            )
        except DjangoValidationError as error:
            raise _refusal(error) from None
        return Response(_detail(journey))


class JourneyDraftApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"PUT": EDIT}

    @extend_schema(
        request=DraftInput,
        responses=DraftOutput,
        summary="Save the draft",
        description="The graph and its layout, as they are (check them with `check`). With "
        "`base_revision`, 409 when someone saved since; nothing is overwritten.",
    )
    def put(self, request, journey_id: int):
        journey = selectors.journey_get(
            workspace=api_workspace(request).workspace, journey_id=journey_id
        )
        payload = DraftInput(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            draft = services.journey_draft_save(
                journey=journey,
                context=AuditContext.from_request(request),
                **payload.validated_data,
            )
        except DjangoValidationError as error:
            raise _refusal(error) from None
        return Response(DraftOutput(draft).data)


class JourneyCheckApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"POST": VIEW}

    @extend_schema(
        request=None,
        responses=CheckOutput,
        summary="Check the draft",
        description="Every problem, each naming its node: what publishing would refuse.",
    )
    def post(self, request, journey_id: int):
        journey = selectors.journey_get(
            workspace=api_workspace(request).workspace, journey_id=journey_id
        )
        try:
            services.journey_check(journey=journey)
        except DefinitionError as error:
            return Response({"valid": False, "errors": [e.as_dict() for e in error.errors]})
        return Response({"valid": True, "errors": []})


class JourneyPublishApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"POST": PUBLISH}

    @extend_schema(
        request=PublishInput,
        responses={201: JourneyVersionOutput},
        summary="Publish the draft",
        description="Freezes the draft as the next version (pinning the template versions "
        "it sends) and makes it live. 400 lists every problem by node; a `migrate` that "
        "leaves profiles at a removed node without a target is refused the same way. "
        "Audited (`journey.publish`).",
    )
    def post(self, request, journey_id: int):
        journey = selectors.journey_get(
            workspace=api_workspace(request).workspace, journey_id=journey_id
        )
        payload = PublishInput(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            version = services.journey_publish(
                journey=journey,
                context=AuditContext.from_request(request),
                **payload.validated_data,
            )
        except (DjangoValidationError, DefinitionError) as error:
            raise _refusal(error) from None
        return Response(JourneyVersionOutput(version).data, status=status.HTTP_201_CREATED)


class _StatusApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"POST": PUBLISH}
    service = staticmethod(services.journey_pause)

    def post(self, request, journey_id: int):
        journey = selectors.journey_get(
            workspace=api_workspace(request).workspace, journey_id=journey_id
        )
        try:
            journey = self.service(journey=journey, context=AuditContext.from_request(request))
        except DjangoValidationError as error:
            raise _refusal(error) from None
        return Response(
            _detail(selectors.journey_get(workspace=journey.workspace, journey_id=journey.pk))
        )


class JourneyPauseApi(_StatusApi):
    service = staticmethod(services.journey_pause)

    @extend_schema(
        request=None,
        responses={200: JourneyDetailOutput, 409: error_response("The journey is not live.")},
        summary="Pause a live journey",
        description="Nobody enters or moves; waits keep their place. 409 unless live.",
    )
    def post(self, request, journey_id: int):
        return super().post(request, journey_id)


class JourneyResumeApi(_StatusApi):
    service = staticmethod(services.journey_resume)

    @extend_schema(
        request=None,
        responses={200: JourneyDetailOutput, 409: error_response("The journey is not paused.")},
        summary="Resume a paused journey",
    )
    def post(self, request, journey_id: int):
        return super().post(request, journey_id)


class JourneyStopApi(_StatusApi):
    service = staticmethod(services.journey_stop)

    @extend_schema(
        request=None,
        responses={
            200: JourneyDetailOutput,
            409: error_response("The journey is not live or paused."),
        },
        summary="Stop a journey",
        description="Everyone in it exits now; nobody enters again.",
    )
    def post(self, request, journey_id: int):
        return super().post(request, journey_id)


class JourneyArchiveApi(_StatusApi):
    service = staticmethod(services.journey_archive)

    @extend_schema(
        request=None,
        responses={
            200: JourneyDetailOutput,
            409: error_response("The journey is live or paused: stop it first."),
        },
        summary="Archive a draft or stopped journey",
    )
    def post(self, request, journey_id: int):
        return super().post(request, journey_id)


class JourneyVersionListApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": VIEW}

    @extend_schema(responses=JourneyVersionOutput(many=True), summary="List a journey's versions")
    def get(self, request, journey_id: int):
        workspace = api_workspace(request).workspace
        journey = selectors.journey_get(workspace=workspace, journey_id=journey_id)
        return Response(
            JourneyVersionOutput(
                selectors.journey_versions(workspace=workspace, journey=journey), many=True
            ).data
        )


class EnrollmentQuery(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=Enrollment.State.choices, required=False, allow_blank=True, default=""
    )


class JourneyEnrollmentsApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": VIEW, "POST": EDIT}

    @extend_schema(
        parameters=[EnrollmentQuery, *PAGE_PARAMETERS],
        operation_id="v1_journey_enrollments_list",
        responses=_page("EnrollmentPage", EnrollmentOutput(many=True)),
        summary="List a journey's enrollments",
        description="Newest entries first, `?state=` to filter.",
    )
    def get(self, request, journey_id: int):
        workspace = api_workspace(request).workspace
        journey = selectors.journey_get(workspace=workspace, journey_id=journey_id)
        enrollments = selectors.journey_enrollments(
            workspace=workspace, journey=journey, state=_query(EnrollmentQuery, request)["state"]
        )
        paginator = newest_first_pagination("entered_at", max_page_size=MAX_PAGE_SIZE)
        page = paginator.paginate_queryset(enrollments, request, view=self)
        return paginator.get_paginated_response(EnrollmentOutput(page, many=True).data)

    @extend_schema(
        request=EnrollInput,
        responses={
            201: EnrollmentOutput,
            200: None,
            409: error_response("The journey is not live or its trigger is not `api`."),
        },
        summary="Enter a profile (API trigger)",
        description="For live journeys whose trigger is `api`. 201 with the enrollment; "
        "200 with no body when the entry rules keep the profile out (already in the "
        "journey, re-entry, entry limit); 409 for other journeys.",
    )
    def post(self, request, journey_id: int):
        journey = selectors.journey_get(
            workspace=api_workspace(request).workspace, journey_id=journey_id
        )
        payload = EnrollInput(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            enrollment = services.journey_enroll(
                journey=journey,
                context=AuditContext.from_request(request),
                **payload.validated_data,
            )
        except DjangoValidationError as error:
            raise _refusal(error) from None
        if enrollment is None:
            return Response(status=status.HTTP_200_OK)
        enrollment = Enrollment.objects.select_related("profile", "version").get(pk=enrollment.pk)
        return Response(EnrollmentOutput(enrollment).data, status=status.HTTP_201_CREATED)


class ProfileTraceApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": VIEW}

    @extend_schema(
        responses=TraceOutput(many=True),
        summary="A profile's journeys, step by step",
        description="Every journey the profile entered (newest first) with each step's "
        "time, outcome and detail; a message not sent says why in `detail.reason`.",
    )
    def get(self, request, profile_id: int):
        from segments.selectors import profile_get

        workspace = api_workspace(request).workspace
        profile = profile_get(workspace=workspace, profile_id=profile_id)
        trace = selectors.profile_trace(workspace=workspace, profile_id=profile.pk)
        return Response(
            [
                {
                    "journey_id": item["enrollment"].journey_id,
                    "journey": item["enrollment"].journey.name,
                    "enrollment": EnrollmentOutput(item["enrollment"]).data,
                    "steps": StepOutput(item["steps"], many=True).data,
                }
                for item in trace
            ]
        )


class SimulateInput(StrictInput):
    segment_id = serializers.IntegerField(
        required=False, default=None, help_text="Simulate its current members."
    )
    profile_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        default=None,
        max_length=services.MAX_SIMULATED,
    )
    sample = serializers.IntegerField(
        required=False,
        default=None,
        min_value=1,
        max_value=services.MAX_SIMULATED,
        help_text="The most recently seen N profiles.",
    )
    generated = GeneratedAudienceField(required=False, default=None)
    start_at = serializers.DateTimeField(
        required=False, default=None, help_text="Simulated start (default now)."
    )
    definition = DefinitionField(
        required=False, default=None, help_text="Default: the saved draft."
    )


class SimulationOutput(serializers.Serializer):
    profiles = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    nodes = serializers.DictField(
        help_text="{node id: {reached, examples: [profile ids]}}; message nodes add "
        "channels: {channel or why none (holdout, no_email_address ...): profiles}"
    )
    edges = serializers.ListField(
        child=serializers.DictField(), help_text="[{source, port, target, count, share}]"
    )
    outcomes = serializers.DictField(child=serializers.IntegerField())
    assumptions = serializers.ListField(child=serializers.CharField())


class JourneySimulateApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"POST": VIEW}

    @extend_schema(
        request=SimulateInput,
        responses=SimulationOutput,
        summary="Simulate the draft",
        description="Runs the draft over real profiles (a segment's members, given ids, or a "
        "sample) or generated ones on simulated time, sending nothing: how many reach each "
        "node and take each branch, with example profiles (none for generated ones), and "
        "the channel message nodes would use. 400 lists the draft's problems by node, or "
        "what is wrong with the audience.",
    )
    def post(self, request, journey_id: int):
        from dataclasses import asdict

        journey = selectors.journey_get(
            workspace=api_workspace(request).workspace, journey_id=journey_id
        )
        payload = SimulateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        try:
            result = services.journey_simulate(
                journey=journey,
                definition=data["definition"],
                segment_id=data["segment_id"],
                profile_ids=data["profile_ids"],
                sample=data["sample"],
                generated=data["generated"],
                start=data["start_at"],
            )
        except (DjangoValidationError, DefinitionError) as error:
            raise _refusal(error) from None
        return Response(SimulationOutput(asdict(result)).data)
