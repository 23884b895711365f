"""Writes of the journeys app (keyword-only, typed, audited where they change state)."""
