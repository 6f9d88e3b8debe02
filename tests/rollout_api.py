"""`python -m api` that also accepts `rollout.approval` (tests/rollout_plugin.py)."""

from __future__ import annotations

from api.main import main
from schemas.plugins import register_input_models
from tests.rollout_plugin import PLUGIN

if __name__ == "__main__":
    register_input_models([PLUGIN])
    main()
