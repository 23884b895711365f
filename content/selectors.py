"""Reads of the content app; every function takes the workspace."""
