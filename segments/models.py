"""Models of the segments app: the people a workspace engages (Profile, Identity,
ProfileMerge, TraitChange) and what they did (Event, partitioned by month), with the
ingestion bookkeeping (EventMessageId for dedup, RejectedEvent quarantine, EventSchema,
IngestionSettings). Field names follow the Segment spec in snake_case.

See docs/events.md for the partitioning and retention design.
"""

from __future__ import annotations

from django.conf import settings
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

    # The table is partitioned by month on `timestamp` (migration 0001 creates it by
    # hand), so its primary key must include the partition key. `id` comes from a
    # sequence and is unique on its own in practice.
    pk = models.CompositePrimaryKey("id", "timestamp")
    id = models.BigIntegerField(
        editable=False,
        db_default=models.Func(models.Value("segments_event_id_seq"), function="nextval"),
    )
    # DO_NOTHING in Django: the database's own ON DELETE CASCADE removes a deleted
    # profile's events partition by partition, without loading them.
    workspace = models.ForeignKey(
        Workspace, on_delete=models.DO_NOTHING, related_name="events", db_index=False
    )
    profile = models.ForeignKey(
        Profile, on_delete=models.DO_NOTHING, related_name="events", db_index=False
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
    # Schema violations when the workspace flags (rather than quarantines) them.
    violations = models.JSONField(default=list, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["profile", "name", "timestamp"], name="event_profile_name_ts"),
            models.Index(fields=["workspace", "name", "timestamp"], name="event_ws_name_ts"),
            models.Index(fields=["workspace", "timestamp"], name="event_ws_ts"),
        ]

    def __str__(self) -> str:
        label = self.name or self.get_type_display()
        return f"{label} at {self.timestamp:%Y-%m-%d %H:%M:%S}"


class Identity(models.Model):
    """An id by which a profile is known: its user id, each anonymous id, each alias.
    Ingestion resolves every call through this table."""

    class Kind(models.TextChoices):
        USER_ID = "user_id", "User id"
        ANONYMOUS_ID = "anonymous_id", "Anonymous id"

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    value = models.CharField(max_length=255)
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="identities")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "kind", "value"], name="identity_unique_value"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind}={self.value}"


class ProfileMerge(models.Model):
    """A record that one profile was folded into another (identify or alias)."""

    class Reason(models.TextChoices):
        IDENTIFY = "identify", "Identify linked an anonymous id to a user id"
        ALIAS = "alias", "Alias joined two ids"

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="merges")
    merged_profile_id = models.BigIntegerField(
        help_text="The id of the profile that no longer exists"
    )
    merged_identities = models.JSONField(default=list)
    merged_traits = models.JSONField(default=dict)
    events_moved = models.PositiveIntegerField(default=0)
    reason = models.CharField(max_length=10, choices=Reason.choices)
    message_id = models.CharField(max_length=100, blank=True)
    merged_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-merged_at"]

    def __str__(self) -> str:
        return f"profile {self.merged_profile_id} merged into {self.profile_id} ({self.reason})"


class TraitChange(models.Model):
    """The last changes of a profile's traits (the newest TRAIT_HISTORY_KEPT per profile)."""

    TRAIT_HISTORY_KEPT = 100

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    profile = models.ForeignKey(
        Profile, on_delete=models.CASCADE, related_name="trait_changes", db_index=False
    )
    trait = models.CharField(max_length=255, help_text="Dotted path for nested traits")
    before = models.JSONField(null=True)
    after = models.JSONField(null=True)
    source = models.CharField(max_length=40, help_text="identify, import, api, merge")
    message_id = models.CharField(max_length=100, blank=True)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["profile", "-changed_at"], name="traitchange_profile_time")]

    def __str__(self) -> str:
        return f"{self.trait}: {self.before!r} -> {self.after!r}"


class EventMessageId(models.Model):
    """messageIds seen per workspace, for deduplication. Unpartitioned (a unique index
    on the partitioned events table would have to include the timestamp); rows older
    than IngestionSettings.dedup_window_days are pruned by the scheduler."""

    pk = models.CompositePrimaryKey("workspace_id", "message_id")
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    message_id = models.CharField(max_length=100)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return self.message_id


