"""Models of the content app: media assets, message templates and their versions.

Assets keep their original in private storage under a generated name; a copy goes to
public storage (an unguessable URL) only once a template uses it, because a message
can only show what the recipient's mail client or phone can fetch without logging in.

A template's content lives in immutable versions. Every save appends one; the
template points at its current version. A journey version pins the template version
that was current when it was published, so editing content never changes a live
journey silently.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.core.files.storage import storages
from django.db import models
from django.utils import timezone

from engagement_site.workspaces.models import Workspace


def _private_storage():
    return storages["assets"]


def _public_storage():
    return storages["assets_public"]


def new_public_token() -> str:
    return secrets.token_urlsafe(18)


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    PUSH = "push", "Mobile push"
    WEB_PUSH = "web_push", "Web push"
    WHATSAPP = "whatsapp", "WhatsApp"
    IN_APP = "in_app", "In-app card"
    WEBHOOK = "webhook", "Webhook"


class AssetFolder(models.Model):
    """A named folder of assets; folders nest."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="asset_folders", db_index=False
    )
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="children"
    )
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "parent", "name"],
                nulls_distinct=False,
                name="asset_folder_unique_name",
            )
        ]

    def __str__(self) -> str:
        return self.name


class Asset(models.Model):
    """An uploaded image or video of a workspace."""

    class Kind(models.TextChoices):
        IMAGE = "image", "Image"
        VIDEO = "video", "Video"

    class Status(models.TextChoices):
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="assets", db_index=False
    )
    folder = models.ForeignKey(
        AssetFolder, on_delete=models.SET_NULL, null=True, blank=True, related_name="assets"
    )
    name = models.CharField(max_length=255, help_text="Shown in the library; the upload's name")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    mime_type = models.CharField(max_length=50, help_text="Sniffed from the bytes")
    size_bytes = models.BigIntegerField()
    checksum_sha256 = models.CharField(max_length=64)
    file = models.FileField(storage=_private_storage, max_length=255)
    thumbnail = models.FileField(storage=_private_storage, max_length=255, blank=True)
    # The public copy exists once a message uses the asset (see content.services).
    public_token = models.CharField(max_length=32, unique=True, default=new_public_token)
    public_file = models.FileField(storage=_public_storage, max_length=255, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    frame_count = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PROCESSING)
    progress = models.PositiveSmallIntegerField(default=0, help_text="0-100 while processing")
    error = models.TextField(blank=True)
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    alt_text = models.CharField(max_length=300, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="asset_ws_created"),
            GinIndex(fields=["tags"], name="asset_tags"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_public(self) -> bool:
        return bool(self.public_file)

    @property
    def public_url(self) -> str:
        """The address messages use (absolute; it answers once the asset is public)."""
        from content.media import asset_public_url

        return asset_public_url(self)


class Template(models.Model):
    """A message template for one channel; its content lives in TemplateVersion rows."""

    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="templates", db_index=False
    )
    name = models.CharField(max_length=200)
    channel = models.CharField(max_length=12, choices=Channel.choices)
    description = models.CharField(max_length=500, blank=True)
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    current_version = models.ForeignKey(
        "TemplateVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    archived_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "name"], name="template_unique_name")
        ]
        indexes = [models.Index(fields=["workspace", "-updated_at"], name="template_ws_updated")]

    def __str__(self) -> str:
        return self.name


class TemplateVersion(models.Model):
    """One immutable save of a template: the fields of every locale.

    content = {"default": {<channel fields>}, "fr": {...}, "fr-CA": {...}}"""

    template = models.ForeignKey(Template, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    content = models.JSONField()
    note = models.CharField(max_length=200, blank=True)
    # Variables the content uses that no profile trait or event property is known by.
    warnings = models.JSONField(default=list, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["template", "number"], name="template_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.template} v{self.number}"

    @property
    def locales(self) -> list[str]:
        return sorted(self.content, key=lambda code: (code != "default", code))


class AssetUsage(models.Model):
    """An asset referenced by a template's current version (rebuilt on every save)."""

    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="usages")
    template = models.ForeignKey(Template, on_delete=models.CASCADE, related_name="asset_usages")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["asset", "template"], name="asset_usage_unique")
        ]

    def __str__(self) -> str:
        return f"{self.asset_id} used by template {self.template_id}"
