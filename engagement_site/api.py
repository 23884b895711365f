"""Shared REST API pieces: errors always carry `code` and `message`."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context) -> Response | None:
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data
    code = getattr(exc, "default_code", "error")
    if isinstance(detail, dict) and "detail" in detail and len(detail) == 1:
        message = str(detail["detail"])
        code = getattr(detail["detail"], "code", code)
        response.data = {"code": code, "message": message}
    else:
        response.data = {
            "code": code,
            "message": "The request has invalid fields.",
            "errors": detail,
        }
    return response


def newest_first_pagination(time_field: str, *, max_page_size: int = 500) -> CursorPagination:
    """Cursor pagination on (time_field, id), newest first: exact pages however rows
    tie on time."""
    paginator = CursorPagination()
    paginator.ordering = (f"-{time_field}", "-id")
    paginator.page_size_query_param = "page_size"
    paginator.max_page_size = max_page_size
    return paginator


def page_schema(name: str, item: serializers.Serializer) -> serializers.Serializer:
    """The OpenAPI schema of one cursor page: {next, previous, results}."""
    return inline_serializer(
        name=name,
        fields={
            "next": serializers.URLField(
                allow_null=True, help_text="The next page; null on the last."
            ),
            "previous": serializers.URLField(
                allow_null=True, help_text="The previous page; null on the first."
            ),
            "results": item,
        },
    )


ERROR_SCHEMA_NAME = "Error"
ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error of the API: a machine-readable `code` and a sentence for "
    "people; `errors` names each invalid field when the request had some.",
    "properties": {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "errors": {},
    },
    "required": ["code", "message"],
}
# Answered by any operation: authentication (401), the role's permissions (403, naming
# the permission), the workspace or an object it does not have (404). 400 only where
# the operation takes input (parameters or a body).
_ERROR_RESPONSES = {
    "400": "The request has invalid fields or values (`errors` names each one).",
    "401": "No secret key, or an unknown or revoked one.",
    "403": "The key's role lacks the permission, named in `message`.",
    "404": "The workspace, or an object in the path, does not exist for this caller.",
}


def error_response(description: str) -> OpenApiResponse:
    """An error status for `extend_schema(responses=...)`, such as 409 for a state that
    refuses the request: `document_error_responses` gives it the error body."""
    return OpenApiResponse(description=description)


def document_error_responses(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: every operation documents the errors it can
    answer, with the one error body, unless its view documented that status itself (an
    error status a view documents without a body, `error_response`, gets the error body)."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(ERROR_SCHEMA_NAME, ERROR_SCHEMA)
    reference = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for status_code, response in operation["responses"].items():
                if status_code.startswith(("4", "5")) and "content" not in response:
                    response["content"] = {"application/json": {"schema": reference}}
            takes_input = bool(operation.get("parameters") or operation.get("requestBody"))
            for status_code, description in _ERROR_RESPONSES.items():
                if status_code == "400" and not takes_input:
                    continue
                operation["responses"].setdefault(
                    status_code,
                    {
                        "content": {"application/json": {"schema": reference}},
                        "description": description,
                    },
                )
    return result
