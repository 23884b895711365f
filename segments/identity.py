"""Identity resolution and profile merges.

Every call names a person by a userId, an anonymousId, or both (alias: previousId and
userId). The Identity table maps each id to one Profile; ingestion resolves a whole
batch through it with a few statements (`IdentityGraph.load`), works out in memory what
every call means (`IdentityGraph.resolve` / `.alias`), then writes the outcome in bulk
(`IdentityGraph.save`).

The rules, Segment's, kept conservative where a wrong merge would be hard to undo:

- A call that carries a userId and an anonymousId links them. If the anonymous id
  already belongs to another profile, that profile is merged into the user's profile
  (events moved, identities moved, traits merged with the user's profile winning), the
  merge is recorded as a ProfileMerge and the anonymous profile is deleted.
- identify never merges two profiles that each have their own, different user id (a
  shared device where a second person logs in): the anonymous id stays where it is and
  the call goes to the profile of its userId.
- alias(previousId -> userId) merges the profile of previousId (a user id or an
  anonymous id) into the profile of userId, whatever user ids they have; a profile
  known only by previousId takes userId as its user id.

Concurrency: rows are locked in a fixed order. First transaction-level advisory locks on
every id that is not in the Identity table yet (two batches that both see a new id
serialize there, and the second then finds the first's profile), taken in hash order;
then the profiles involved, `SELECT ... FOR UPDATE` in id order. A profile that vanished
meanwhile (merged away by a concurrent batch) is resolved again through its ids.
"""

from __future__ import annotations

import copy
import re
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
from django.db import connection, transaction
from django.utils import timezone

from engagement_site.workspaces.models import Workspace
from segments.models import Identity, Profile, ProfileMerge, TraitChange

USER_ID = Identity.Kind.USER_ID.value
ANONYMOUS_ID = Identity.Kind.ANONYMOUS_ID.value
IdentityKey = tuple[str, str]  # (kind, value)

_MISSING = object()
_PROFILE_COLUMNS = (
    "id, user_id, anonymous_ids, traits, email, phone, time_zone, locale, first_seen, last_seen"
)


# --------------------------------------------------------------------------- traits


def traits_merge(current: dict, incoming: dict) -> tuple[dict, list[tuple[str, Any, Any]]]:
    """Merge `incoming` into a copy of `current`: nested objects merge key by key, any
    other value (lists included) replaces. Returns the merged traits and the changes as
    (dotted path, before, after), before None when the trait is new."""
    merged = copy.deepcopy(current)
    changes: list[tuple[str, Any, Any]] = []
    _merge_into(merged, incoming, "", changes)
    return merged, changes


def _same(before: Any, after: Any) -> bool:
    # 1 == True == 1.0 in Python but not in JSON.
    return type(before) is type(after) and before == after


def _merge_into(target: dict, incoming: dict, prefix: str, changes: list) -> None:
    for key, value in incoming.items():
        path = f"{prefix}{key}"
        before = target.get(key, _MISSING)
        if isinstance(value, dict) and isinstance(before, dict):
            _merge_into(before, value, f"{path}.", changes)
        elif before is _MISSING or not _same(before, value):
            changes.append((path[:255], None if before is _MISSING else before, value))
            target[key] = copy.deepcopy(value)


@lru_cache(maxsize=2048)
def _is_time_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


_LOCALE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")
_PHONE_SEPARATORS = re.compile(r"[\s\-().]")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def _clean_time_zone(value: Any) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= 64 and _is_time_zone(value):
        return value
    return None


def _clean_locale(value: Any) -> str | None:
    if isinstance(value, str):
        value = value.strip().replace("_", "-")
        if len(value) <= 16 and _LOCALE.match(value):
            return value
    return None


def _clean_email(value: Any) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        if "@" in value and len(value) <= 254:
            return value
    return None


def _clean_phone(value: Any) -> str | None:
    if isinstance(value, str):
        value = _PHONE_SEPARATORS.sub("", value)
        if _E164.match(value):
            return value
    return None


