"""Reads of the delivery app; every function takes the workspace."""

from __future__ import annotations

from django.db.models import QuerySet

from delivery.models import Message
from engagement_site.workspaces.models import Workspace


def profile_messages(*, workspace: Workspace, profile_id: int) -> QuerySet[Message]:
    """The messages journeys decided for a profile, newest first."""
    return (
        Message.objects.filter(workspace=workspace, profile_id=profile_id)
        .select_related("journey", "template_version__template")
        .order_by("-created_at", "-pk")
    )


def message_keys_in_workspace(*, workspace: Workspace, keys: set[str]) -> set[str]:
    """Those of these idempotency keys that name a message of the workspace."""
    return set(
        Message.objects.filter(workspace=workspace, idempotency_key__in=keys).values_list(
            "idempotency_key", flat=True
        )
    )


def delivery_settings(*, workspace: Workspace):
    """The workspace's delivery settings, or the defaults (not saved) when it has none."""
    from delivery.models import DeliverySettings

    found = DeliverySettings.objects.filter(workspace=workspace).first()
    return found if found is not None else DeliverySettings(workspace=workspace)
