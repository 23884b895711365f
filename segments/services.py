"""Writes of the segments app (keyword-only, typed, audited where they change state)."""
