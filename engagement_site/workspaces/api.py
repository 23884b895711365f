"""REST API: the caller's workspace, its API keys and its audit log."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from engagement_site.api import page_schema
from engagement_site.workspaces import selectors, services
from engagement_site.workspaces.authentication import HasWorkspacePermission, api_workspace
from engagement_site.workspaces.models import ApiKey, AuditLog
from engagement_site.workspaces.roles import Role
from engagement_site.workspaces.services import AuditContext


class WorkspaceOutput(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    time_zone = serializers.CharField()
    default_locale = serializers.CharField()
    role = serializers.CharField(help_text="The role the caller acts with in this workspace.")


class WorkspaceApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": "journeys.view"}

    @extend_schema(responses=WorkspaceOutput, summary="The workspace the credentials belong to")
    def get(self, request):
        access = api_workspace(request)
        workspace = access.workspace
        data = {
            "slug": workspace.slug,
            "name": workspace.name,
            "time_zone": workspace.time_zone,
            "default_locale": workspace.default_locale,
            "role": access.role,
        }
        return Response(WorkspaceOutput(data).data)


class ApiKeyOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.CharField()
    role = serializers.CharField()
    display_prefix = serializers.CharField()
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)


class ApiKeyCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    kind = serializers.ChoiceField(choices=ApiKey.Kind.choices)
    role = serializers.ChoiceField(
        choices=Role.choices, required=False, allow_blank=True, default=""
    )


class ApiKeyCreatedOutput(ApiKeyOutput):
    key = serializers.CharField(
        help_text="The key itself. Secret keys are shown only in this response."
    )


class CreatedAtCursor(CursorPagination):
    ordering = "-created_at"


class ApiKeyListApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": "api_keys.view", "POST": "api_keys.edit"}

    @extend_schema(
        responses=page_schema("ApiKeyPage", ApiKeyOutput(many=True)), summary="List API keys"
    )
    def get(self, request):
        keys = selectors.workspace_api_keys(workspace=api_workspace(request).workspace)
        paginator = CreatedAtCursor()
        page = paginator.paginate_queryset(keys, request, view=self)
        return paginator.get_paginated_response(ApiKeyOutput(page, many=True).data)

    @extend_schema(
        request=ApiKeyCreateInput, responses={201: ApiKeyCreatedOutput}, summary="Create an API key"
    )
    def post(self, request):
        payload = ApiKeyCreateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            api_key, raw_key = services.api_key_create(
                workspace=api_workspace(request).workspace,
                context=AuditContext.from_request(request),
                **payload.validated_data,
            )
        except services.ValidationError as error:
            raise serializers.ValidationError({"detail": error.messages}) from None
        data = ApiKeyOutput(api_key).data | {"key": raw_key}
        return Response(data, status=status.HTTP_201_CREATED)


class ApiKeyRevokeApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"POST": "api_keys.edit"}

    @extend_schema(request=None, responses=ApiKeyOutput, summary="Revoke an API key")
    def post(self, request, api_key_id: int):
        api_key = selectors.workspace_api_key_get(
            workspace=api_workspace(request).workspace, api_key_id=api_key_id
        )
        api_key = services.api_key_revoke(
            api_key=api_key, context=AuditContext.from_request(request)
        )
        return Response(ApiKeyOutput(api_key).data)


class AuditLogOutput(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label")
    # Services name their own actions ("journey.publish", "segment.create") beside the
    # generic ones of AuditAction, so the field is any string, not that enum.
    action = serializers.CharField(help_text='What happened, e.g. "login" or "journey.publish".')

    class Meta:
        model = AuditLog
        fields = [
            "id", "sequence", "created_at", "actor", "action", "object_type", "object_id",
            "object_repr", "changes", "ip_address", "user_agent", "row_hash",
        ]  # fmt: skip


class SequenceCursor(CursorPagination):
    ordering = "-sequence"


class AuditLogListApi(APIView):
    permission_classes = [HasWorkspacePermission]
    required_permissions = {"GET": "audit_log.view"}

    @extend_schema(
        parameters=[OpenApiParameter("action", str, description="Only rows of this action.")],
        responses=page_schema("AuditLogPage", AuditLogOutput(many=True)),
        summary="Read the workspace's audit log",
    )
    def get(self, request):
        rows = selectors.workspace_audit_log(workspace=api_workspace(request).workspace)
        action = request.query_params.get("action")
        if action:
            rows = rows.filter(action=action)
        paginator = SequenceCursor()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(AuditLogOutput(page, many=True).data)
