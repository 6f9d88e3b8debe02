"""Taskplane's benchmarks: `python -m bench` (or `make bench`).

Runs, in one process tree and one run, Taskplane's event path against bare
Temporal and against Temporal Workflow Streams on servers it starts itself,
prints a table and writes JSON to `bench/results/`. See docs/performance.md.

Nothing is imported here: `bench.workflows` is re-imported by the Temporal
sandbox for every workflow run, and a package `__init__` that does work would
be re-run with it.
"""
