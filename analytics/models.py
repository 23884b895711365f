"""Models of the analytics app."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.postgres.fields import ArrayField
from django.db import models

from engagement_site.workspaces.models import Workspace

COUNTER_SHARDS = 8


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
    # The message id modulo COUNTER_SHARDS: a busy node's events of one day update
    # several rows instead of queueing on one row's lock; readers sum the shards.
    shard = models.PositiveSmallIntegerField(default=0)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "workspace", "day", "journey_id", "journey_version_id", "node_id",
                    "variant", "channel", "kind", "shard",
                ],
                name="message_counter_unique_shard",
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


def _default_revenue_events() -> list[str]:
    return ["Order Completed"]


def _default_revenue_properties() -> list[str]:
    return ["revenue", "total"]


def _default_touchpoint_events() -> dict[str, list[str]]:
    # email, web and mobile come from message engagement and page / screen calls; the
    # event names here add to them (e.g. an app that tracks "Email Opened" itself).
    return {
        "email": [],
        "web": [],
        "mobile": [],
        "social": ["Shared"],
        "support": ["Ticket Created"],
        "purchase": ["Order Completed"],
        "review": ["Review Submitted"],
    }


def _default_touchpoint_weights() -> dict[str, float]:
    return {
        "email": 1.0,
        "web": 1.0,
        "mobile": 1.0,
        "social": 1.0,
        "support": 0.5,
        "purchase": 2.0,
        "review": 1.5,
    }


class CustomerValueSettings(models.Model):
    """How a workspace's customer value is computed (docs/analytics.md, "Customer
    value"): the LTV inputs, the touchpoints of the engagement score and their
    weights, and the tier thresholds. Created with the defaults on first use."""

    workspace = models.OneToOneField(
        Workspace, on_delete=models.CASCADE, related_name="customer_value_settings"
    )
    discount_rate = models.DecimalField(max_digits=5, decimal_places=4, default=Decimal("0.1"))
    lifespan_years = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("3"))
    revenue_events = ArrayField(models.CharField(max_length=200), default=_default_revenue_events)
    revenue_properties = ArrayField(
        models.CharField(max_length=200), default=_default_revenue_properties
    )
    touchpoint_events = models.JSONField(default=_default_touchpoint_events)
    touchpoint_weights = models.JSONField(default=_default_touchpoint_weights)
    engagement_window_days = models.PositiveIntegerField(default=90)
    high_ltv = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("500"))
    medium_ltv = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("100"))
    high_engagement = models.DecimalField(max_digits=5, decimal_places=1, default=Decimal("60"))
    at_risk_days = models.PositiveIntegerField(default=30)
    lost_days = models.PositiveIntegerField(default=90)
    last_computed_at = models.DateTimeField(null=True, blank=True)
    last_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Customer value settings of {self.workspace}"


class ValueTier(models.TextChoices):
    CHAMPION = "champion", "Champion"
    LOYAL = "loyal", "Loyal"
    POTENTIAL = "potential", "Potential"
    AT_RISK = "at_risk", "At risk"
    LOST = "lost", "Lost"


class CustomerValue(models.Model):
    """One profile's computed value (recomputed in bulk, never appended): what the
    computed_trait segment rule, the value report and Liquid's profile.value read."""

    profile = models.OneToOneField(
        "segments.Profile", on_delete=models.CASCADE, primary_key=True, related_name="value"
    )
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    revenue = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    orders = models.PositiveIntegerField(default=0)
    average_order_value = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    purchase_frequency = models.FloatField(default=0, help_text="Orders per year")
    ltv = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    engagement_score = models.FloatField(default=0, help_text="0-100")
    value_tier = models.CharField(max_length=10, choices=ValueTier.choices)
    churn_risk = models.FloatField(default=1, help_text="0-1")
    last_engaged_at = models.DateTimeField(null=True, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "value_tier"], name="customervalue_tier"),
            models.Index(fields=["workspace", "-ltv"], name="customervalue_ltv"),
        ]

    def __str__(self) -> str:
        return f"{self.value_tier}, LTV {self.ltv}"
