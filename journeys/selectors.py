"""Reads of the journeys app; every function takes the workspace."""
