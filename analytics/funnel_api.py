"""REST API of the funnel and retention reports (analytics/funnels.py): JSON in, JSON
out, `analytics.view`. A 400 names the offending field."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from pydantic import ValidationError as PydanticValidationError
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.filters import DEFAULT_DAYS, date_range_of
from analytics.funnels import (
    MAX_RETENTION_WEEKS,
    MAX_STEPS,
    MAX_WINDOW_DAYS,
    MIN_STEPS,
    ReportInputError,
    funnel_report,
    report_as_dict,
    retention_report,
)
from engagement_site.workspaces.authentication import HasWorkspacePermission, api_workspace
from segments.rules import EventStep

VIEW = "analytics.view"


class EventStepInput(serializers.Serializer):
    event = serializers.CharField(max_length=200, help_text="An event name (track call).")
    filters = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        default=list,
        help_text='Property filters, as in segment rules: [{"property": "plan.tier", '
        '"op": "eq", "value": "pro"}] (docs/segments.md).',
    )

    def validate(self, attrs: dict) -> EventStep:
        try:
            return EventStep(event=attrs["event"], filters=attrs["filters"])
        except PydanticValidationError as error:
            first = error.errors()[0]
            where = "".join(
                f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
            ).lstrip(".")
            message = str((first.get("ctx") or {}).get("error", first["msg"]))
            raise serializers.ValidationError({"filters": [f"{where}: {message}"]}) from None


class _RangeInput(serializers.Serializer):
    start = serializers.DateField(
        required=False,
        help_text=f"First local day (workspace time zone); default {DEFAULT_DAYS} days "
        "before the end.",
    )
    end = serializers.DateField(
        required=False, help_text="Last local day, included; default today."
    )

    def range(self, workspace) -> tuple:
        chosen = date_range_of(
            workspace=workspace,
            start=self.validated_data.get("start"),
            end=self.validated_data.get("end"),
        )
        return chosen.start, chosen.end


class FunnelInput(_RangeInput):
    steps = EventStepInput(
        many=True,
        min_length=MIN_STEPS,
        max_length=MAX_STEPS,
        help_text=f"{MIN_STEPS} to {MAX_STEPS} steps, in order.",
    )
    window_days = serializers.IntegerField(
        min_value=1,
        max_value=MAX_WINDOW_DAYS,
        default=7,
        help_text="Conversion window: every step within this many days (times 24 hours) "
        "of the first step.",
    )
    breakdown = serializers.ChoiceField(
        choices=["trait", "property"],
        required=False,
        allow_null=True,
        default=None,
        help_text="Break down by a profile trait or by a property of the first step's event.",
    )
    breakdown_path = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=255,
        help_text='The trait or property, a dotted path ("plan.tier").',
    )


class FunnelStepOutput(serializers.Serializer):
    event = serializers.CharField()
    people = serializers.IntegerField(help_text="People who reached this step in order.")
    conversion_from_previous = serializers.FloatField(
        allow_null=True, help_text="people / people of the previous step (null for the first)."
    )
    conversion_from_first = serializers.FloatField(
        allow_null=True, help_text="people / people of the first step."
    )
    median_seconds_from_previous = serializers.FloatField(
        allow_null=True, help_text="Median time from the previous step, in seconds."
    )


class FunnelGroupOutput(serializers.Serializer):
    value = serializers.CharField(help_text='The breakdown value ("(none)" when missing).')
    is_other = serializers.BooleanField(help_text="The values after the top five, together.")
    steps = FunnelStepOutput(many=True)


class FunnelOutput(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    window_days = serializers.IntegerField()
    time_zone = serializers.CharField()
    steps = FunnelStepOutput(many=True)
    breakdown = FunnelGroupOutput(many=True)


def _refusal(error: ReportInputError) -> serializers.ValidationError:
    return serializers.ValidationError({error.field: [error.message]})


class FunnelApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"POST": VIEW}

    @extend_schema(
        request=FunnelInput,
        responses=FunnelOutput,
        summary="A funnel over events",
        description="People whose first step happened in the date range (local days of "
        "the workspace), and how many of them then did each next step in order within the "
        "conversion window; conversion rates and the median time between steps, optionally "
        "broken down (top five values and Other). 400 names the field: fewer than 2 "
        "steps, an event the workspace never received, a window outside 1-90 days.",
        examples=[
            OpenApiExample(
                "Signup funnel",
                request_only=True,
                value={
                    "steps": [
                        {"event": "Product Viewed"},
                        {"event": "Product Added"},
                        {
                            "event": "Order Completed",
                            "filters": [{"property": "total", "op": "gt", "value": 50}],
                        },
                    ],
                    "start": "2026-03-01",
                    "end": "2026-03-31",
                    "window_days": 7,
                },
            )
        ],
    )
    def post(self, request):
        workspace = api_workspace(request).workspace
        payload = FunnelInput(data=request.data)
        payload.is_valid(raise_exception=True)
        start, end = payload.range(workspace)
        data = payload.validated_data
        try:
            report = funnel_report(
                workspace=workspace,
                steps=data["steps"],
                start=start,
                end=end,
                window_days=data["window_days"],
                breakdown=data["breakdown"],
                breakdown_path=data["breakdown_path"],
            )
        except ReportInputError as error:
            raise _refusal(error) from None
        return Response(FunnelOutput(report_as_dict(report)).data)


class RetentionInput(_RangeInput):
    weeks = serializers.IntegerField(
        min_value=1,
        max_value=MAX_RETENTION_WEEKS,
        default=8,
        help_text=f"Weeks after the signup week to report (1 to {MAX_RETENTION_WEEKS}).",
    )
    start_event = EventStepInput(
        required=False,
        allow_null=True,
        default=None,
        help_text="Cohorts by the first time ever of this event; null: by the profile's "
        "first_seen (signup).",
    )
    return_event = EventStepInput(
        required=False,
        allow_null=True,
        default=None,
        help_text="The event that counts as coming back; null: any event.",
    )


class RetentionCohortOutput(serializers.Serializer):
    week_start = serializers.DateField(help_text="The cohort's Monday (local).")
    size = serializers.IntegerField(help_text="People who started in that week.")
    retained = serializers.ListField(
        child=serializers.IntegerField(allow_null=True),
        help_text="Per week 0..N: people active in it (null: the week has not begun).",
    )
    shares = serializers.ListField(
        child=serializers.FloatField(allow_null=True),
        help_text="Per week 0..N: retained / size.",
    )


class RetentionOutput(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    weeks = serializers.IntegerField()
    time_zone = serializers.CharField()
    start_event = serializers.CharField(help_text='"" for first_seen.')
    return_event = serializers.CharField(help_text='"" for any event.')
    cohorts = RetentionCohortOutput(many=True)
    average = serializers.ListField(
        child=serializers.FloatField(allow_null=True),
        help_text="Per week: retained / size over the cohorts whose week has begun.",
    )


class RetentionApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"POST": VIEW}

    @extend_schema(
        request=RetentionInput,
        responses=RetentionOutput,
        summary="Weekly cohort retention",
        description="Cohorts by signup week (Monday, workspace time zone) and, for each "
        "week 0..N after, the share of the cohort with a return event strictly after "
        "their start in that week. 400 names the field.",
    )
    def post(self, request):
        workspace = api_workspace(request).workspace
        payload = RetentionInput(data=request.data)
        payload.is_valid(raise_exception=True)
        start, end = payload.range(workspace)
        data = payload.validated_data
        try:
            report = retention_report(
                workspace=workspace,
                start=start,
                end=end,
                weeks=data["weeks"],
                start_step=data["start_event"],
                return_step=data["return_event"],
            )
        except ReportInputError as error:
            raise _refusal(error) from None
        return Response(RetentionOutput(report_as_dict(report)).data)