# --------------------------------------------------------------------------- state


@dataclass(eq=False)
class ProfileState:
    """A profile as this batch sees it: loaded (and locked) from the database, or new
    (pk None until saved). A state merged into another points there (`merged_into`)."""

    pk: int | None
    user_id: str = ""
    anonymous_ids: list[str] = field(default_factory=list)
    traits: dict = field(default_factory=dict)
    email: str = ""
    phone: str = ""
    time_zone: str = ""
    locale: str = ""
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    merged_into: ProfileState | None = None
    changed: bool = False
    # The zone and locale the device reported last (context.timezone / context.locale);
    # traits, when they name one, win over these.
    context_time_zone: str | None = None
    context_locale: str | None = None

    @classmethod
    def from_row(cls, row: tuple) -> ProfileState:
        pk, user_id, anonymous_ids, traits, email, phone, time_zone, locale, first, last = row
        if isinstance(traits, str | bytes):  # Django's connection hands jsonb over as text
            traits = orjson.loads(traits)
        return cls(
            pk=pk,
            user_id=user_id,
            anonymous_ids=list(anonymous_ids or []),
            traits=traits if isinstance(traits, dict) else {},
            email=email,
            phone=phone,
            time_zone=time_zone,
            locale=locale,
            first_seen=first,
            last_seen=last,
        )

    def survivor(self) -> ProfileState:
        state = self
        while state.merged_into is not None:
            state = state.merged_into
        return state

    def saw(self, moment: datetime) -> None:
        if self.first_seen is None or moment < self.first_seen:
            self.first_seen = moment
        if self.last_seen is None or moment > self.last_seen:
            self.last_seen = moment
        self.changed = True

    def add_anonymous_id(self, value: str) -> None:
        if value not in self.anonymous_ids:
            self.anonymous_ids.append(value)
            self.changed = True

    def note_context(self, context: dict) -> None:
        time_zone = _clean_time_zone(context.get("timezone"))
        if time_zone:
            self.context_time_zone = time_zone
        locale = _clean_locale(context.get("locale"))
        if locale:
            self.context_locale = locale

    def refresh_columns(self) -> None:
        """Copy email / phone / time zone / locale from the traits (and the device's
        context for the last two) into their columns. Values that are not usable
        (a phone not in E.164, an unknown zone) leave the column as it was."""
        traits = self.traits
        email = _clean_email(traits.get("email"))
        phone = _clean_phone(traits.get("phone"))
        time_zone = (
            _clean_time_zone(traits.get("timezone"))
            or _clean_time_zone(traits.get("time_zone"))
            or self.context_time_zone
        )
        locale = _clean_locale(traits.get("locale")) or self.context_locale
        for column, value in (
            ("email", email),
            ("phone", phone),
            ("time_zone", time_zone),
            ("locale", locale),
        ):
            if value and getattr(self, column) != value:
                setattr(self, column, value)
                self.changed = True


@dataclass
class PendingMerge:
    winner: ProfileState
    loser_id: int
    reason: str
    message_id: str
    loser_traits: dict
    merged_at: datetime


@dataclass
class PendingTraitChange:
    state: ProfileState
    trait: str
    before: Any
    after: Any
    source: str
    message_id: str
    changed_at: datetime


# --------------------------------------------------------------------------- graph


