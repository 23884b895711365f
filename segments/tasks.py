"""RQ entry points of the segments app: take ids, call one service, safe to run twice."""

from __future__ import annotations

import logging

from django.conf import settings
from django.utils.module_loading import import_string

from engagement_site.jobs import get_queue

logger = logging.getLogger(__name__)

INGEST_QUEUE = "ingest"


def ingested_batch_process(workspace_id: int, profile_ids: list[int], event_ids: list[int]) -> None:
    """The real-time hook of ingestion: one job per stored batch, run after its commit.

    Calls every function named (by dotted path) in settings.INGESTION_HOOKS, in order,
    as `hook(workspace_id=..., profile_ids=[...], event_ids=[...])`:

    - `profile_ids`: the profiles the batch touched (created, updated, or the survivor
      of a merge), sorted. A profile merged away by the batch is not listed: it no
      longer exists, and its events and identities now belong to the survivor.
    - `event_ids`: the events the batch stored (`segments_event.id`; duplicates and
      quarantined calls are not stored, so not listed).

    This is where segment evaluation and journey triggers plug in. A hook must be
    idempotent (RQ may run a job twice, and a failed job is retried as a whole), must
    fetch what it needs by id within the workspace, and must not assume it sees the
    batches of a profile in order. Every hook runs even when an earlier one fails; the
    job then fails with the first error so that it shows in RQ's failed registry.
    """
    first_error: Exception | None = None
    for path in settings.INGESTION_HOOKS:
        try:
            hook = import_string(path)
            hook(workspace_id=workspace_id, profile_ids=profile_ids, event_ids=event_ids)
        except Exception as error:
            logger.exception("ingestion hook %s failed for workspace %s", path, workspace_id)
            first_error = first_error or error
    if first_error is not None:
        raise first_error


def ingested_batch_enqueue(
    *, workspace_id: int, profile_ids: list[int], event_ids: list[int]
) -> None:
    """Enqueue ingested_batch_process. Call it from transaction.on_commit only (hence
    commit_mode "auto": the commit has happened, enqueue now)."""
    get_queue(INGEST_QUEUE, commit_mode="auto").enqueue(
        ingested_batch_process, workspace_id, profile_ids, event_ids
    )


def import_job_process(import_job_id: int) -> None:
    """Run one import (queued by segments.importers.import_job_start after commit).
    Safe to run twice: a claimed job is not claimed again, and rows already imported
    are duplicates by messageId."""
    from segments.importers import import_job_run

    import_job_run(import_job_id=import_job_id)


def segment_recompute(segment_id: int) -> None:
    """Full re-evaluation of one dynamic segment (queued by the scheduler when due)."""
    from segments.membership import segment_membership_refresh, segment_record_error
    from segments.models import Segment
    from segments.rules import RuleError

    segment = Segment.objects.filter(pk=segment_id, kind=Segment.Kind.DYNAMIC).first()
    if segment is None:  # deleted or made static since it was queued
        return
    try:
        segment_membership_refresh(segment=segment)
    except RuleError as error:
        logger.warning("segment %s cannot be evaluated: %s", segment_id, error)
        segment_record_error(segment=segment, error=error)
