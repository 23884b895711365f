"""Writes of the content app (keyword-only, typed, audited where they change state)."""
