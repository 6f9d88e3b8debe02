"""What importing a module drags in, measured in a fresh interpreter.

The import-linter contracts (`make lint`) check the import graph as written; these
check what actually loads, the way the worker's sandbox and a process see it.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("psycopg", "psycopg_pool", "redis", "broker", "store", "activities", "fastapi")


def loaded_after(*modules: str) -> set[str]:
    """Top-level packages of HEAVY loaded by importing `modules` in a new interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return set(json.loads(out)) & set(HEAVY)


def test_importing_the_workflows_loads_no_store_broker_or_driver() -> None:
    assert loaded_after("workflows.task_workflow", "workflows.demo", "schemas.workflow") == set()


def test_the_helper_itself_sees_a_heavy_import() -> None:
    # The check above could pass by measuring nothing: the same helper must see these.
    assert loaded_after("activities.recorder") >= {"psycopg", "redis", "store", "broker"}


def test_the_activities_package_exports_nothing_heavy() -> None:
    assert loaded_after("activities") == {"activities"}
