"""A person's rights over what the workspace holds about them: access (export),
rectification (trait updates through the API) and erasure.

Export and erase cover the same rows, found the same way: the profile, its traits,
identities, merges, trait history and events (every partition), the messageIds of
those events, and the quarantined events that carry one of its ids. What is kept after
an erase is anonymous: the audit row names the profile id and the counts, never a
name, email or id the person was known by (the audit log is append-only, so nothing
personal may ever be written to it: trait updates record the trait names, not values).

Other apps that keep rows about a profile (delivery's message log, journey
enrollments, per-person analytics) register an eraser and an exporter here, from their
AppConfig.ready():

    from segments.privacy import PROFILE_ERASERS, PROFILE_EXPORTERS

    def messages_erase(*, workspace: Workspace, profile: Profile) -> dict[str, int]:
        # delete the rows, or blank their personal fields where a row must stay for
        # anonymous counts (sent / delivered / opened per journey and day)
        return {"messages": deleted}

    def messages_export(*, workspace: Workspace, profile: Profile) -> dict[str, list]:
        return {"messages": [...json-ready rows...]}

    PROFILE_ERASERS.append(messages_erase)
    PROFILE_EXPORTERS.append(messages_export)

Erasers run inside the erase transaction with the profile row locked, before the
profile's own rows are deleted; their counts join the returned (and audited) counts.
Anonymous counters need nothing: they never held the person.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import orjson
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.http import Http404
from django.utils import timezone

from engagement_site.workspaces.models import AuditAction, Workspace, validate_time_zone
from engagement_site.workspaces.services import AuditContext, audit_record
from segments import selectors
from segments.models import (
    Event,
    EventMessageId,
    Identity,
    Profile,
    ProfileMerge,
    TraitChange,
)

EXPORT_FORMAT = "engagement.profile-export.v1"

ProfileEraser = Callable[..., Mapping[str, int]]
ProfileExporter = Callable[..., Mapping[str, list]]

# Called as eraser(workspace=..., profile=...) -> {"table": rows removed}.
PROFILE_ERASERS: list[ProfileEraser] = []
# Called as exporter(workspace=..., profile=...) -> {"section": [json-ready rows]}.
PROFILE_EXPORTERS: list[ProfileExporter] = []


def _audit_target(profile_id: int) -> dict[str, str]:
    # str(profile) is its display name (a name or an email): never in the audit log.
    return {
        "object_type": Profile._meta.label,
        "object_id": str(profile_id),
        "object_repr": f"Profile {profile_id}",
    }


# --------------------------------------------------------------------------- export


def _json_ready(row: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in row.items()
    }


def _rows(queryset, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    return [_json_ready(row) for row in queryset.values(*fields).iterator(chunk_size=2000)]


PROFILE_FIELDS = (
    "id", "user_id", "anonymous_ids", "email", "phone", "time_zone", "locale", "traits",
    "first_seen", "last_seen", "created_at",
)  # fmt: skip
IDENTITY_FIELDS = ("kind", "value", "created_at")
MERGE_FIELDS = (
    "merged_at", "reason", "merged_profile_id", "merged_identities", "merged_traits",
    "events_moved", "message_id",
)  # fmt: skip
TRAIT_CHANGE_FIELDS = ("changed_at", "trait", "before", "after", "source", "message_id")
EVENT_FIELDS = (
    "id", "type", "name", "timestamp", "original_timestamp", "sent_at", "received_at",
    "message_id", "properties", "context", "violations",
)  # fmt: skip
REJECTED_EVENT_FIELDS = (
    "id", "received_at", "code", "reason", "event_type", "event_name", "message_id",
    "payload", "raw",
)  # fmt: skip


def profile_export(
    *, workspace: Workspace, profile: Profile, context: AuditContext
) -> dict[str, Any]:
    """Everything held about the profile, as a JSON-ready dict (times in ISO 8601),
    oldest first within each section. Audited as an export, with the section sizes.

    Takes `context` although it only reads: every export is someone's export, and
    requiring it means no caller can hand data out without the audit row."""
    if profile.workspace_id != workspace.pk:
        raise Http404("No such profile")
    known_ids = selectors.profile_known_ids(workspace=workspace, profile=profile)
    document: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "exported_at": timezone.now().isoformat(),
        "workspace": workspace.slug,
        "profile": _json_ready({field: getattr(profile, field) for field in PROFILE_FIELDS}),
        "identities": _rows(
            selectors.profile_identities(workspace=workspace, profile=profile), IDENTITY_FIELDS
        ),
        "merges": _rows(
            selectors.profile_merges(workspace=workspace, profile=profile).reverse(),
            MERGE_FIELDS,
        ),
        "trait_changes": _rows(
            selectors.profile_trait_changes(workspace=workspace, profile=profile).reverse(),
            TRAIT_CHANGE_FIELDS,
        ),
        "events": _rows(
            selectors.profile_events(workspace=workspace, profile=profile).reverse(),
            EVENT_FIELDS,
        ),
        "rejected_events": _rows(
            selectors.profile_rejected_events(workspace=workspace, known_ids=known_ids).reverse(),
            REJECTED_EVENT_FIELDS,
        ),
    }
    for exporter in PROFILE_EXPORTERS:
        document.update(exporter(workspace=workspace, profile=profile))
    audit_record(
        context=context,
        action=AuditAction.PROFILE_EXPORT,
        workspace=workspace,
        changes={
            "sections": {
                key: len(value) for key, value in document.items() if isinstance(value, list)
            }
        },
        **_audit_target(profile.pk),
    )
    return document


def profile_export_json(document: dict[str, Any]) -> bytes:
    """The export as the file the UI and the admin hand out."""
    return orjson.dumps(document, option=orjson.OPT_INDENT_2)


# --------------------------------------------------------------------------- erase


def _events_delete(*, workspace: Workspace, profile: Profile) -> tuple[int, int]:
    """Delete the profile's events from every partition (one DELETE on the parent table)
    and the dedup rows of their messageIds, in one statement. Returns both counts."""
    events = Event._meta.db_table
    message_ids = EventMessageId._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH erased_events AS (
                DELETE FROM {events} WHERE workspace_id = %s AND profile_id = %s
                RETURNING message_id
            ), erased_message_ids AS (
                DELETE FROM {message_ids}
                 WHERE workspace_id = %s AND message_id IN (SELECT message_id FROM erased_events)
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM erased_events), (SELECT count(*) FROM erased_message_ids)
            """,
            [workspace.pk, profile.pk, workspace.pk],
        )
        event_count, message_id_count = cursor.fetchone()
    return event_count, message_id_count


