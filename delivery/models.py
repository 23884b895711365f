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
    # The journey's subscription topic ("" none); transactional messages (receipts,
    # password resets) are exempt from frequency caps and quiet hours, never consent.
    topic = models.CharField(max_length=64, blank=True)
    transactional = models.BooleanField(default=False)
    # What the message is for when not a journey's or the API's own: the email that
    # asks a person to confirm their subscription (double opt-in) may reach someone
    # whose answer is still pending.
    purpose = models.CharField(
        max_length=20,
        blank=True,
        choices=[("", "Message"), ("opt_in_confirmation", "Opt-in confirmation")],
    )
    # Why a queued message waits past its time (quiet hours, the send rate, a cap
    # window), until next_attempt_at.
    hold_reason = models.CharField(max_length=40, blank=True)
    # When the message took its place under the frequency caps (it passed them and
    # went on to be sent); what the caps count.
    cap_counted_at = models.DateTimeField(null=True, blank=True)
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
    # In-app cards: when the person closed it (it leaves their inbox).
    dismissed_at = models.DateTimeField(null=True, blank=True)
    # A failed message taken off the dead-letter list without another try.
    discarded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="message_ws_created"),
            models.Index(fields=["journey", "node_id"], name="message_journey_node"),
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="queued"),
                name="message_queued_due",
            ),
            models.Index(
                fields=["channel", "provider_message_id"],
                condition=~models.Q(provider_message_id=""),
                name="message_provider_id",
            ),
            models.Index(
                fields=["profile", "channel", "sent_at"],
                condition=models.Q(sent_at__isnull=False),
                name="message_profile_sent",
            ),
            models.Index(
                fields=["profile", "cap_counted_at"],
                condition=models.Q(cap_counted_at__isnull=False),
                name="message_profile_capped",
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
        # Asked to subscribe; waiting for the click in the confirmation email.
        PENDING = "pending", "Waiting for confirmation"

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


def quiet_hours_default_channels() -> list[str]:
    return ["sms", "whatsapp", "push", "web_push"]


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
    # Nothing leaves the workspace: messages run the whole path and are logged as shadow.
    shadow_mode = models.BooleanField(default=False)
    # No marketing messages on these channels between start and end in the profile's
    # time zone (or the fallback one); they wait for the end, they are not dropped.
    quiet_hours_start = models.TimeField(null=True, blank=True)
    quiet_hours_end = models.TimeField(null=True, blank=True)
    quiet_hours_channels = ArrayField(
        models.CharField(max_length=12), default=quiet_hours_default_channels, blank=True
    )
    fallback_time_zone = models.CharField(max_length=64, default="UTC")
    # Channels that reach only people who said yes (a Consent row "subscribed"), e.g.
    # SMS where the law asks for prior consent; on the others no answer means yes.
    opt_in_channels = ArrayField(models.CharField(max_length=12), default=list, blank=True)
    # Double opt-in: marketing email needs a confirmed yes, given by clicking the link
    # in the confirmation email (opt_in_template, made on first use when empty).
    email_double_opt_in = models.BooleanField(default=False)
    opt_in_template = models.ForeignKey(
        "content.Template", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"delivery settings of {self.workspace_id}"


class ChannelSettings(models.Model):
    """A workspace's settings for one channel: the provider's base URL, credentials and
    sender ids (the channel's pydantic Config; fields typed SecretStr are kept
    encrypted in `secrets`, never in `config`), its send rate, and the token of the
    URLs its provider calls back (delivery receipts, inbound messages)."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="channel_settings", db_index=False
    )
    channel = models.CharField(max_length=12)
    enabled = models.BooleanField(default=True)
    config = models.JSONField(default=dict, blank=True)
    # Fernet token (engagement_site.crypto) of a JSON object of the secret fields.
    secrets = models.TextField(blank=True)
    # Messages per second this workspace may send on the channel (empty: no limit).
    rate_per_second = models.PositiveIntegerField(null=True, blank=True)
    # What one message costs the workspace here (its provider's price), for the
    # channel report's cost per message and per conversion; null: not configured.
    cost_per_message = models.DecimalField(max_digits=10, decimal_places=5, null=True, blank=True)
    hook_token = models.CharField(max_length=43, unique=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "channel"], name="channelsettings_unique_channel"
            )
        ]
        verbose_name_plural = "channel settings"

    def __str__(self) -> str:
        return f"{self.channel} settings of {self.workspace_id}"


class Device(models.Model):
    """Where a profile's push messages go: an FCM registration token of an app
    install, or a browser's web push subscription (endpoint + keys)."""

    class Kind(models.TextChoices):
        FCM = "fcm", "Mobile app (FCM)"
        WEB_PUSH = "web_push", "Browser (web push)"

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    profile = models.ForeignKey(
        "segments.Profile", on_delete=models.CASCADE, related_name="devices"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # The FCM registration token, or the web push endpoint URL.
    token = models.CharField(max_length=1000)
    # Web push: {"p256dh": ..., "auth": ...}; apps: {"platform": "ios", "app": ...}.
    keys = models.JSONField(default=dict, blank=True)
    platform = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    # Set when the provider says the token is gone (uninstalled, expired subscription).
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "kind", "token"], name="device_unique_token"
            )
        ]
        indexes = [models.Index(fields=["profile", "kind"], name="device_profile_kind")]

    def __str__(self) -> str:
        return f"{self.kind} device of {self.profile_id}"


