from __future__ import annotations

import hashlib
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from engagement_site.workspaces.roles import Role


def validate_time_zone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{value!r} is not an IANA time zone") from None


locale_validator = RegexValidator(
    r"^[a-z]{2,3}(-[A-Z]{2})?$", "Use a locale such as 'en' or 'pt-BR'."
)


class Workspace(models.Model):
    """A tenant. Every other row in the product belongs to exactly one workspace."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    default_locale = models.CharField(max_length=10, default="en", validators=[locale_validator])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "user"], name="membership_unique_user")
        ]
        ordering = ["workspace", "user"]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} as {self.get_role_display()}"


class ApiKey(models.Model):
    """A workspace key. Write keys are public (embedded in apps, like Segment's);
    secret keys are shown once and only their SHA-256 is kept."""

    class Kind(models.TextChoices):
        WRITE = "write", "Write key (ingestion)"
        SECRET = "secret", "Secret key (REST API)"

    PREFIXES = {Kind.WRITE: "wk_", Kind.SECRET: "sk_"}

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    name = models.CharField(max_length=120)
    role = models.CharField(
        max_length=20, choices=Role.choices, blank=True, help_text="Secret keys act with this role."
    )
    display_prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    # Kept only for write keys, which are public by nature and shown again in Settings.
    public_value = models.CharField(max_length=80, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind="write", role="")
                | models.Q(kind="secret") & ~models.Q(role=""),
                name="api_key_role_only_for_secret",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.display_prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @staticmethod
    def hash_key(raw_key: str) -> str:
        return hashlib.sha256(raw_key.encode()).hexdigest()


class AuditAction(models.TextChoices):
    """What an audit row records, named "<object>.<verb>". Every action a service
    writes is declared here (audit_record refuses any other, and
    tests/workspaces/test_audit_actions.py checks the call sites)."""

    # People signing in and out (the global chain).
    USER_LOGIN = "user.login", "Logged in"
    USER_LOGOUT = "user.logout", "Logged out"
    USER_LOGIN_FAILED = "user.login_failed", "Failed login"
    # The workspace, its members and keys.
    WORKSPACE_CREATE = "workspace.create", "Workspace created"
    WORKSPACE_UPDATE = "workspace.update", "Workspace settings changed"
    MEMBER_CREATE = "member.create", "Member added"
    MEMBER_UPDATE = "member.update", "Member's role changed"
    MEMBER_DELETE = "member.delete", "Member removed"
    API_KEY_CREATE = "api_key.create", "API key created"
    API_KEY_REVOKE = "api_key.revoke", "API key revoked"
    API_KEY_USE = "api_key.use", "API key used"
    SECRET_REVEAL = "secret.reveal", "Secret revealed"
    # Profiles, events and segments.
    PROFILE_UPDATE = "profile.update", "Profile traits changed"
    PROFILE_EXPORT = "profile.export", "Profile exported"
    PROFILE_ERASE = "profile.erase", "Profile erased"
    CONSENT_CHANGE = "consent.change", "Consent changed"
    EVENT_SCHEMA_CREATE = "event_schema.create", "Event schema created"
    EVENT_SCHEMA_UPDATE = "event_schema.update", "Event schema changed"
    EVENT_SCHEMA_DELETE = "event_schema.delete", "Event schema deleted"
    IMPORT_CREATE = "import.create", "Import uploaded"
    IMPORT_START = "import.start", "Import started"
    SEGMENT_CREATE = "segment.create", "Segment created"
    SEGMENT_UPDATE = "segment.update", "Segment changed"
    SEGMENT_DELETE = "segment.delete", "Segment deleted"
    SEGMENT_EXPORT = "segment.export", "Segment exported"
    SEGMENT_MEMBERS = "segment.members", "Static segment members changed"
    SEGMENT_SNAPSHOT = "segment.snapshot", "Segment snapshot taken"
    # Content.
    TEMPLATE_CREATE = "template.create", "Template created"
    TEMPLATE_SAVE = "template.save", "Template content saved"
    TEMPLATE_UPDATE = "template.update", "Template settings changed"
    TEMPLATE_RESTORE = "template.restore", "Template version restored"
    TEMPLATE_ARCHIVE = "template.archive", "Template archived"
    TEMPLATE_UNARCHIVE = "template.unarchive", "Template brought back"
    TEMPLATE_DELETE = "template.delete", "Template deleted"
    TEMPLATE_TEST_SEND = "template.test_send", "Template test sent"
    ASSET_UPLOAD = "asset.upload", "Asset uploaded"
    ASSET_UPDATE = "asset.update", "Asset changed"
    ASSET_DELETE = "asset.delete", "Asset deleted"
    ASSET_FOLDER_CREATE = "asset_folder.create", "Folder created"
    ASSET_FOLDER_RENAME = "asset_folder.rename", "Folder renamed"
    ASSET_FOLDER_DELETE = "asset_folder.delete", "Folder deleted"
    # Journeys.
    JOURNEY_CREATE = "journey.create", "Journey created"
    JOURNEY_DUPLICATE = "journey.duplicate", "Journey duplicated"
    JOURNEY_DRAFT_SAVE = "journey.draft_save", "Journey draft saved"
    JOURNEY_UPDATE = "journey.update", "Journey settings changed"
    JOURNEY_PUBLISH = "journey.publish", "Journey published"
    JOURNEY_PAUSE = "journey.pause", "Journey paused"
    JOURNEY_RESUME = "journey.resume", "Journey resumed"
    JOURNEY_STOP = "journey.stop", "Journey stopped"
    JOURNEY_ARCHIVE = "journey.archive", "Journey archived"
    JOURNEY_EXIT_ALL = "journey.exit_all", "Everyone taken out of a journey"
    JOURNEY_ENROLL = "journey.enroll", "People enrolled by hand"
    JOURNEY_DECLARE_WINNER = "journey.declare_winner", "Experiment winner declared"
    # Delivery.
    CHANNEL_UPDATE = "channel.update", "Channel settings changed"
    DELIVERY_SETTINGS_UPDATE = "delivery_settings.update", "Delivery settings changed"
    FREQUENCY_CAP_CREATE = "frequency_cap.create", "Frequency cap added"
    FREQUENCY_CAP_DELETE = "frequency_cap.delete", "Frequency cap removed"
    SUPPRESSION_CREATE = "suppression.create", "Address suppressed"
    SUPPRESSION_DELETE = "suppression.delete", "Suppression removed"
    MESSAGE_RETRY = "message.retry", "Message retried"
    MESSAGE_DISCARD = "message.discard", "Message discarded"
    # Analytics.
    WAREHOUSE_EXPORT = "warehouse.export", "Warehouse export"
    VALUE_SETTINGS = "value.settings", "Customer value settings changed"
    VALUE_RECOMPUTE = "value.recompute", "Customer values recomputed"
    VALUE_EXPORT = "value.export", "Customer value report exported"


class AuditLogQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionError("The audit log is append-only: rows cannot be changed")

    def delete(self):
        raise PermissionError("The audit log is append-only: rows cannot be deleted")


class AuditLog(models.Model):
    """Append-only. Each row stores the hash of the previous row in its chain (its
    workspace, or the global chain for rows without a workspace) and its own hash, so
    `manage.py verify_audit_log` finds any edited, removed or inserted row. A database
    trigger (migration 0002) refuses UPDATE and DELETE too. Write through
    `services.audit_record` only."""

    workspace = models.ForeignKey(
        Workspace, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    sequence = models.PositiveBigIntegerField()
    created_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_label = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=50, choices=AuditAction.choices)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    previous_hash = models.CharField(max_length=64)
    row_hash = models.CharField(max_length=64)

    objects = AuditLogQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "sequence"],
                name="audit_log_unique_sequence",
                nulls_distinct=False,
            )
        ]
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="audit_ws_created"),
            models.Index(fields=["action", "-created_at"], name="audit_action_created"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.object_type} {self.object_repr}".strip()

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionError("The audit log is append-only: rows cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("The audit log is append-only: rows cannot be deleted")

    @property
    def verb(self) -> str:
        """The verb of the action ("publish" of "journey.publish"), for the badge colour."""
        return self.action.rpartition(".")[2]
