"""The API process: `python -m api`."""
