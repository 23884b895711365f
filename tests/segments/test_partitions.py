"""The events table is partitioned by month; nothing is lost at the edges; retention drops
old months whole and trims workspaces with a shorter retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from segments.models import Event, EventMessageId, IngestionSettings, Profile
from segments.partitions import (
    DEFAULT_PARTITION,
    event_message_ids_prune,
    event_partitions_ensure,
    event_retention_apply,
    existing_partitions,
    partition_name,
)


def _rows_in(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return cursor.fetchone()[0]


@pytest.fixture
def profile(workspace):
    return Profile.objects.create(workspace=workspace, user_id="u-1")


def _event(profile, when: datetime, message_id: str) -> Event:
    return Event.objects.create(
        workspace=profile.workspace,
        profile=profile,
        name="logged_in",
        message_id=message_id,
        timestamp=when,
    )


def test_migration_creates_this_month_and_the_next_ones(db):
    now = timezone.now()
    names = existing_partitions()
    assert partition_name(now.date().replace(day=1)) in names
    assert DEFAULT_PARTITION in names
    assert len(names) >= 5


def test_an_event_from_long_ago_is_kept_in_the_default_partition_then_moved(profile):
    old = datetime(2019, 3, 14, 15, 9, tzinfo=UTC)
    event = _event(profile, old, "m-old")
    assert _rows_in(DEFAULT_PARTITION) == 1
    created = event_partitions_ensure(start=old, end=old)
    assert created == ["segments_event_p201903"]
    assert (_rows_in(DEFAULT_PARTITION), _rows_in("segments_event_p201903")) == (0, 1)
    assert Event.objects.get(message_id="m-old").pk == event.pk
    assert event_partitions_ensure(start=old, end=old) == []


def test_deleting_a_profile_removes_its_events_in_every_partition(profile):
    _event(profile, timezone.now(), "m-now")
    _event(profile, datetime(2018, 1, 1, tzinfo=UTC), "m-2018")
    profile.delete()
    assert Event.objects.count() == 0


def test_retention_trims_a_short_workspace_and_keeps_the_others(profile, other_workspace):
    keeper = Profile.objects.create(workspace=other_workspace, user_id="u-2")
    now = timezone.now()
    IngestionSettings.objects.create(workspace=profile.workspace, event_retention_days=30)
    _event(profile, now - timedelta(days=45), "old-acme")
    _event(profile, now - timedelta(days=5), "new-acme")
    _event(keeper, now - timedelta(days=45), "old-globex")
    result = event_retention_apply(now=now)
    assert result == {"partitions_dropped": 0, "rows_deleted": 1}
    assert sorted(Event.objects.values_list("message_id", flat=True)) == ["new-acme", "old-globex"]


def test_a_month_past_every_workspaces_retention_is_dropped_whole(profile, other_workspace):
    now = datetime(2026, 11, 22, tzinfo=UTC)
    old = datetime(2026, 8, 10, tzinfo=UTC)
    event_partitions_ensure(start=old, end=now)
    IngestionSettings.objects.create(workspace=profile.workspace, event_retention_days=30)
    IngestionSettings.objects.create(workspace=other_workspace, event_retention_days=60)
    _event(profile, old, "august")
    _event(profile, now - timedelta(days=1), "recent")
    result = event_retention_apply(now=now)
    assert result["partitions_dropped"] >= 1
    assert "segments_event_p202608" not in existing_partitions()
    assert list(Event.objects.values_list("message_id", flat=True)) == ["recent"]


def test_no_partition_is_dropped_while_a_workspace_keeps_events_forever(profile, other_workspace):
    now = timezone.now()
    IngestionSettings.objects.create(workspace=profile.workspace, event_retention_days=30)
    before = existing_partitions()
    event_retention_apply(now=now + timedelta(days=400))
    assert existing_partitions() == before


def test_old_message_ids_are_forgotten_per_workspace_window(workspace, other_workspace):
    now = timezone.now()
    IngestionSettings.objects.create(workspace=workspace, dedup_window_days=2)
    EventMessageId.objects.bulk_create(
        [
            EventMessageId(
                workspace=workspace, message_id="a-old", received_at=now - timedelta(days=3)
            ),
            EventMessageId(
                workspace=workspace, message_id="a-new", received_at=now - timedelta(days=1)
            ),
            EventMessageId(
                workspace=other_workspace, message_id="g-old", received_at=now - timedelta(days=3)
            ),
            EventMessageId(
                workspace=other_workspace,
                message_id="g-ancient",
                received_at=now - timedelta(days=31),
            ),
        ]
    )
    assert event_message_ids_prune(now=now) == 2
    assert sorted(EventMessageId.objects.values_list("message_id", flat=True)) == ["a-new", "g-old"]