class IdentityGraph:
    """The identities and profiles one batch touches. Build with `load`, feed the calls
    in order to `resolve` / `alias` / `apply_traits`, then `save`. Caller holds a
    transaction from `load` to `save` (the locks `load` takes last until its end)."""

    def __init__(
        self,
        *,
        workspace_id: int,
        states: dict[IdentityKey, ProfileState],
        loaded: Iterable[ProfileState] = (),
    ):
        self.workspace_id = workspace_id
        self.states = states
        self.loaded = list(loaded)
        self.new_states: list[ProfileState] = []
        self.new_identities: list[tuple[str, str, ProfileState]] = []
        self.merges: list[PendingMerge] = []
        self.trait_changes: list[PendingTraitChange] = []
        self.saved_merges: list[ProfileMerge] = []

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, *, workspace_id: int, keys: Iterable[IdentityKey]) -> IdentityGraph:
        """Lock and load everything the given ids resolve to: 1 statement when every id
        is known, 2 more when some are new, and 1 per round that finds a profile merged
        away concurrently."""
        found, healed = _identities_find_or_lock(workspace_id, set(keys))
        rows: dict[int, tuple] = {}
        for _ in range(10):
            wanted = set(found.values()) - rows.keys()
            if not wanted:
                break
            rows.update(profiles_lock(workspace_id, wanted))
            vanished = wanted - rows.keys()
            if not vanished:
                break
            stale = {key for key, profile_id in found.items() if profile_id in vanished}
            for key in stale:
                del found[key]
            more, more_healed = _identities_find_or_lock(workspace_id, stale)
            found.update(more)
            healed |= more_healed
        else:  # pragma: no cover - ten merges of the same people racing this batch
            raise RuntimeError("profiles kept vanishing while a batch resolved them")

        by_pk = {pk: ProfileState.from_row(row) for pk, row in rows.items()}
        graph = cls(
            workspace_id=workspace_id,
            states={key: by_pk[profile_id] for key, profile_id in found.items()},
            loaded=by_pk.values(),
        )
        # Ids found on a profile's user_id column but missing from Identity (rows written
        # by another path): record them now.
        for key in healed & found.keys():
            graph.new_identities.append((key[0], key[1], by_pk[found[key]]))
        return graph

    # ------------------------------------------------------------------ resolving

    def find(self, kind: str, value: str) -> ProfileState | None:
        state = self.states.get((kind, value))
        return state.survivor() if state is not None else None

    def _new(self, *, user_id: str = "") -> ProfileState:
        state = ProfileState(pk=None, user_id=user_id, changed=True)
        self.new_states.append(state)
        return state

    def _link(self, kind: str, value: str, state: ProfileState) -> None:
        self.states[(kind, value)] = state
        self.new_identities.append((kind, value, state))
        if kind == ANONYMOUS_ID:
            state.add_anonymous_id(value)
        elif not state.user_id:
            state.user_id = value
            state.changed = True

    def resolve(
        self,
        *,
        user_id: str | None,
        anonymous_id: str | None,
        message_id: str = "",
        at: datetime | None = None,
    ) -> ProfileState:
        """The profile of a call with these ids, linking and merging as the rules say."""
        by_user = self.find(USER_ID, user_id) if user_id else None
        by_anonymous = self.find(ANONYMOUS_ID, anonymous_id) if anonymous_id else None
        if user_id and anonymous_id:
            if by_user is None and by_anonymous is None:
                state = self._new(user_id=user_id)
                self._link(USER_ID, user_id, state)
                self._link(ANONYMOUS_ID, anonymous_id, state)
                return state
            if by_anonymous is None:
                self._link(ANONYMOUS_ID, anonymous_id, by_user)
                return by_user
            if by_user is None:
                if by_anonymous.user_id and by_anonymous.user_id != user_id:
                    # The device belongs to someone else's profile: a new person here.
                    state = self._new(user_id=user_id)
                    self._link(USER_ID, user_id, state)
                    return state
                self._link(USER_ID, user_id, by_anonymous)
                return by_anonymous
            if by_user is by_anonymous:
                return by_user
            if by_anonymous.user_id and by_anonymous.user_id != by_user.user_id:
                return by_user  # two known people: never merged by identify
            return self._merge(
                winner=by_user,
                loser=by_anonymous,
                reason=ProfileMerge.Reason.IDENTIFY,
                message_id=message_id,
                at=at,
            )
        if user_id:
            if by_user is None:
                by_user = self._new(user_id=user_id)
                self._link(USER_ID, user_id, by_user)
            return by_user
        if by_anonymous is None:
            by_anonymous = self._new()
            self._link(ANONYMOUS_ID, anonymous_id, by_anonymous)
        return by_anonymous

    def alias(
        self, *, previous_id: str, user_id: str, message_id: str = "", at: datetime | None = None
    ) -> ProfileState:
        """alias(previousId -> userId): one profile for both ids afterwards."""
        if previous_id == user_id:
            return self.resolve(user_id=user_id, anonymous_id=None, message_id=message_id, at=at)
        by_user = self.find(USER_ID, user_id)
        by_previous = self.find(USER_ID, previous_id) or self.find(ANONYMOUS_ID, previous_id)
        if by_previous is None:
            state = by_user
            if state is None:
                state = self._new(user_id=user_id)
                self._link(USER_ID, user_id, state)
            self._link(ANONYMOUS_ID, previous_id, state)
            return state
        if by_user is None:
            # userId is the name the person goes by from now on; previousId still resolves.
            by_previous.user_id = user_id
            by_previous.changed = True
            self._link(USER_ID, user_id, by_previous)
            return by_previous
        if by_user is by_previous:
            return by_user
        return self._merge(
            winner=by_user,
            loser=by_previous,
            reason=ProfileMerge.Reason.ALIAS,
            message_id=message_id,
            at=at,
        )

    def _merge(
        self,
        *,
        winner: ProfileState,
        loser: ProfileState,
        reason: str,
        message_id: str,
        at: datetime | None,
    ) -> ProfileState:
        """Fold `loser` into `winner`; the winner's values win. Between two stored
        profiles the winner's row survives and the merge is recorded; otherwise the stored
        one's row carries on (nothing stored disappears, nothing to record)."""
        at = at or timezone.now()
        merged_traits, _ = traits_merge(loser.traits, winner.traits)
        if winner.pk is not None and loser.pk is not None:
            self.merges.append(
                PendingMerge(
                    winner=winner,
                    loser_id=loser.pk,
                    reason=reason,
                    message_id=message_id,
                    loser_traits=copy.deepcopy(loser.traits),
                    merged_at=at,
                )
            )
            _, changes = traits_merge(winner.traits, merged_traits)
            for path, before, after in changes:
                self.trait_changes.append(
                    PendingTraitChange(winner, path, before, after, "merge", message_id, at)
                )
        survivor, absorbed = (winner, loser) if winner.pk or not loser.pk else (loser, winner)
        survivor.user_id = winner.user_id or loser.user_id
        survivor.anonymous_ids = list(dict.fromkeys(winner.anonymous_ids + loser.anonymous_ids))
        survivor.traits = merged_traits
        for column in ("email", "phone", "time_zone", "locale"):
            setattr(survivor, column, getattr(winner, column) or getattr(loser, column))
        survivor.context_time_zone = winner.context_time_zone or loser.context_time_zone
        survivor.context_locale = winner.context_locale or loser.context_locale
        for moment in (loser.first_seen, loser.last_seen, winner.first_seen, winner.last_seen):
            if moment is not None:
                survivor.saw(moment)
        survivor.changed = True
        absorbed.merged_into = survivor
        return survivor

    def apply_traits(
        self, state: ProfileState, traits: dict, *, source: str, message_id: str, at: datetime
    ) -> None:
        """Merge identify traits into the profile, remembering each change."""
        state = state.survivor()
        merged, changes = traits_merge(state.traits, traits)
        if not changes:
            return
        state.traits = merged
        state.changed = True
        for path, before, after in changes:
            self.trait_changes.append(
                PendingTraitChange(state, path, before, after, source, message_id, at)
            )

    # ------------------------------------------------------------------ saving

    def save(self) -> list[int]:
        """Write the batch's outcome: merges, new profiles, identities, changed profiles,
        trait history. Returns the ids of the profiles that remain touched."""
        for merge in self.merges:
            merge_row = _merge_rows(
                workspace_id=self.workspace_id,
                winner_id=merge.winner.pk,
                loser_id=merge.loser_id,
                reason=merge.reason,
                message_id=merge.message_id,
                loser_traits=merge.loser_traits,
                merged_at=merge.merged_at,
            )
            self.saved_merges.append(merge_row)
        survivors = [
            state
            for state in dict.fromkeys(
                state.survivor() for state in (*self.loaded, *self.new_states)
            )
            if state.changed
        ]
        for state in survivors:
            state.refresh_columns()
        stored = [state for state in survivors if state.pk is not None]
        created = [state for state in survivors if state.pk is None]
        _profiles_insert(self.workspace_id, created)
        _identities_insert(
            self.workspace_id,
            [(kind, value, state.survivor().pk) for kind, value, state in self.new_identities],
        )
        _profiles_update(stored)
        trait_changes_record(
            workspace_id=self.workspace_id,
            changes=[
                (change.state.survivor().pk, change)
                for change in self.trait_changes
                if change.state.survivor().pk is not None
            ],
        )
        return sorted(state.pk for state in survivors)


