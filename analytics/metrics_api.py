"""REST API (v1) of the dashboards' numbers: workspace metrics grouped by day, journey,
version, node, variant or channel; one journey's metrics; the conversions. The same
reads as the pages (analytics.reports), so the API and the pages always agree."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import reports
from analytics.filters import ReportFilters
from analytics.models import Conversion
from analytics.selectors import workspace_conversions
from engagement_site.api import newest_first_pagination
from engagement_site.workspaces.authentication import HasWorkspacePermission, api_workspace
from journeys import selectors as journey_selectors
from segments.api import MAX_PAGE_SIZE, PAGE_PARAMETERS, _page

VIEW = "analytics.view"

RANGE_PARAMETERS = [
    OpenApiParameter(
        "start",
        OpenApiTypes.DATE,
        description="First day (workspace time zone); default 30 days before `end`.",
    ),
    OpenApiParameter(
        "end", OpenApiTypes.DATE, description="Last day, included; default today. At most 366 days."
    ),
]
FILTER_PARAMETERS = [
    OpenApiParameter(
        "channel", OpenApiTypes.STR, description="Only this channel (email, sms, ...)."
    ),
    OpenApiParameter("journey", OpenApiTypes.INT, description="Only this journey."),
]


def _filters(request, *, workspace) -> ReportFilters:
    """The query's range and filters; 400 naming the bad field; 404 for a journey that
    is not the workspace's."""
    filters = ReportFilters(request.query_params, workspace=workspace)
    if not filters.is_valid():
        raise serializers.ValidationError(
            {name: [str(error) for error in errors] for name, errors in filters.errors.items()}
        )
    if filters.value("journey"):
        journey_selectors.journey_get(workspace=workspace, journey_id=filters.value("journey"))
    return filters


class _Counts(serializers.Serializer):
    sent = serializers.IntegerField()
    delivered = serializers.IntegerField()
    opened = serializers.IntegerField()
    clicked = serializers.IntegerField()
    bounced = serializers.IntegerField()
    failed = serializers.IntegerField()
    suppressed = serializers.IntegerField(help_text="Not sent: consent, suppression, caps.")
    unsubscribed = serializers.IntegerField()
    complained = serializers.IntegerField()
    conversions = serializers.IntegerField(help_text="Credited to the last touch.")


class _Rates(serializers.Serializer):
    delivery_rate = serializers.FloatField(allow_null=True)
    open_rate = serializers.FloatField(allow_null=True)
    click_rate = serializers.FloatField(allow_null=True)
    bounce_rate = serializers.FloatField(allow_null=True)
    unsubscribe_rate = serializers.FloatField(allow_null=True)
    conversion_rate = serializers.FloatField(allow_null=True)


class _Row(_Counts):
    day = serializers.DateField(required=False)
    journey = serializers.IntegerField(required=False, help_text="0: outside journeys.")
    version = serializers.IntegerField(required=False)
    node = serializers.CharField(required=False, allow_blank=True)
    variant = serializers.CharField(required=False, allow_blank=True)
    channel = serializers.CharField(required=False, allow_blank=True)
    revenue = serializers.DecimalField(max_digits=16, decimal_places=2)
    rates = _Rates()


