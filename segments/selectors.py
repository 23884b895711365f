"""Reads of the segments app; every function takes the workspace."""
