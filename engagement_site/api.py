"""Shared REST API pieces: errors always carry `code` and `message`."""

from __future__ import annotations

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