class MetricsOutput(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    totals = _Counts()
    revenue = serializers.DecimalField(max_digits=16, decimal_places=2)
    rates = _Rates(help_text="Per message sent.")
    rows = _Row(many=True, help_text="One per combination of the `group_by` dimensions.")


class MetricsApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": VIEW}

    @extend_schema(
        parameters=[
            *RANGE_PARAMETERS,
            *FILTER_PARAMETERS,
            OpenApiParameter(
                "group_by",
                OpenApiTypes.STR,
                description="Comma-separated dimensions of `rows`: "
                + ", ".join(reports.GROUPINGS)
                + ". Empty: totals only.",
            ),
        ],
        responses=MetricsOutput,
        summary="Message metrics",
        description="Message events counted once each (sent, delivered, opened, ...), "
        "conversions and revenue (credited to the last touch), and rates per message sent, "
        "over a date range in the workspace's time zone, optionally grouped. 400 names a "
        "bad field; another workspace's journey answers 404.",
    )
    def get(self, request):
        workspace = api_workspace(request).workspace
        filters = _filters(request, workspace=workspace)
        raw = request.query_params.get("group_by", "")
        group_by = [name.strip() for name in raw.split(",") if name.strip()]
        unknown = [name for name in group_by if name not in reports.GROUPINGS]
        if unknown or len(set(group_by)) != len(group_by):
            raise serializers.ValidationError(
                {
                    "group_by": [
                        f"Unknown or repeated dimension {', '.join(unknown or group_by)!s}: "
                        f"use {', '.join(reports.GROUPINGS)}."
                    ]
                }
            )
        date_range = filters.date_range()
        options = {
            "workspace": workspace,
            "date_range": date_range,
            "channel": filters.value("channel"),
            "journey_id": filters.value("journey"),
        }
        summary = reports.overview(**options)
        rows = reports.metric_rows(group_by=group_by, **options) if group_by else []
        return Response(
            MetricsOutput(
                {
                    "start": date_range.start,
                    "end": date_range.end,
                    "totals": summary["totals"],
                    "revenue": summary["revenue"],
                    "rates": summary["rates"],
                    "rows": rows,
                }
            ).data
        )


class _Node(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.CharField()
    title = serializers.CharField()
    summary = serializers.CharField()
    entered = serializers.IntegerField()
    waiting = serializers.IntegerField()
    sent = serializers.IntegerField()
    delivered = serializers.IntegerField()
    opened = serializers.IntegerField()
    clicked = serializers.IntegerField()
    failed = serializers.IntegerField(help_text="Failed or bounced.")
    converted = serializers.IntegerField()
    share = serializers.FloatField(allow_null=True, help_text="Reached / entered the trigger.")


class _Credit(serializers.Serializer):
    node = serializers.CharField(allow_blank=True, help_text="Empty: no message in the window.")
    channel = serializers.CharField(allow_blank=True)
    first_conversions = serializers.IntegerField()
    first_revenue = serializers.DecimalField(max_digits=16, decimal_places=2)
    last_conversions = serializers.IntegerField()
    last_revenue = serializers.DecimalField(max_digits=16, decimal_places=2)


class _Attribution(serializers.Serializer):
    conversions = serializers.IntegerField()
    revenue = serializers.DecimalField(max_digits=16, decimal_places=2)
    rows = _Credit(many=True)


class _People(serializers.Serializer):
    entered = serializers.IntegerField()
    active = serializers.IntegerField()
    converted = serializers.IntegerField()
    sent = serializers.IntegerField()
    opened = serializers.IntegerField()
    clicked = serializers.IntegerField()


class JourneyMetricsOutput(serializers.Serializer):
    journey = serializers.IntegerField()
    totals = _People(help_text="Since the journey started.")
    nodes = _Node(many=True, help_text="The live version's steps from the trigger outwards.")
    attribution = _Attribution(help_text="All conversions, by first and by last touch.")
    start = serializers.DateField()
    end = serializers.DateField()
    daily = _Row(many=True, help_text="Per day of the range.")


class JourneyMetricsApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": VIEW}

    @extend_schema(
        parameters=RANGE_PARAMETERS,
        responses=JourneyMetricsOutput,
        summary="A journey's metrics",
        description="People and messages per step since the journey started (what the "
        "builder shows live), conversions credited by first and last touch, and message "
        "and conversion counts per day of the range. Experiments: "
        "`/api/v1/journeys/{id}/experiments`.",
    )
    def get(self, request, journey_id: int):
        workspace = api_workspace(request).workspace
        journey = journey_selectors.journey_get(workspace=workspace, journey_id=journey_id)
        filters = _filters(request, workspace=workspace)
        date_range = filters.date_range()
        report = reports.journey_report(workspace=workspace, journey=journey, date_range=date_range)
        return Response(
            JourneyMetricsOutput(
                {
                    "journey": journey.pk,
                    "totals": report["live"]["totals"],
                    "nodes": report["funnel"],
                    "attribution": report["attribution"],
                    "start": date_range.start,
                    "end": date_range.end,
                    "daily": reports.metric_rows(
                        workspace=workspace,
                        date_range=date_range,
                        group_by=["day"],
                        journey_id=journey.pk,
                    ),
                }
            ).data
        )


class _Touch(serializers.Serializer):
    message = serializers.IntegerField(source="pk")
    node = serializers.CharField(source="node_id")
    variant = serializers.CharField()
    channel = serializers.CharField()
    sent_at = serializers.DateTimeField()


class ConversionOutput(serializers.ModelSerializer):
    journey = serializers.IntegerField(source="journey_id")
    version = serializers.IntegerField(source="journey_version_id")
    profile = serializers.IntegerField(source="profile_id")
    user_id = serializers.CharField(source="profile.user_id")
    event = serializers.CharField(source="event_name")
    first_touch = _Touch(allow_null=True)
    last_touch = _Touch(allow_null=True)

    class Meta:
        model = Conversion
        fields = [
            "id", "journey", "version", "profile", "user_id", "event", "event_id", "revenue",
            "at", "first_touch", "last_touch",
        ]  # fmt: skip


class ConversionListApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": VIEW}

    @extend_schema(
        parameters=[
            *RANGE_PARAMETERS,
            OpenApiParameter("journey", OpenApiTypes.INT, description="Only this journey."),
            *PAGE_PARAMETERS,
        ],
        responses=_page("ConversionPage", ConversionOutput(many=True)),
        summary="List conversions",
        description="Journey goals reached, newest first, with revenue and the messages "
        "credited as first and last touch.",
    )
    def get(self, request):
        workspace = api_workspace(request).workspace
        filters = _filters(request, workspace=workspace)
        date_range = filters.date_range()
        rows = workspace_conversions(
            workspace=workspace,
            starts_at=date_range.starts_at,
            ends_before=date_range.ends_before,
            journey_id=filters.value("journey"),
        ).select_related("profile", "first_touch", "last_touch")
        paginator = newest_first_pagination("at", max_page_size=MAX_PAGE_SIZE)
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(ConversionOutput(page, many=True).data)