# --------------------------------------------------------------------------- SQL
#
# Rows travel to PostgreSQL as one JSON document per statement (jsonb_to_recordset):
# one parameter whatever the batch size, serialised by orjson, and none of the
# per-element quoting that large array parameters cost on the client.


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _keys_json(keys: Iterable[IdentityKey]) -> str:
    return _json([{"kind": kind, "value": value} for kind, value in sorted(keys)])


def _identities_find_or_lock(
    workspace_id: int, keys: set[IdentityKey]
) -> tuple[dict[IdentityKey, int], set[IdentityKey]]:
    """Find the ids; lock the ones not found (so no other batch creates them meanwhile),
    then look those up again: another batch may have created them before the lock."""
    found, healed = _identities_find(workspace_id, keys)
    unknown = keys - found.keys()
    if unknown:
        _identities_lock(workspace_id, unknown)
        more, more_healed = _identities_find(workspace_id, unknown)
        found.update(more)
        healed |= more_healed
    return found, healed


def _identities_find(
    workspace_id: int, keys: set[IdentityKey]
) -> tuple[dict[IdentityKey, int], set[IdentityKey]]:
    """(kind, value) -> profile id, through Identity and, for user ids, the profile's own
    user_id column; the second set holds ids found only through that column."""
    if not keys:
        return {}, set()
    user_ids = sorted(value for kind, value in keys if kind == USER_ID)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT 'profile', 'user_id', profile.user_id, profile.id
              FROM segments_profile AS profile
             WHERE profile.workspace_id = %s AND profile.user_id <> ''
               AND profile.user_id = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))
            UNION ALL
            SELECT 'identity', identity.kind, identity.value, identity.profile_id
              FROM segments_identity AS identity
              JOIN jsonb_to_recordset(%s::jsonb) AS wanted(kind text, value text)
                ON identity.kind = wanted.kind AND identity.value = wanted.value
             WHERE identity.workspace_id = %s
            """,
            [workspace_id, _json(user_ids), _keys_json(keys), workspace_id],
        )
        rows = cursor.fetchall()
    found: dict[IdentityKey, int] = {}
    via_identity: set[IdentityKey] = set()
    # Identity rows are the truth; the column only fills gaps.
    for origin, kind, value, profile_id in sorted(rows, key=lambda row: row[0] == "identity"):
        found[(kind, value)] = profile_id
        if origin == "identity":
            via_identity.add((kind, value))
    return found, set(found) - via_identity


def _identities_lock(workspace_id: int, keys: set[IdentityKey]) -> None:
    """Advisory locks, in hash order, on ids about to be created (see module docstring)."""
    if not keys:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT pg_advisory_xact_lock(lock_key) FROM (
                SELECT DISTINCT hashtextextended(wanted.kind || ':' || wanted.value, %s) AS lock_key
                  FROM jsonb_to_recordset(%s::jsonb) AS wanted(kind text, value text)
                 ORDER BY 1
            ) AS ordered
            """,
            [workspace_id, _keys_json(keys)],
        )


