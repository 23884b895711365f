"""Reads of the analytics app; every function takes the workspace."""
