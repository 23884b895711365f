"""Models of the analytics app."""

from __future__ import annotations

from django.db import models

from engagement_site.workspaces.models import Workspace


class MessageCounter(models.Model):
    """How many message events of one kind happened on one day (in the workspace's
    time zone) for one journey / version / node / variant / channel. Kept up to date
    by a database trigger on every message event actually stored (migration 0001), so
    a provider's repeated callback, which stores nothing, counts nothing, and no code
    path can forget to count; `manage.py rebuild_metrics` recomputes them from the
    events. Ids are 0 and strings empty for "none" (messages outside journeys)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    journey_id = models.BigIntegerField(default=0)
    journey_version_id = models.BigIntegerField(default=0)
    node_id = models.CharField(max_length=64, blank=True)
    variant = models.CharField(max_length=32, blank=True)
    channel = models.CharField(max_length=12)
    kind = models.CharField(max_length=16)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "workspace", "day", "journey_id", "journey_version_id", "node_id",
                    "variant", "channel", "kind",
                ],
                name="message_counter_unique",
            )
        ]  # fmt: skip
        indexes = [models.Index(fields=["workspace", "journey_id", "day"], name="counter_journey")]

    def __str__(self) -> str:
        return f"{self.day} {self.channel} {self.kind}: {self.count}"


class Conversion(models.Model):
    """A journey's goal reached: the event, its revenue, and the messages it is
    attributed to, first-touch (the journey's first message to the person within the
    attribution window before the event) and last-touch (the latest). One per
    enrollment: a goal converts an enrollment once."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    journey = models.ForeignKey("journeys.Journey", on_delete=models.CASCADE, related_name="+")
    journey_version = models.ForeignKey(
        "journeys.JourneyVersion", on_delete=models.CASCADE, related_name="+"
    )
    enrollment = models.OneToOneField(
        "journeys.Enrollment", on_delete=models.CASCADE, related_name="conversion"
    )
    profile = models.ForeignKey("segments.Profile", on_delete=models.CASCADE, related_name="+")
    event_name = models.CharField(max_length=200)
    event_id = models.BigIntegerField(null=True, blank=True)
    revenue = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    at = models.DateTimeField()
    first_touch = models.ForeignKey(
        "delivery.Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    last_touch = models.ForeignKey(
        "delivery.Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["workspace", "journey", "at"], name="conversion_journey")]

    def __str__(self) -> str:
        return f"{self.event_name} for journey {self.journey_id}"
