"""Schemathesis hooks for tests/e2e/test_fuzz.py (loaded through `SCHEMATHESIS_HOOKS`).

Every schema-valid `POST /tasks` starts a real workflow on the stack's worker,
and the schema allows tasks that are legitimately huge (1,000 steps of an hour,
100,000 progress ticks a step). The fuzzer checks the API, not the machine's
throughput, so valid task inputs are made cheap before they are sent: numbers
are only lowered, never below their minimum, so what is sent stays valid (and
schemathesis re-checks it). Invalid (negative) cases are sent as generated.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis import Case, HookContext

# The most each input field may be in a fuzzed task: a few short steps, few events.
CHEAP: dict[str, float] = {
    "steps": 2,
    "branches": 2,
    "step_seconds": 0.1,
    "progress_ticks": 2,
    "start_delay_seconds": 0.5,
    "step_timeout_seconds": 5,
    "hang_attempts": 1,
    "flaky_attempts": 1,
}


@schemathesis.hook
def before_call(context: HookContext, case: Case[Any], kwargs: dict[str, Any]) -> None:
    operation = case.operation
    if operation.method.upper() != "POST" or operation.path != "/tasks":
        return
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    body: Any = case.body
    if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
        return
    task_input: dict[str, Any] = body["input"]
    for field, most in CHEAP.items():
        value = task_input.get(field)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > most:
            task_input[field] = type(value)(most)
