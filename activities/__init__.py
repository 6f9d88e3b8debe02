"""Temporal activities: `record_event` and the steps of the built-in task types.

Deliberately empty: importing a submodule must not load the others (the recorder
brings psycopg and redis). Their names are in `schemas/workflow.py`.
"""
