"""What ingestion writes, counted: a refused request must leave every count at zero."""

from __future__ import annotations

from segments.models import (
    Event,
    EventMessageId,
    Identity,
    Profile,
    ProfileMerge,
    RejectedEvent,
    TraitChange,
)

STORED_MODELS = (Event, EventMessageId, Identity, Profile, ProfileMerge, RejectedEvent, TraitChange)
NOTHING = {model.__name__: 0 for model in STORED_MODELS}


def stored() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in STORED_MODELS}
