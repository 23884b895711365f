"""Deterministic demo dataset (profiles and events) for the demo workspace."""

from __future__ import annotations

from engagement_site.workspaces.models import Workspace


def demo_dataset_load(*, workspace: Workspace, profile_count: int, seed: int) -> dict[str, int]:
    return {"profiles": 0, "events": 0}
