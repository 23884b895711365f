"""Models of the delivery app.

A Message is one send decided by a journey step. Its idempotency key (enrollment,
node, visit, and for a fallback chain the position in it) is unique, so a step that
runs twice cannot create a second message; channels send it once and record what
happened. Its status only moves forward (delivery.services.message_status_record):
queued -> sent -> delivered -> opened -> clicked, or to one of the ends failed,
bounced, suppressed; each stage keeps the time it was first reached.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

from engagement_site.workspaces.models import Workspace


class Message(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        OPENED = "opened", "Opened"
        CLICKED = "clicked", "Clicked"
        BOUNCED = "bounced", "Bounced"
        FAILED = "failed", "Failed"
        SUPPRESSED = "suppressed", "Not sent"

    # The forward order of a message that goes out; the ends leave it undelivered.
    PROGRESS = ("queued", "sent", "delivered", "opened", "clicked")
    UNDELIVERED = ("bounced", "failed", "suppressed")

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    idempotency_key = models.CharField(max_length=120, unique=True)
    profile = models.ForeignKey(
        "segments.Profile", on_delete=models.CASCADE, related_name="messages"
    )
    journey = models.ForeignKey(
        "journeys.Journey",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="messages",
    )
    journey_version = models.ForeignKey(
        "journeys.JourneyVersion",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    enrollment = models.ForeignKey(
        "journeys.Enrollment",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="messages",
    )
    node_id = models.CharField(max_length=64, blank=True)
    # A fallback node's messages: the position of the channel in its chain (0 first).
    chain_index = models.PositiveSmallIntegerField(default=0)
    variant = models.CharField(max_length=32, blank=True)
    channel = models.CharField(max_length=12)
    template_version = models.ForeignKey(
        "content.TemplateVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    # Why a message was not sent (holdout, shadow mode, no consent, cap, render error ...).
    reason = models.CharField(max_length=200, blank=True)
    is_shadow = models.BooleanField(default=False)
    # Filled by the send: what went out, the provider's id for it, the tries so far.
    rendered = models.JSONField(default=dict, blank=True)
    provider_message_id = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # When a queued message is next due (its decision, a retry, or the end of the
    # lease of the job sending it); the scheduler re-queues the ones left behind.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    requeued_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(
        null=True, blank=True, help_text="When it bounced, failed or was suppressed."
    )

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="message_ws_created"),
            models.Index(fields=["journey", "node_id"], name="message_journey_node"),
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="queued"),
                name="message_queued_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel} to {self.profile_id} ({self.status})"


class Consent(models.Model):
    """A profile's yes or no to messages on one channel (and optional topic). No row
    means no answer yet: marketing email and in-app go out, SMS, WhatsApp and push
    need a yes only where the workspace says so (delivery.policies)."""

    class Status(models.TextChoices):
        SUBSCRIBED = "subscribed", "Subscribed"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    profile = models.ForeignKey(
        "segments.Profile", on_delete=models.CASCADE, related_name="consents"
    )
    channel = models.CharField(max_length=12)
    topic = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices)
    # How it was given or taken back: one_click, preference_centre, sms_keyword, api ...
    source = models.CharField(max_length=40)
    message = models.ForeignKey(
        Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["profile", "channel", "topic"], name="consent_unique_profile_channel"
            )
        ]

    def __str__(self) -> str:
        return f"{self.profile_id} {self.channel}: {self.status}"


class DeliverySettings(models.Model):
    """A workspace's delivery choices (one row; defaults when there is none)."""

    workspace = models.OneToOneField(
        Workspace, on_delete=models.CASCADE, related_name="delivery_settings"
    )
    track_opens = models.BooleanField(default=True)
    track_clicks = models.BooleanField(default=True)
    # Links to these hosts (and their subdomains) get utm_* parameters.
    utm_domains = ArrayField(models.CharField(max_length=253), default=list, blank=True)
    utm_source = models.CharField(max_length=100, default="engagement")
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"delivery settings of {self.workspace_id}"
