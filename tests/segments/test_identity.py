"""Identity: anonymous activity then identify gives one profile; merges by identify and
alias are recorded; traits merge with history; merges are safe under concurrency."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from segments.identity import profiles_merge, traits_merge
from segments.ingestion import SOURCE_TRACKING_API, ingest_batch
from segments.models import Event, Identity, Profile, ProfileMerge, TraitChange

RECEIVED = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def ingest(workspace, *messages, received_at=RECEIVED):
    return ingest_batch(
        workspace=workspace,
        messages=list(messages),
        received_at=received_at,
        context=None,
        integrations=None,
        source=SOURCE_TRACKING_API,
    )


def call(type_: str, message_id: str, **fields) -> dict:
    return {"type": type_, "messageId": message_id, **fields}


def events_by_profile(workspace) -> dict[int, list[str]]:
    grouped: dict[int, list[str]] = {}
    rows = Event.objects.filter(workspace=workspace).order_by("message_id")
    for profile_id, message_id in rows.values_list("profile_id", "message_id"):
        grouped.setdefault(profile_id, []).append(message_id)
    return grouped


def identities(profile) -> list[tuple[str, str]]:
    return sorted(Identity.objects.filter(profile=profile).values_list("kind", "value"))


def test_anonymous_activity_then_identify_gives_one_profile_with_all_events(workspace):
    ingest(
        workspace,
        call("page", "m-1", anonymousId="anon-1", name="Home"),
        call("track", "m-2", anonymousId="anon-1", event="Product Viewed"),
    )
    anonymous = Profile.objects.get()
    assert (anonymous.user_id, anonymous.anonymous_ids) == ("", ["anon-1"])

    ingest(
        workspace,
        call("identify", "m-3", anonymousId="anon-1", userId="ada", traits={"name": "Ada"}),
        call("track", "m-4", userId="ada", event="Order Completed"),
    )

    profile = Profile.objects.get()
    assert profile.pk == anonymous.pk  # the anonymous profile became Ada's
    assert (profile.user_id, profile.anonymous_ids, profile.traits) == (
        "ada",
        ["anon-1"],
        {"name": "Ada"},
    )
    assert events_by_profile(workspace) == {profile.pk: ["m-1", "m-2", "m-3", "m-4"]}
    assert identities(profile) == [("anonymous_id", "anon-1"), ("user_id", "ada")]
    assert ProfileMerge.objects.count() == 0


def test_identify_merges_an_anonymous_profile_into_the_users_and_records_it(workspace):
    ingest(
        workspace,
        call("identify", "m-1", userId="ada", traits={"plan": "pro", "address": {"city": "Rome"}}),
        call("track", "m-2", userId="ada", event="Logged In"),
    )
    ingest(
        workspace,
        call("page", "m-3", anonymousId="laptop", name="Pricing"),
        call(
            "identify",
            "m-4",
            anonymousId="laptop",
            traits={"plan": "free", "referrer": "ads", "address": {"zip": "00100"}},
        ),
    )
    user = Profile.objects.get(user_id="ada")
    anonymous = Profile.objects.get(anonymous_ids=["laptop"])

    result = ingest(
        workspace,
        call("identify", "m-5", userId="ada", anonymousId="laptop"),
        call("track", "m-6", anonymousId="laptop", event="Order Completed"),
    )

    assert result.profile_ids == [user.pk]
    assert not Profile.objects.filter(pk=anonymous.pk).exists()
    user.refresh_from_db()
    # The user's profile wins on conflicts; nested objects merge key by key.
    assert user.traits == {
        "plan": "pro",
        "referrer": "ads",
        "address": {"city": "Rome", "zip": "00100"},
    }
    assert user.anonymous_ids == ["laptop"]
    assert events_by_profile(workspace) == {user.pk: ["m-1", "m-2", "m-3", "m-4", "m-5", "m-6"]}
    assert identities(user) == [("anonymous_id", "laptop"), ("user_id", "ada")]
    merge = ProfileMerge.objects.get()
    assert (
        merge.workspace,
        merge.profile,
        merge.merged_profile_id,
        merge.reason,
        merge.message_id,
        merge.events_moved,
    ) == (workspace, user, anonymous.pk, "identify", "m-5", 2)
    assert merge.merged_identities == [{"kind": "anonymous_id", "value": "laptop"}]
    assert merge.merged_traits == {"plan": "free", "referrer": "ads", "address": {"zip": "00100"}}
    # The anonymous profile's trait history now belongs to the person.
    assert sorted(
        TraitChange.objects.filter(profile=user).values_list("trait", "source", "message_id")
    ) == [
        ("address", "identify", "m-1"),
        ("address", "identify", "m-4"),
        ("address.zip", "merge", "m-5"),
        ("plan", "identify", "m-1"),
        ("plan", "identify", "m-4"),
        ("referrer", "identify", "m-4"),
        ("referrer", "merge", "m-5"),
    ]


def test_alias_merges_two_known_profiles(workspace):
    ingest(
        workspace,
        call("identify", "m-1", userId="old-id", anonymousId="phone", traits={"plan": "free"}),
        call("track", "m-2", userId="old-id", event="Logged In"),
        call("identify", "m-3", userId="new-id", traits={"plan": "pro"}),
    )
    old = Profile.objects.get(user_id="old-id")
    new = Profile.objects.get(user_id="new-id")

    ingest(workspace, call("alias", "m-4", previousId="old-id", userId="new-id"))

    assert list(Profile.objects.values_list("pk", flat=True)) == [new.pk]
    new.refresh_from_db()
    assert (new.user_id, new.anonymous_ids, new.traits) == ("new-id", ["phone"], {"plan": "pro"})
    assert events_by_profile(workspace) == {new.pk: ["m-1", "m-2", "m-3", "m-4"]}
    assert identities(new) == [
        ("anonymous_id", "phone"),
        ("user_id", "new-id"),
        ("user_id", "old-id"),
    ]
    merge = ProfileMerge.objects.get()
    assert (merge.profile, merge.merged_profile_id, merge.reason, merge.events_moved) == (
        new,
        old.pk,
        "alias",
        2,
    )
    assert merge.merged_identities == [
        {"kind": "anonymous_id", "value": "phone"},
        {"kind": "user_id", "value": "old-id"},
    ]
    assert merge.merged_traits == {"plan": "free"}
    # Either id finds the person afterwards.
    ingest(workspace, call("track", "m-5", userId="old-id", event="Renamed"))
    assert Event.objects.get(message_id="m-5").profile_id == new.pk


def test_alias_of_an_unknown_previous_id_or_to_a_new_user_id(workspace):
    ingest(workspace, call("alias", "m-1", previousId="legacy-7", userId="ada"))
    ingest(workspace, call("track", "m-2", anonymousId="cookie-1", event="Viewed"))
    ingest(workspace, call("alias", "m-3", previousId="cookie-1", userId="bob"))

    ada, bob = Profile.objects.get(user_id="ada"), Profile.objects.get(user_id="bob")
    assert identities(ada) == [("anonymous_id", "legacy-7"), ("user_id", "ada")]
    assert identities(bob) == [("anonymous_id", "cookie-1"), ("user_id", "bob")]
    assert events_by_profile(workspace) == {ada.pk: ["m-1"], bob.pk: ["m-2", "m-3"]}
    assert ProfileMerge.objects.count() == 0


def test_alias_to_itself_is_a_plain_call_of_that_user(workspace):
    ingest(workspace, call("alias", "m-1", previousId="ada", userId="ada"))

    profile = Profile.objects.get()
    assert (profile.user_id, profile.anonymous_ids) == ("ada", [])
    assert identities(profile) == [("user_id", "ada")]


def test_identify_never_merges_two_people_with_their_own_user_ids(workspace):
    # A shared computer: Ada used it, then Bob logs in on it.
    ingest(workspace, call("identify", "m-1", userId="ada", anonymousId="shared-laptop"))
    ingest(workspace, call("identify", "m-2", userId="bob"))
    ingest(workspace, call("identify", "m-3", userId="bob", anonymousId="shared-laptop"))
    ingest(workspace, call("identify", "m-4", userId="carol", anonymousId="shared-laptop"))

    assert sorted(Profile.objects.values_list("user_id", "anonymous_ids")) == [
        ("ada", ["shared-laptop"]),
        ("bob", []),
        ("carol", []),
    ]
    assert ProfileMerge.objects.count() == 0
    assert Event.objects.get(message_id="m-3").profile.user_id == "bob"
    assert Event.objects.get(message_id="m-4").profile.user_id == "carol"


def test_the_same_ids_in_two_workspaces_are_two_people(workspace, other_workspace):
    for tenant in (workspace, other_workspace):
        ingest(tenant, call("identify", "m-1", userId="ada", anonymousId="anon-1"))
    ingest(other_workspace, call("alias", "m-2", previousId="anon-1", userId="bob"))

    # The alias renamed Globex's Ada to bob; Acme's Ada is untouched.
    assert identities(Profile.objects.get(workspace=workspace)) == [
        ("anonymous_id", "anon-1"),
        ("user_id", "ada"),
    ]
    assert Profile.objects.get(workspace=workspace).user_id == "ada"
    globex = Profile.objects.get(workspace=other_workspace)
    assert globex.user_id == "bob"
    assert identities(globex) == [
        ("anonymous_id", "anon-1"),
        ("user_id", "ada"),
        ("user_id", "bob"),
    ]


# --------------------------------------------------------------------------- traits


def test_traits_merge_nested_keys_and_report_each_change():
    merged, changes = traits_merge(
        {"plan": "free", "address": {"city": "Rome", "zip": "00100"}, "score": 1},
        {"plan": "pro", "address": {"city": "Milan"}, "score": 1.0, "tags": ["a"]},
    )

    assert merged == {
        "plan": "pro",
        "address": {"city": "Milan", "zip": "00100"},
        "score": 1.0,
        "tags": ["a"],
    }
    assert changes == [
        ("plan", "free", "pro"),
        ("address.city", "Rome", "Milan"),
        ("score", 1, 1.0),
        ("tags", None, ["a"]),
    ]


def test_trait_history_keeps_the_newest_changes_per_profile(workspace, monkeypatch):
    monkeypatch.setattr(TraitChange, "TRAIT_HISTORY_KEPT", 3)
    for step in range(5):
        ingest(
            workspace,
            call(
                "identify",
                f"m-{step}",
                userId="ada",
                traits={"visits": step},
                timestamp=f"2026-11-0{step + 1}T10:00:00Z",
            ),
        )
    ingest(workspace, call("identify", "m-bob", userId="bob", traits={"visits": 1}))

    ada = Profile.objects.get(user_id="ada")
    history = TraitChange.objects.filter(profile=ada).order_by("-changed_at")
    assert list(history.values_list("trait", "before", "after", "message_id", "changed_at")) == [
        ("visits", 3, 4, "m-4", datetime(2026, 11, 5, 10, tzinfo=UTC)),
        ("visits", 2, 3, "m-3", datetime(2026, 11, 4, 10, tzinfo=UTC)),
        ("visits", 1, 2, "m-2", datetime(2026, 11, 3, 10, tzinfo=UTC)),
    ]
    assert TraitChange.objects.filter(profile__user_id="bob").count() == 1
    # An identify that changes nothing writes no history.
    ingest(workspace, call("identify", "m-5", userId="ada", traits={"visits": 4}))
    assert TraitChange.objects.filter(profile=ada).count() == 3


def test_profiles_merge_by_hand_refuses_another_workspaces_profile(workspace, other_workspace):
    ingest(workspace, call("identify", "m-1", userId="ada"))
    ingest(workspace, call("identify", "m-2", userId="ada-2"))
    ingest(other_workspace, call("identify", "m-3", userId="eve"))
    ada, ada_2 = Profile.objects.get(user_id="ada"), Profile.objects.get(user_id="ada-2")
    eve = Profile.objects.get(user_id="eve")

    with pytest.raises(Profile.DoesNotExist):
        profiles_merge(workspace=workspace, winner=ada, loser=eve)
    merge = profiles_merge(workspace=workspace, winner=ada, loser=ada_2)

    assert (merge.profile, merge.merged_profile_id, merge.events_moved) == (ada, ada_2.pk, 1)
    assert sorted(Profile.objects.values_list("user_id", flat=True)) == ["ada", "eve"]
    assert identities(ada) == [("user_id", "ada"), ("user_id", "ada-2")]


# --------------------------------------------------------------------------- concurrency


def run_together(workspace, batches: list[list[dict]]) -> list[BaseException]:
    """Ingest the batches at the same moment, each in its own thread and connection."""
    barrier = threading.Barrier(len(batches))
    errors: list[BaseException] = []

    def worker(messages):
        try:
            barrier.wait()
            ingest(workspace, *messages, received_at=RECEIVED + timedelta(seconds=1))
        except BaseException as error:  # reported to the test
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_for_a_new_user_create_one_profile(workspace):
    errors = run_together(
        workspace,
        [
            [call("identify", f"m-{number}", userId="ada", anonymousId=f"device-{number}")]
            for number in range(6)
        ],
    )

    assert errors == []
    profile = Profile.objects.get()
    assert profile.user_id == "ada"
    assert sorted(profile.anonymous_ids) == [f"device-{number}" for number in range(6)]
    assert Identity.objects.count() == 7
    assert events_by_profile(workspace) == {profile.pk: [f"m-{number}" for number in range(6)]}


@pytest.mark.django_db(transaction=True)
def test_concurrent_merges_in_opposite_directions_end_in_one_profile(workspace):
    ingest(
        workspace,
        call("identify", "m-1", userId="ada", anonymousId="phone"),
        call("identify", "m-2", userId="ada-work", anonymousId="laptop"),
        call("track", "m-3", anonymousId="tablet", event="Viewed"),
    )

    errors = run_together(
        workspace,
        [
            [
                call("alias", "m-4", previousId="ada", userId="ada-work"),
                call("identify", "m-5", userId="ada-work", anonymousId="tablet"),
            ],
            [
                call("alias", "m-6", previousId="ada-work", userId="ada"),
                call("identify", "m-7", userId="ada", anonymousId="tablet"),
            ],
        ],
    )

    assert errors == []
    profile = Profile.objects.get()
    assert sorted(profile.anonymous_ids) == ["laptop", "phone", "tablet"]
    assert identities(profile) == [
        ("anonymous_id", "laptop"),
        ("anonymous_id", "phone"),
        ("anonymous_id", "tablet"),
        ("user_id", "ada"),
        ("user_id", "ada-work"),
    ]
    assert events_by_profile(workspace) == {profile.pk: [f"m-{n}" for n in range(1, 8)]}
    assert ProfileMerge.objects.filter(profile=profile).count() == 2
