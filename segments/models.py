"""Models of the segments app: the people a workspace engages (Profile) and what they
did (Event).

This is the plain, unpartitioned form. Planned later: time partitioning of the events
table (composite primary key, messageId dedup moved to its own table), identity
merges (anonymousId -> userId) and the ingestion API. Field names follow the Segment
spec in snake_case so that later work can keep them.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

from engagement_site.workspaces.models import Workspace


class Profile(models.Model):
    """One person in one workspace, known by a user_id, by anonymous ids, or both.

    email / phone / time_zone / locale are copies of the matching traits, kept in
    columns because delivery and search read them on every message."""

    # Not indexed alone: the (workspace, ...) indexes below start with it.
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="profiles", db_index=False
    )
    # Blank while the person is known only by anonymous ids (never NULL, so "" is the
    # single "no user id" value and the partial unique constraint below can skip it).
    user_id = models.CharField(max_length=255, blank=True)
    anonymous_ids = ArrayField(models.CharField(max_length=255), default=list, blank=True)
    traits = models.JSONField(default=dict, blank=True)
    email = models.CharField(max_length=254, blank=True)
    phone = models.CharField(max_length=32, blank=True, help_text="E.164, e.g. +4915112345678")
    time_zone = models.CharField(max_length=64, blank=True, help_text="IANA name")
    locale = models.CharField(max_length=16, blank=True)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "user_id"],
                condition=~models.Q(user_id=""),
                name="profile_unique_user_id",
            )
        ]
        indexes = [
            models.Index(fields=["workspace", "email"], name="profile_ws_email"),
            models.Index(fields=["workspace", "-last_seen"], name="profile_ws_last_seen"),
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        """The best human label: the name trait, then the email, then the ids."""
        name = self.traits.get("name") if isinstance(self.traits, dict) else None
        if isinstance(name, str) and name.strip():
            return name.strip()
        if self.email:
            return self.email
        if self.user_id:
            return self.user_id
        return self.anonymous_ids[0] if self.anonymous_ids else f"Profile {self.pk}"


class Event(models.Model):
    """One call received for a profile: a track, identify, page, screen, group or alias.

    `properties` holds the call's payload: the properties of track / page / screen,
    the traits of identify / group. `timestamp` is the corrected event time
    (receivedAt - (sentAt - originalTimestamp), as Segment computes it); the three
    raw times are kept for debugging clock skew."""

    class Type(models.TextChoices):
        TRACK = "track", "Track"
        IDENTIFY = "identify", "Identify"
        PAGE = "page", "Page"
        SCREEN = "screen", "Screen"
        GROUP = "group", "Group"
        ALIAS = "alias", "Alias"

    id = models.BigAutoField(primary_key=True)
    # No single-column indexes on the two foreign keys: the composite indexes below
    # start with them, and every extra index slows down bulk ingestion.
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    profile = models.ForeignKey(
        Profile, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    type = models.CharField(max_length=10, choices=Type.choices, default=Type.TRACK)
    name = models.CharField(max_length=200, blank=True, help_text="Blank for non-track calls")
    properties = models.JSONField(default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True)
    message_id = models.CharField(max_length=100)
    timestamp = models.DateTimeField()
    original_timestamp = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "message_id"], name="event_unique_message_id"
            )
        ]
        indexes = [
            models.Index(fields=["profile", "name", "timestamp"], name="event_profile_name_ts"),
            models.Index(fields=["workspace", "name", "timestamp"], name="event_ws_name_ts"),
            models.Index(fields=["workspace", "timestamp"], name="event_ws_ts"),
        ]

    def __str__(self) -> str:
        label = self.name or self.get_type_display()
        return f"{label} at {self.timestamp:%Y-%m-%d %H:%M:%S}"
