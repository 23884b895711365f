"""Writes of the analytics app (keyword-only, typed, audited where they change state)."""
