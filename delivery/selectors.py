"""Reads of the delivery app; every function takes the workspace."""