@transaction.atomic
def profile_erase(
    *, workspace: Workspace, profile: Profile, context: AuditContext
) -> dict[str, int]:
    """Erase the profile and everything that identifies the person, in one transaction,
    and audit it with the counts. Returns the counts of rows removed, by kind.

    Http404 when the profile is not (or no longer) in the workspace, so a repeated
    request erases nothing twice. Events that arrive for the same ids afterwards make
    a new profile: blocking them needs a suppression list (not built yet)."""
    profile = Profile.objects.select_for_update().filter(workspace=workspace, pk=profile.pk).first()
    if profile is None:
        raise Http404("No such profile")
    profile_id = profile.pk
    known_ids = selectors.profile_known_ids(workspace=workspace, profile=profile)

    counts: dict[str, int] = {}
    for eraser in PROFILE_ERASERS:
        for key, removed in eraser(workspace=workspace, profile=profile).items():
            counts[key] = counts.get(key, 0) + removed
    counts["rejected_events"], _ = selectors.profile_rejected_events(
        workspace=workspace, known_ids=known_ids
    ).delete()
    counts["events"], counts["event_message_ids"] = _events_delete(
        workspace=workspace, profile=profile
    )
    for key, model in (
        ("identities", Identity),
        ("merges", ProfileMerge),
        ("trait_changes", TraitChange),
    ):
        counts[key], _ = model.objects.filter(workspace=workspace, profile=profile).delete()
    Profile.objects.filter(pk=profile_id).delete()
    counts["profiles"] = 1

    audit_record(
        context=context,
        action=AuditAction.PROFILE_ERASE,
        workspace=workspace,
        changes={"erased": counts},
        **_audit_target(profile_id),
    )
    return counts


# --------------------------------------------------------------------------- rectification

# Traits that Profile keeps a copy of in a column (delivery and search read those):
# trait -> column. "timezone" is the spelling of Segment's context, as ingestion accepts.
MIRRORED_TRAITS = {
    "email": "email",
    "phone": "phone",
    "time_zone": "time_zone",
    "timezone": "time_zone",
    "locale": "locale",
}
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")
_MISSING = object()


def _same(before: Any, after: Any) -> bool:
    # Not ==: in Python 1 == 1.0 == True, in JSON they are three different values.
    return orjson.dumps(before, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        after, option=orjson.OPT_SORT_KEYS
    )


