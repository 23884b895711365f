"""CSV export of a segment's members, shared by the page and the REST API: audited,
and streamed in chunks (also under ASGI, where Django would otherwise read a
synchronous iterator whole into memory before sending it)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from django.http import HttpRequest, StreamingHttpResponse

from engagement_site.streaming import Echo, streamed
from engagement_site.workspaces.models import Workspace
from engagement_site.workspaces.services import AuditContext, audit_record
from segments import selectors
from segments.models import Segment

EXPORT_COLUMNS = ("profile_id", "user_id", "email", "phone", "time_zone", "entered_at")
EXPORT_ROWS_PER_CHUNK = 1000


def _csv_chunks(rows: Iterable[tuple]) -> Iterator[str]:
    writer = csv.writer(Echo())
    lines = [writer.writerow(EXPORT_COLUMNS)]
    for *values, entered_at in rows:
        lines.append(writer.writerow([*values, entered_at.isoformat()]))
        if len(lines) >= EXPORT_ROWS_PER_CHUNK:
            yield "".join(lines)
            lines = []
    if lines:
        yield "".join(lines)


def segment_members_export(
    *, request: HttpRequest, workspace: Workspace, segment: Segment, context: AuditContext
) -> StreamingHttpResponse:
    """The segment's current members as a streamed CSV download, recorded in the audit
    log (`segment.export`)."""
    audit_record(
        context=context,
        action="segment.export",
        workspace=workspace,
        target=segment,
        changes={"member_count": segment.member_count},
    )
    rows = selectors.segment_members_for_export(workspace=workspace, segment=segment)
    response = StreamingHttpResponse(
        streamed(_csv_chunks(rows), request), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="segment-{segment.pk}-members.csv"'
    return response
