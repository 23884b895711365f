"""REST API of the customer value report (analytics.view): the report and one
profile's computed values."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.value import profile_value_get, value_report
from engagement_site.workspaces.authentication import HasWorkspacePermission, api_workspace

VIEW = "analytics.view"


class _Tier(serializers.Serializer):
    tier = serializers.CharField()
    label = serializers.CharField()
    people = serializers.IntegerField()
    share = serializers.FloatField()
    revenue = serializers.FloatField()
    revenue_share = serializers.FloatField()
    average_ltv = serializers.FloatField()
    average_engagement = serializers.FloatField()
    average_churn_risk = serializers.FloatField()
    buyers = serializers.IntegerField()


class _Bucket(serializers.Serializer):
    bucket = serializers.CharField()
    people = serializers.IntegerField()


class _Customer(serializers.Serializer):
    profile_id = serializers.IntegerField()
    name = serializers.CharField()
    email = serializers.CharField()
    ltv = serializers.FloatField()
    revenue = serializers.FloatField()
    orders = serializers.IntegerField()
    engagement_score = serializers.FloatField()
    churn_risk = serializers.FloatField()
    value_tier = serializers.CharField()


class _ChannelRate(serializers.Serializer):
    channel = serializers.CharField()
    sent = serializers.IntegerField()
    clicked = serializers.IntegerField()
    click_rate = serializers.FloatField()


class _Strategy(serializers.Serializer):
    tier = serializers.CharField()
    label = serializers.CharField()
    people = serializers.IntegerField()
    journey_template = serializers.CharField(help_text="A key of the journey catalog.")
    journey_template_name = serializers.CharField()
    why = serializers.CharField()
    channel = serializers.CharField(allow_null=True, help_text="Null: not enough data.")
    channel_note = serializers.CharField()
    channels = _ChannelRate(many=True)


class _Settings(serializers.Serializer):
    discount_rate = serializers.FloatField()
    lifespan_years = serializers.FloatField()
    high_ltv = serializers.FloatField()
    medium_ltv = serializers.FloatField()
    high_engagement = serializers.FloatField()
    at_risk_days = serializers.IntegerField()
    lost_days = serializers.IntegerField()
    engagement_window_days = serializers.IntegerField()


class ValueReportOutput(serializers.Serializer):
    workspace = serializers.CharField()
    computed_at = serializers.DateTimeField(allow_null=True)
    settings = _Settings()
    people = serializers.IntegerField()
    revenue = serializers.FloatField()
    tiers = _Tier(many=True)
    ltv_histogram = _Bucket(many=True)
    top_customers = _Customer(many=True)
    strategies = _Strategy(many=True)


class ValueReportApi(APIView):
    """The report names the top customers with their emails: like its downloads, it
    takes analytics.export and is audited."""

    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": "analytics.export"}

    @extend_schema(
        responses=ValueReportOutput,
        summary="The customer value report",
        description="Tiers (people, share, revenue), the LTV histogram, the top "
        "customers and a strategy per tier (journey template and best channel by click "
        "rate), from the last recompute (docs/analytics.md, Customer value). It names "
        "customers, so it takes analytics.export and is audited (`value.export`).",
    )
    def get(self, request):
        from analytics.value import value_report_export_record
        from engagement_site.workspaces.services import AuditContext

        workspace = api_workspace(request).workspace
        report = value_report(workspace=workspace)
        value_report_export_record(
            workspace=workspace, export_format="api", context=AuditContext.from_request(request)
        )
        return Response(ValueReportOutput(report).data)


class ProfileValueOutput(serializers.Serializer):
    profile_id = serializers.IntegerField()
    revenue = serializers.DecimalField(max_digits=14, decimal_places=2, coerce_to_string=False)
    orders = serializers.IntegerField()
    average_order_value = serializers.DecimalField(
        max_digits=14, decimal_places=2, coerce_to_string=False
    )
    purchase_frequency = serializers.FloatField(help_text="Orders per year")
    ltv = serializers.DecimalField(max_digits=14, decimal_places=2, coerce_to_string=False)
    engagement_score = serializers.FloatField()
    value_tier = serializers.CharField()
    churn_risk = serializers.FloatField()
    last_engaged_at = serializers.DateTimeField(allow_null=True)
    computed_at = serializers.DateTimeField()


class ProfileValueApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": VIEW}

    @extend_schema(
        responses=ProfileValueOutput,
        summary="A profile's customer value",
        description="LTV, engagement score, value tier and churn risk of one profile "
        "from the last recompute; 404 for another workspace's profile or one not "
        "computed yet.",
    )
    def get(self, request, profile_id: int):
        workspace = api_workspace(request).workspace
        value = profile_value_get(workspace=workspace, profile_id=profile_id)
        return Response(ProfileValueOutput(value).data)
