"""Start rates a task type declares at registration (`TaskTypePlugin.rate_limit`).

The API reads them; `TASKPLANE_RATE_LIMITS` `types` overrides them (settings/rate_limits.py).
"""

from __future__ import annotations

from settings.rate_limits import TypeRates

_TYPE_RATES: dict[str, TypeRates] = {}


def register_type_rates(task_type: str, rates: TypeRates) -> None:
    _TYPE_RATES[task_type] = rates


def type_rates(task_type: str) -> TypeRates | None:
    return _TYPE_RATES.get(task_type)