def profiles_lock(workspace_id: int, profile_ids: Iterable[int]) -> dict[int, tuple]:
    """Lock the workspace's profiles with these ids, in id order; return their rows."""
    ids = sorted(profile_ids)
    if not ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {_PROFILE_COLUMNS} FROM segments_profile "
            "WHERE workspace_id = %s AND id = ANY(%s::bigint[]) ORDER BY id FOR UPDATE",
            [workspace_id, ids],
        )
        return {row[0]: row for row in cursor.fetchall()}


def _profile_document(state: ProfileState, **extra: Any) -> dict:
    return {
        "user_id": state.user_id,
        "anonymous_ids": state.anonymous_ids,
        "traits": state.traits,
        "email": state.email,
        "phone": state.phone,
        "time_zone": state.time_zone,
        "locale": state.locale,
        "first_seen": state.first_seen,
        "last_seen": state.last_seen,
        **extra,
    }


_PROFILE_RECORD = """
    user_id text, anonymous_ids text[], traits jsonb, email text, phone text, time_zone text,
    locale text, first_seen timestamptz, last_seen timestamptz
"""


def _profiles_insert(workspace_id: int, states: list[ProfileState]) -> None:
    if not states:
        return
    now = timezone.now()
    for state in states:
        state.first_seen = state.first_seen or now
        state.last_seen = state.last_seen or now
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO segments_profile (workspace_id, user_id, anonymous_ids, traits, email,
                                          phone, time_zone, locale, first_seen, last_seen,
                                          created_at)
            SELECT %s, new.user_id, new.anonymous_ids, new.traits, new.email, new.phone,
                   new.time_zone, new.locale, new.first_seen, new.last_seen, %s
              FROM jsonb_to_recordset(%s::jsonb) AS new({_PROFILE_RECORD}, position integer)
             ORDER BY new.position
            RETURNING id
            """,
            [
                workspace_id,
                now,
                _json([_profile_document(state, position=n) for n, state in enumerate(states)]),
            ],
        )
        # Rows come back in insertion order, as Django's bulk_create also relies on.
        for state, (pk,) in zip(states, cursor.fetchall(), strict=True):
            state.pk = pk


def _profiles_update(states: list[ProfileState]) -> None:
    if not states:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE segments_profile AS profile
               SET user_id = changed.user_id, anonymous_ids = changed.anonymous_ids,
                   traits = changed.traits, email = changed.email, phone = changed.phone,
                   time_zone = changed.time_zone, locale = changed.locale,
                   first_seen = changed.first_seen, last_seen = changed.last_seen
              FROM jsonb_to_recordset(%s::jsonb) AS changed({_PROFILE_RECORD}, id bigint)
             WHERE profile.id = changed.id
            """,
            [_json([_profile_document(state, id=state.pk) for state in states])],
        )