class RejectedEvent(models.Model):
    """Quarantine: an event refused inside an accepted request, with the reason and the
    raw payload, shown in the UI and the API so nothing accepted is silently lost."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    received_at = models.DateTimeField(default=timezone.now)
    code = models.CharField(max_length=40)
    reason = models.TextField()
    event_type = models.CharField(max_length=20, blank=True)
    event_name = models.CharField(max_length=200, blank=True)
    message_id = models.CharField(max_length=100, blank=True)
    payload = models.JSONField(null=True)
    raw = models.TextField(blank=True, help_text="The payload as text when it was not JSON")

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["workspace", "-received_at"], name="rejected_ws_received")]

    def __str__(self) -> str:
        return f"{self.code}: {self.event_name or self.event_type or self.message_id}"


class EventSchema(models.Model):
    """Expected properties of one event name: {"plan": {"type": "string", "required": true}}."""

    class PropertyType(models.TextChoices):
        STRING = "string"
        NUMBER = "number"
        INTEGER = "integer"
        BOOLEAN = "boolean"
        OBJECT = "object"
        ARRAY = "array"

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    event_name = models.CharField(max_length=200)
    properties = models.JSONField(default=dict)
    allow_additional_properties = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "event_name"], name="eventschema_unique_name"
            )
        ]
        ordering = ["event_name"]

    def __str__(self) -> str:
        return self.event_name


class IngestionSettings(models.Model):
    """Per-workspace ingestion policy."""

    class ViolationAction(models.TextChoices):
        FLAG = "flag", "Store the event and flag the violation"
        QUARANTINE = "quarantine", "Quarantine the event"

    workspace = models.OneToOneField(
        Workspace, on_delete=models.CASCADE, related_name="ingestion_settings"
    )
    schema_violation_action = models.CharField(
        max_length=12, choices=ViolationAction.choices, default=ViolationAction.FLAG
    )
    rate_limit_per_second = models.PositiveIntegerField(
        default=2000, help_text="Events per second, averaged over 10 s"
    )
    event_retention_days = models.PositiveIntegerField(
        default=0, help_text="0 keeps events forever"
    )
    dedup_window_days = models.PositiveIntegerField(default=30)

    class Meta:
        verbose_name_plural = "ingestion settings"

    def __str__(self) -> str:
        return f"Ingestion settings of {self.workspace_id}"


class ImportKind(models.TextChoices):
    PROFILES = "profiles", "Profiles"
    EVENTS = "events", "Events"
    PURCHASES = "purchases", "Purchases"


class FileFormat(models.TextChoices):
    CSV = "csv", "CSV"
    JSON = "json", "JSON array"
    JSONL = "jsonl", "JSON Lines"


class ImportJob(models.Model):
    """One uploaded file of profiles, events or purchases being imported (an RQ job)."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Waiting for the column mapping"
        PENDING = "pending", "Waiting for a worker"
        RUNNING = "running", "Importing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=12, choices=ImportKind.choices)
    file_format = models.CharField(max_length=8, choices=FileFormat.choices)
    file = models.FileField(upload_to="imports/%Y/%m/")
    original_name = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField()
    mapping = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    total_rows = models.PositiveIntegerField(null=True)
    processed_rows = models.PositiveIntegerField(default=0)
    imported = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, help_text="The first row errors: row, column, message")
    failure = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} import of {self.original_name}"

    @property
    def progress_percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        if not self.total_rows:
            return 0
        return min(100, round(100 * self.processed_rows / self.total_rows))


class Segment(models.Model):
    """A named group of profiles: dynamic (a rule tree in `definition`, evaluated by
    segments.evaluation, see docs/segments.md) or static (a fixed list)."""

    class Kind(models.TextChoices):
        DYNAMIC = "dynamic", "Dynamic"
        STATIC = "static", "Static"

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="segments", db_index=False
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.DYNAMIC)
    definition = models.JSONField(default=dict, blank=True, help_text="The rule tree")
    recompute_interval_seconds = models.PositiveIntegerField(default=300)
    last_computed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(
        blank=True, help_text="Why the last evaluation failed (empty when it succeeded)"
    )
    member_count = models.PositiveIntegerField(default=0)
    source = models.CharField(
        max_length=200,
        blank=True,
        help_text='Where a static segment\'s members came from ("CSV upload: vip.csv", '
        '"Snapshot of Buyers")',
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="segment_unique_name")
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SegmentMembership(models.Model):
    """One stay of a profile in a segment: open while `exited_at` is NULL. Closed rows
    are kept as history; a profile that re-enters gets a new row."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships")
    profile = models.ForeignKey(
        Profile, on_delete=models.CASCADE, related_name="segment_memberships"
    )
    entered_at = models.DateTimeField(default=timezone.now)
    exited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["segment", "profile"],
                condition=models.Q(exited_at__isnull=True),
                name="segmentmembership_one_open",
            )
        ]
        indexes = [
            models.Index(fields=["segment", "exited_at"], name="segmentmembership_seg_exit"),
        ]

    def __str__(self) -> str:
        state = "open" if self.exited_at is None else f"exited {self.exited_at:%Y-%m-%d %H:%M}"
        return f"profile {self.profile_id} in segment {self.segment_id} ({state})"


class SegmentSize(models.Model):
    """The size of a segment over time: one row per segment per hour, holding the
    member count at the hour's last refresh and the entries / exits during the hour.
    Written by every refresh that changed something and by every full recompute."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="sizes")
    hour = models.DateTimeField(help_text="The start of the hour (UTC)")
    member_count = models.PositiveIntegerField()
    entered = models.PositiveIntegerField(default=0)
    exited = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["segment", "hour"], name="segmentsize_one_per_hour")
        ]
        ordering = ["segment", "hour"]

    def __str__(self) -> str:
        return f"segment {self.segment_id} at {self.hour:%Y-%m-%d %H:00}: {self.member_count}"
