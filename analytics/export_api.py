"""REST API download of warehouse export rows (analytics/exports.py) as a streamed CSV."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from analytics.exports import (
    MAX_DOWNLOAD_DAYS,
    TABLE_NAMES,
    TABLES,
    ExportRefused,
    warehouse_csv_download,
)
from engagement_site.workspaces.authentication import HasWorkspacePermission, api_workspace
from engagement_site.workspaces.services import AuditContext
from segments.segment_api import CsvDownloadNegotiation


class ExportQuery(serializers.Serializer):
    since = serializers.DateField(input_formats=["%Y-%m-%d"], help_text="first UTC day")
    until = serializers.DateField(
        input_formats=["%Y-%m-%d"], required=False, help_text="last UTC day (default: since)"
    )
    format = serializers.ChoiceField(
        choices=["csv"],
        default="csv",
        help_text="csv only; Parquet files come from the scheduled export or "
        "manage.py export_warehouse",
    )


def _columns_text() -> str:
    return "; ".join(
        f"`{name}`: " + ", ".join(column.name for column in table.columns)
        for name, table in TABLES.items()
    )


class WarehouseExportApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": "analytics.export"}
    renderer_classes = [JSONRenderer]
    content_negotiation_class = CsvDownloadNegotiation

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "table", OpenApiTypes.STR, OpenApiParameter.PATH, enum=list(TABLE_NAMES)
            ),
            ExportQuery,
        ],
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            400: OpenApiResponse(description="An unknown table, a bad date or range."),
        },
        summary="Download a table's rows as CSV",
        description="The workspace's rows of one table whose time column (messages: "
        "created_at, message events: at, events: timestamp) falls on the UTC days since "
        f"to until, at most {MAX_DOWNLOAD_DAYS} days, oldest first, streamed, with the "
        "columns of the warehouse files (docs/analytics.md): " + _columns_text() + ". "
        "Audited (export).",
    )
    def get(self, request, table: str):
        workspace = api_workspace(request).workspace
        if table not in TABLES:
            raise serializers.ValidationError(
                {"table": [f"Unknown table {table!r}: expected one of {', '.join(TABLE_NAMES)}."]}
            )
        query = ExportQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        since = query.validated_data["since"]
        try:
            return warehouse_csv_download(
                request=request._request,
                workspace=workspace,
                table=table,
                since=since,
                until=query.validated_data.get("until", since),
                context=AuditContext.from_request(request),
            )
        except ExportRefused as refusal:
            raise serializers.ValidationError({refusal.field: [str(refusal)]}) from None