def _identities_insert(workspace_id: int, rows: list[tuple[str, str, int]]) -> None:
    rows = list(dict.fromkeys(rows))
    if not rows:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO segments_identity (workspace_id, kind, value, profile_id, created_at)
            SELECT %s, new.kind, new.value, new.profile_id, %s
              FROM jsonb_to_recordset(%s::jsonb) AS new(kind text, value text, profile_id bigint)
            ON CONFLICT (workspace_id, kind, value) DO NOTHING
            """,
            [
                workspace_id,
                timezone.now(),
                _json(
                    [
                        {"kind": kind, "value": value, "profile_id": profile_id}
                        for kind, value, profile_id in rows
                    ]
                ),
            ],
        )


def trait_changes_record(
    *, workspace_id: int, changes: list[tuple[int, PendingTraitChange]]
) -> None:
    """Insert trait history rows, then keep only the newest TRAIT_HISTORY_KEPT of each
    profile involved: two statements, whatever the number of changes."""
    if not changes:
        return
    documents = [
        {
            "profile_id": profile_id,
            "trait": change.trait,
            # jsonb_to_recordset reads a JSON null as SQL NULL: no value on that side.
            "before": change.before,
            "after": change.after,
            "source": change.source[:40],
            "message_id": change.message_id[:100],
            "changed_at": change.changed_at,
        }
        for profile_id, change in changes
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO segments_traitchange (workspace_id, profile_id, trait, before, after,
                                              source, message_id, changed_at)
            SELECT %s, change.profile_id, change.trait, change.before, change.after,
                   change.source, change.message_id, change.changed_at
              FROM jsonb_to_recordset(%s::jsonb) AS change(
                       profile_id bigint, trait text, before jsonb, after jsonb, source text,
                       message_id text, changed_at timestamptz)
            """,
            [workspace_id, _json(documents)],
        )
        cursor.execute(
            """
            DELETE FROM segments_traitchange WHERE id IN (
                SELECT id FROM (
                    SELECT id, row_number() OVER (
                               PARTITION BY profile_id ORDER BY changed_at DESC, id DESC
                           ) AS newest
                      FROM segments_traitchange WHERE profile_id = ANY(%s::bigint[])
                ) AS ranked
                 WHERE ranked.newest > %s
            )
            """,
            [sorted({profile_id for profile_id, _ in changes}), TraitChange.TRAIT_HISTORY_KEPT],
        )


