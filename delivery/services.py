"""Writes of the delivery app (keyword-only, typed, audited where they change state)."""