def traits_merge_patch(
    traits: dict[str, Any], patch: dict[str, Any], *, prefix: str = ""
) -> tuple[dict[str, Any], list[tuple[str, Any, Any]]]:
    """JSON Merge Patch (RFC 7396) of traits: a key set to null is removed, an object
    merges into an object, anything else replaces. Returns the new traits and the
    changes as (dotted path, before, after), `None` standing for "absent"."""
    result = dict(traits)
    changes: list[tuple[str, Any, Any]] = []
    for key, value in patch.items():
        path = f"{prefix}{key}"
        before = result.get(key, _MISSING)
        if value is None:
            if before is not _MISSING:
                del result[key]
                changes.append((path, before, None))
        elif isinstance(value, dict) and isinstance(before, dict):
            result[key], nested = traits_merge_patch(before, value, prefix=f"{path}.")
            changes.extend(nested)
        else:
            if isinstance(value, dict):
                value, _ = traits_merge_patch({}, value)  # drops the nulls inside
            if before is _MISSING or not _same(before, value):
                changes.append((path, None if before is _MISSING else before, value))
            result[key] = value
    return result, changes


def _column_problem(trait: str, column: str, value: str) -> str | None:
    if len(value) > Profile._meta.get_field(column).max_length:
        return f"{trait} is longer than {Profile._meta.get_field(column).max_length} characters."
    if not value:
        return None
    if column == "email" and "@" not in value:
        return f"{trait} must be an email address."
    if column == "phone" and not _E164.match(value):
        return f"{trait} must be in E.164 form, such as +4915112345678."
    if column == "locale" and not _LOCALE.match(value):
        return f"{trait} must be a locale such as en or pt-BR."
    if column == "time_zone":
        try:
            validate_time_zone(value)
        except ValidationError:
            return f"{trait} must be an IANA time zone such as Europe/Berlin."
    return None


def _mirrored_columns(traits: dict[str, Any], changed: set[str]) -> dict[str, str]:
    """The columns to set from the changed traits (a removed trait blanks its column).
    Stricter than ingestion, which skips unusable values: an API caller gets told."""
    columns: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    for trait, column in MIRRORED_TRAITS.items():
        if trait not in changed:
            continue
        value = traits.get(trait, "")
        problem = (
            f"{trait} must be a string (or null to remove it)."
            if not isinstance(value, str)
            else _column_problem(trait, column, value)
        )
        if problem:
            errors[trait] = [problem]
        else:
            columns[column] = value
    if errors:
        raise ValidationError(errors)
    return columns


@transaction.atomic
def profile_traits_update(
    *,
    workspace: Workspace,
    profile: Profile,
    patch: dict[str, Any],
    context: AuditContext,
    source: str = "api",
) -> Profile:
    """Merge `patch` into the profile's traits (see `traits_merge_patch`), keep the
    email / phone / time_zone / locale columns equal to their traits, record each
    change in the trait history (the newest TRAIT_HISTORY_KEPT are kept) and audit the
    names of the changed traits. ValidationError names the offending trait.

    Takes the profile row lock, so a concurrent identify cannot lose this update."""
    locked = Profile.objects.select_for_update().filter(workspace=workspace, pk=profile.pk).first()
    if locked is None:
        raise Http404("No such profile")
    traits = locked.traits if isinstance(locked.traits, dict) else {}
    new_traits, changes = traits_merge_patch(traits, patch)
    if not changes:
        return locked
    too_long = [
        path
        for path, _, _ in changes
        if len(path) > TraitChange._meta.get_field("trait").max_length
    ]
    if too_long:
        raise ValidationError({path: ["The trait's dotted path is too long."] for path in too_long})
    columns = _mirrored_columns(new_traits, {path.split(".", 1)[0] for path, _, _ in changes})

    locked.traits = new_traits
    for column, value in columns.items():
        setattr(locked, column, value)
    locked.save(update_fields=["traits", *columns])

    now = timezone.now()
    TraitChange.objects.bulk_create(
        TraitChange(
            workspace=workspace,
            profile=locked,
            trait=path,
            before=before,
            after=after,
            source=source,
            changed_at=now,
        )
        for path, before, after in changes
    )
    newest = (
        TraitChange.objects.filter(profile=locked)
        .order_by("-changed_at", "-id")
        .values("pk")[: TraitChange.TRAIT_HISTORY_KEPT]
    )
    TraitChange.objects.filter(profile=locked).exclude(pk__in=newest).delete()

    audit_record(
        context=context,
        action=AuditAction.PROFILE_UPDATE,
        workspace=workspace,
        changes={
            "traits": {
                "set": sorted(path for path, _, after in changes if after is not None),
                "removed": sorted(path for path, _, after in changes if after is None),
            },
            "source": source,
        },
        **_audit_target(locked.pk),
    )
    return locked