def _merge_rows(
    *,
    workspace_id: int,
    winner_id: int,
    loser_id: int,
    reason: str,
    message_id: str,
    loser_traits: dict,
    merged_at: datetime,
) -> ProfileMerge:
    """Move everything of `loser_id` to `winner_id`, record the merge, delete the loser.
    Caller holds both profiles' row locks and writes the winner's merged values."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE segments_event SET profile_id = %s WHERE workspace_id = %s AND profile_id = %s",
            [winner_id, workspace_id, loser_id],
        )
        events_moved = max(cursor.rowcount, 0)
        cursor.execute(
            "UPDATE segments_identity SET profile_id = %s WHERE profile_id = %s "
            "RETURNING kind, value",
            [winner_id, loser_id],
        )
        identities = sorted(cursor.fetchall())
        # The loser's history and earlier merges belong to the person, not to the row.
        cursor.execute(
            "UPDATE segments_traitchange SET profile_id = %s WHERE profile_id = %s",
            [winner_id, loser_id],
        )
        cursor.execute(
            "UPDATE segments_profilemerge SET profile_id = %s WHERE profile_id = %s",
            [winner_id, loser_id],
        )
    merge = ProfileMerge.objects.create(
        workspace_id=workspace_id,
        profile_id=winner_id,
        merged_profile_id=loser_id,
        merged_identities=[{"kind": kind, "value": value} for kind, value in identities],
        merged_traits=loser_traits,
        events_moved=events_moved,
        reason=reason,
        message_id=message_id[:100],
        merged_at=merged_at,
    )
    # Through the ORM so that rows of other apps that point at the profile follow
    # their own on_delete rules.
    Profile.objects.filter(pk=loser_id).delete()
    return merge


# --------------------------------------------------------------------------- services


@transaction.atomic
def profiles_merge(
    *,
    workspace: Workspace,
    winner: Profile,
    loser: Profile,
    reason: str = ProfileMerge.Reason.ALIAS,
    message_id: str = "",
) -> ProfileMerge:
    """Merge `loser` into `winner` outside ingestion (support tools, the API): both
    rows are locked in id order, the loser's events, identities, history and earlier
    merges move, traits merge with the winner's values winning, the loser is deleted."""
    if winner.pk == loser.pk:
        raise ValueError("a profile cannot be merged into itself")
    rows = profiles_lock(workspace.pk, [winner.pk, loser.pk])
    if set(rows) != {winner.pk, loser.pk}:
        raise Profile.DoesNotExist("both profiles must exist in this workspace")
    winner_state = ProfileState.from_row(rows[winner.pk])
    loser_state = ProfileState.from_row(rows[loser.pk])
    graph = IdentityGraph(workspace_id=workspace.pk, states={}, loaded=[winner_state, loser_state])
    graph._merge(
        winner=winner_state, loser=loser_state, reason=reason, message_id=message_id, at=None
    )
    graph.save()
    return graph.saved_merges[0]
