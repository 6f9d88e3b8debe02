"""The worker process: `python -m worker`."""
