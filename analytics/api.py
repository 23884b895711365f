"""REST API views of the analytics app (DRF APIViews with explicit serializers)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.experiments import split_reports
from engagement_site.workspaces.authentication import HasWorkspacePermission, api_workspace
from journeys import selectors as journey_selectors

VIEW = "analytics.view"


class _Interval(serializers.Serializer):
    rate = serializers.FloatField()
    low = serializers.FloatField()
    high = serializers.FloatField()


class _Comparison(serializers.Serializer):
    difference = serializers.FloatField()
    low = serializers.FloatField()
    high = serializers.FloatField()
    p_value = serializers.FloatField()
    significant = serializers.BooleanField()


class _Variant(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    weight = serializers.IntegerField()
    entered = serializers.IntegerField()
    sent = serializers.IntegerField()
    opened = serializers.IntegerField()
    clicked = serializers.IntegerField()
    converted = serializers.IntegerField()
    open_rate = _Interval()
    click_rate = _Interval()
    conversion_rate = _Interval()
    against_control = _Comparison(required=False)
    probability_best = serializers.FloatField()


class _Lift(serializers.Serializer):
    absolute = serializers.FloatField()
    low = serializers.FloatField()
    high = serializers.FloatField()
    relative = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField()
    significant = serializers.BooleanField()


class _Holdout(serializers.Serializer):
    entered = serializers.IntegerField()
    converted = serializers.IntegerField()
    conversion_rate = _Interval()
    lift = _Lift(allow_null=True)


class ExperimentOutput(serializers.Serializer):
    node = serializers.CharField()
    control = serializers.CharField(allow_null=True)
    small_sample = serializers.BooleanField(help_text="A variant has fewer than 100 people.")
    variants = _Variant(many=True)
    holdout = _Holdout()


class JourneyExperimentsApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": VIEW}

    @extend_schema(
        responses=ExperimentOutput(many=True),
        summary="A journey's experiments",
        description="For each split node of the live version: per variant, people, "
        "messages, conversions and rates with 95% Wilson intervals, the pooled "
        "two-proportion test against the first variant (the control), the Bayesian "
        "probability to be best, and the lift over the holdout (docs/analytics.md).",
    )
    def get(self, request, journey_id: int):
        workspace = api_workspace(request).workspace
        journey = journey_selectors.journey_get(workspace=workspace, journey_id=journey_id)
        return Response(
            ExperimentOutput(split_reports(workspace=workspace, journey=journey), many=True).data
        )


class WinnerInput(serializers.Serializer):
    variant = serializers.CharField(max_length=32)


class JourneyExperimentWinnerApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"POST": "journeys.publish"}

    @extend_schema(
        request=WinnerInput,
        responses=ExperimentOutput(many=True),
        summary="Declare an experiment's winner",
        description="From now on everyone reaching the split takes this variant (the "
        "holdout stays). 400 names an unknown node or variant. Audited.",
    )
    def post(self, request, journey_id: int, node_id: str):
        from analytics.services import ExperimentRefused, experiment_winner_declare
        from engagement_site.workspaces.services import AuditContext

        workspace = api_workspace(request).workspace
        journey = journey_selectors.journey_get(workspace=workspace, journey_id=journey_id)
        payload = WinnerInput(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            experiment_winner_declare(
                journey=journey,
                node_id=node_id,
                variant=payload.validated_data["variant"],
                context=AuditContext.from_request(request),
            )
        except ExperimentRefused as refusal:
            raise serializers.ValidationError({"variant": [str(refusal)]}) from None
        return Response(
            ExperimentOutput(split_reports(workspace=workspace, journey=journey), many=True).data
        )
