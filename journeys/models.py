"""Models of the journeys app.

A Journey has one editable JourneyDraft (graph, layout, settings) and any number of
immutable JourneyVersions, frozen at publish time together with the template versions
they send. Each profile in a journey is an Enrollment: a row-level state machine in the
manner of Takahe's stator (state, next_run_at, locked_until, attempts). Every node an
enrollment passes is written to StepLog, whose unique key (enrollment, node, visit)
makes a retried step a no-op. The database is the source of truth; RQ only carries
"look at these enrollments now".
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from engagement_site.workspaces.models import Workspace


class Journey(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        LIVE = "live", "Live"
        PAUSED = "paused", "Paused"
        STOPPED = "stopped", "Stopped"
        ARCHIVED = "archived", "Archived"

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="journeys", db_index=False
    )
    name = models.CharField(max_length=200)
    description = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    live_version = models.ForeignKey(
        "JourneyVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Why the journey was paused by the circuit breaker (empty when a person paused it).
    paused_reason = models.TextField(blank=True)
    # Experiments decided: split node id -> the winning variant key, which all new
    # traffic of that split takes (the holdout stays); set by
    # analytics.services.experiment_winner_declare, audited.
    split_winners = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="journey_unique_name")
        ]
        indexes = [models.Index(fields=["workspace", "status"], name="journey_ws_status")]

    def __str__(self) -> str:
        return self.name


class JourneyDraft(models.Model):
    """The editable definition. `revision` grows on every save: a save that names an
    older revision than the stored one is refused (two people editing)."""

    journey = models.OneToOneField(Journey, on_delete=models.CASCADE, related_name="draft")
    definition = models.JSONField(default=dict)
    layout = models.JSONField(default=dict, blank=True)
    revision = models.PositiveIntegerField(default=1)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"draft of {self.journey_id} r{self.revision}"


class JourneyVersion(models.Model):
    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    definition = models.JSONField()
    # {template_id: template_version_id}: what this version sends, frozen at publish.
    template_versions = models.JSONField(default=dict)
    note = models.CharField(max_length=200, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    published_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["journey", "number"], name="journey_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.journey} v{self.number}"


class Enrollment(models.Model):
    class State(models.TextChoices):
        ACTIVE = "active", "Active"  # due to run its current node at next_run_at
        WAITING = "waiting", "Waiting"  # parked at a wait until next_run_at or an event
        COMPLETED = "completed", "Completed"
        EXITED = "exited", "Exited"
        FAILED = "failed", "Failed"

    OPEN_STATES = (State.ACTIVE, State.WAITING)

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="enrollments")
    version = models.ForeignKey(
        JourneyVersion, on_delete=models.PROTECT, related_name="enrollments"
    )
    profile = models.ForeignKey(
        "segments.Profile", on_delete=models.CASCADE, related_name="enrollments"
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.ACTIVE)
    current_node = models.CharField(max_length=64)
    next_run_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The trigger event, the split variant, and variables steps store.
    context = models.JSONField(default=dict, blank=True)
    # The stored event that made the profile enter (event triggers): one entry per event,
    # so a replayed ingestion job cannot enter anyone twice.
    trigger_event_id = models.BigIntegerField(null=True, blank=True)
    entered_at = models.DateTimeField(default=timezone.now)
    exited_at = models.DateTimeField(null=True, blank=True)
    exit_reason = models.CharField(max_length=40, blank=True)
    last_error = models.TextField(blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["journey", "trigger_event_id"],
                condition=models.Q(trigger_event_id__isnull=False),
                name="enrollment_once_per_event",
            )
        ]
        indexes = [
            # The executor's claim: open enrollments by due time.
            models.Index(
                fields=["next_run_at"],
                name="enrollment_due",
                condition=models.Q(state__in=["active", "waiting"]),
            ),
            models.Index(fields=["journey", "profile"], name="enrollment_journey_profile"),
            models.Index(fields=["workspace", "profile"], name="enrollment_ws_profile"),
        ]

    def __str__(self) -> str:
        return f"{self.profile_id} in {self.journey_id} at {self.current_node}"

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN_STATES


class StepLog(models.Model):
    """One node executed for one enrollment. Append-only. `visit` counts the times the
    enrollment reached this node (loops pass a node again), so (enrollment, node,
    visit) identifies one execution and a retry of it cannot be written twice."""

    class Outcome(models.TextChoices):
        ENTERED = "entered", "Entered"
        WAITING = "waiting", "Waiting"
        CONTINUED = "continued", "Continued"
        BRANCHED = "branched", "Branched"
        SENT = "sent", "Message created"
        SKIPPED = "skipped", "Not sent"
        CONVERTED = "converted", "Converted"
        EXITED = "exited", "Exited"
        FAILED = "failed", "Failed"

    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="steps")
    node_id = models.CharField(max_length=64)
    visit = models.PositiveIntegerField(default=1)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    port = models.CharField(max_length=40, blank=True, help_text="The output taken")
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["enrollment", "node_id", "visit"], name="steplog_once_per_visit"
            )
        ]
        indexes = [
            models.Index(fields=["enrollment", "created_at"], name="steplog_enrollment_time")
        ]

    def __str__(self) -> str:
        return f"{self.enrollment_id} {self.node_id}#{self.visit} {self.outcome}"


class ScheduleRun(models.Model):
    """One firing of a scheduled trigger; unique per journey and time, so a fire is
    never repeated (a re-run job enters nobody twice)."""

    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="schedule_runs")
    version = models.ForeignKey(JourneyVersion, on_delete=models.CASCADE, related_name="+")
    fire_at = models.DateTimeField()
    entered = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["journey", "fire_at"], name="schedule_run_once")
        ]

    def __str__(self) -> str:
        return f"{self.journey_id} at {self.fire_at:%Y-%m-%d %H:%M}"
