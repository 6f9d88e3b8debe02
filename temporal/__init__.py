"""Temporal client factory, search attributes, ids."""
