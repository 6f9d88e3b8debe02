"""Temporal workflows. Keep imports here light: the sandbox re-imports workflow modules."""
