"""Streamed downloads (CSV exports): a csv.writer target that hands each line back,
and responses that stream under ASGI as well as WSGI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest


class Echo:
    """A file-like object whose write returns the line: csv.writer formats, we yield."""

    def write(self, value: str) -> str:
        return value


def streamed(chunks: Iterator[str], request: HttpRequest) -> Iterator[str] | AsyncIterator[str]:
    """Under ASGI (production runs Daphne) hand Django an asynchronous iterator, which
    it sends as it goes (it would read a synchronous one whole first). Each chunk is
    pulled in the request's thread, where the view opened the database cursor."""
    if not isinstance(request, ASGIRequest):
        return chunks
    next_chunk = sync_to_async(next, thread_sensitive=True)

    async def pull() -> AsyncIterator[str]:
        try:
            while (chunk := await next_chunk(chunks, None)) is not None:
                yield chunk
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                await sync_to_async(close, thread_sensitive=True)()

    return pull()