class Suppression(models.Model):
    """An address nothing is sent to on a channel: it bounced for good, its owner
    complained (marked as spam), or someone put it here. Checked at every send."""

    class Reason(models.TextChoices):
        BOUNCE = "bounce", "Hard bounce"
        COMPLAINT = "complaint", "Spam complaint"
        MANUAL = "manual", "Added by hand"
        INVALID = "invalid", "Invalid address"
        KEYWORD = "keyword", "Opted out by text (STOP) from an unknown number"

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    channel = models.CharField(max_length=12)
    # Normalised: lower-case email, E.164 phone number.
    address = models.CharField(max_length=254)
    reason = models.CharField(max_length=10, choices=Reason.choices)
    note = models.CharField(max_length=500, blank=True)
    message = models.ForeignKey(
        Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "channel", "address"], name="suppression_unique_address"
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.address} ({self.reason})"


class Topic(models.Model):
    """A subscription topic ("Product news", "Weekly digest"): journeys send under one,
    people opt out of it (or, for opt-in topics, in) in the preference centre."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    key = models.SlugField(max_length=64)
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    # Opt-in topics reach only those who said yes; the others everyone who did not say no.
    opt_in = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "key"], name="topic_unique_key")
        ]

    def __str__(self) -> str:
        return self.name


class FrequencyCap(models.Model):
    """At most `limit` marketing messages per profile in any rolling `window_seconds`,
    on one channel or (channel "") on all of them, across the workspace. Journeys add
    caps of their own in their settings. Transactional messages are exempt."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="frequency_caps", db_index=False
    )
    channel = models.CharField(max_length=12, blank=True)
    limit = models.PositiveIntegerField()
    window_seconds = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["workspace", "channel"], name="frequencycap_ws")]

    def __str__(self) -> str:
        return f"{self.limit} per {self.window_seconds}s on {self.channel or 'all channels'}"


class MessageEvent(models.Model):
    """Something that happened to a message, recorded once (a provider's repeated
    callback adds nothing): what analytics counts and the message log shows."""

    class Kind(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        OPENED = "opened", "Opened"
        MACHINE_OPENED = "machine_opened", "Opened by a machine"
        CLICKED = "clicked", "Clicked"
        MACHINE_CLICKED = "machine_clicked", "Clicked by a machine"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Marked as spam"
        FAILED = "failed", "Failed"
        SUPPRESSED = "suppressed", "Not sent"
        RETRIED = "retried", "Temporary error, retrying"
        DEFERRED = "deferred", "Held (quiet hours, rate)"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        DISMISSED = "dismissed", "Dismissed"

    # Kinds that may happen more than once to a message (each try, each hold).
    REPEATABLE = ("retried", "deferred")

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    at = models.DateTimeField(default=timezone.now)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["message", "kind"],
                condition=~models.Q(kind__in=["retried", "deferred"]),
                name="messageevent_once",
            )
        ]
        indexes = [models.Index(fields=["workspace", "kind", "at"], name="messageevent_ws_kind")]

    def __str__(self) -> str:
        return f"{self.kind} of message {self.message_id}"
