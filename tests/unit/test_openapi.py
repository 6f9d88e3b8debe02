"""The OpenAPI document names every status each route can answer.

The statuses a route can give are read from its code: the endpoint, every
function of the `api` package it calls by name (transitively), and its
dependencies (auth, limits, ...). A `ProblemError(409, …)`, a
`status_code=204`, a `response.status_code = 200` each name a status; touching
Postgres, Redis or Temporal through `services` (`services.events`, …) means a
503 when they fail (api/problems.py turns those failures into problem+json with
`Retry-After`). The middlewares add 401 (non-public paths) and 413 (bodies).
Every such status must be in the operation's documented responses.
"""

from __future__ import annotations

import ast
import copy
import inspect
import json
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import SecretStr

from api.app import create_app
from api.auth import is_public
from api.problems import PROBLEM_JSON
from settings import Settings
from tests.node_tools import TOOLS, node_with

# What `services` holds that talks to a server (its `settings` do not).
DEPENDENCY_ATTRIBUTES = frozenset({"pool", "events", "temporal", "broker", "tasks"})
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(Settings(api_keys=SecretStr("a:key-a-0000000000000")))


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def _dependency_calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            call = sub.call
            yield call if inspect.isfunction(call) else type(call).__call__
        yield from _dependency_calls(sub)


def reached(route: APIRoute) -> list[Callable[..., Any]]:
    """The endpoint, its dependencies, and every `api` function they call by name."""
    pending: list[Any] = [route.endpoint, *_dependency_calls(route.dependant)]
    seen: list[Callable[..., Any]] = []
    while pending:
        function = inspect.unwrap(pending.pop())
        if not inspect.isfunction(function) or function in seen:
            continue
        if not function.__module__.startswith("api."):
            continue
        seen.append(function)
        for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(function)))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                pending.append(function.__globals__.get(node.func.id))
    return seen


def _int(node: ast.AST | None) -> int | None:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    return None


def _status_code_set(node: ast.AST) -> int | None:
    """N of `status_code=N` in a call, or of `response.status_code = N`."""
    if isinstance(node, ast.keyword) and node.arg == "status_code":
        return _int(node.value)
    if isinstance(node, ast.Assign) and any(
        isinstance(t, ast.Attribute) and t.attr == "status_code" for t in node.targets
    ):
        return _int(node.value)
    return None


def statuses_in(function: Callable[..., Any]) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(function)))):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name == "ProblemError" and node.args and (status := _int(node.args[0])):
                found.add(status)
        elif (status := _status_code_set(node)) is not None:
            found.add(status)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "services"
            and node.attr in DEPENDENCY_ATTRIBUTES
        ):
            found.add(503)
    return found


def possible_statuses(route: APIRoute) -> set[int]:
    found: set[int] = {route.status_code or 200}
    for function in reached(route):
        found |= statuses_in(function)
    if not is_public(route.path):
        found.add(401)
    if route.body_field is not None:
        found.add(413)
    return found


def routes(app: FastAPI) -> list[APIRoute]:
    """Every documented route, routers included (FastAPI's own walk, as its OpenAPI uses)."""
    found = (context.original_route for context in iter_route_contexts(app.routes))
    return [r for r in found if isinstance(r, APIRoute) and r.include_in_schema]


# Statuses the code reading finds on a path that cannot be taken, with why.
UNREACHABLE: dict[tuple[str, int], str] = {
    ("create_task", 404): "find_task right after the owner row is claimed and the run started",
}


def undocumented(app: FastAPI, document: dict[str, Any]) -> dict[str, list[int]]:
    missing: dict[str, list[int]] = {}
    for route in routes(app):
        for method in sorted(route.methods or ()):
            operation = document["paths"][route.path_format][method.lower()]
            documented = {int(code) for code in operation["responses"]}
            lacking = sorted(
                status
                for status in possible_statuses(route) - documented
                if (route.name, status) not in UNREACHABLE
            )
            if lacking:
                missing[f"{method} {route.path_format}"] = lacking
    return missing


def test_every_status_a_route_can_answer_is_documented(
    app: FastAPI, document: dict[str, Any]
) -> None:
    assert undocumented(app, document) == {}


def test_the_code_reading_finds_what_the_routes_do(app: FastAPI) -> None:
    """The check can fail: it sees the statuses that come from helpers and dependencies."""
    by_name = {route.name: possible_statuses(route) for route in routes(app)}
    assert {202, 200, 409, 429, 400, 401, 413, 503} <= by_name["create_task"]
    assert {202, 404, 409, 503} <= by_name["pause_task"]  # via _current_state and find_task
    assert {204, 503, 404, 400} <= by_name["task_events"]
    assert by_name["readyz"] == {200, 503}
    assert by_name["healthz"] == {200}
    assert 503 not in by_name["ui_config"]  # it reads only settings


def test_a_missing_status_is_reported(app: FastAPI, document: dict[str, Any]) -> None:
    doctored = copy.deepcopy(document)
    del doctored["paths"]["/tasks/{task_id}/pause"]["post"]["responses"]["409"]
    del doctored["paths"]["/readyz"]["get"]["responses"]["503"]
    assert undocumented(app, doctored) == {
        "POST /tasks/{task_id}/pause": [409],
        "GET /readyz": [503],
    }


def test_every_operation_is_described_and_tagged_and_the_servers_are_named(
    document: dict[str, Any],
) -> None:
    listed = {tag["name"] for tag in document["tags"]}
    assert all(tag.get("description") for tag in document["tags"])
    assert document["servers"]
    assert all(server["url"] for server in document["servers"])
    for path, item in document["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            operation = item[method]
            where = f"{method.upper()} {path}"
            assert operation.get("description"), f"{where} has no description"
            assert operation.get("tags"), f"{where} has no tag"
            assert set(operation["tags"]) <= listed, f"{where}: a tag missing from the list"
            for code, response in operation["responses"].items():
                assert response.get("description"), f"{where} {code}"


def test_dependency_failures_and_limits_say_when_to_retry(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for code in ("429", "503"):
                response = operation["responses"].get(code)
                if response is None or PROBLEM_JSON not in response.get("content", {}):
                    continue
                assert "Retry-After" in response.get("headers", {}), f"{method} {path} {code}"
    ready = document["paths"]["/readyz"]["get"]["responses"]["503"]
    assert ready["content"] == {
        "application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}
    }
    events = document["paths"]["/tasks/{task_id}/events"]["get"]["responses"]
    assert "stop reconnecting" in events["204"]["description"]


def spectral(document: dict[str, Any], tmp_path: Path) -> list[dict[str, Any]]:
    """Spectral's findings (`spectral:oas`, tools/js/.spectral.yaml), every severity."""
    node = node_with("@stoplight/spectral-cli")
    target = tmp_path / "openapi.json"
    target.write_text(json.dumps(document), "utf-8")
    cli = TOOLS / "node_modules" / "@stoplight" / "spectral-cli" / "dist" / "index.js"
    ruleset = TOOLS / ".spectral.yaml"
    options = ["--ruleset", str(ruleset), "--quiet", "--format", "json", "--fail-severity", "hint"]
    done = subprocess.run(
        [node, str(cli), "lint", str(target), *options],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout, done.stderr
    findings: list[dict[str, Any]] = json.loads(done.stdout)
    assert (done.returncode == 0) == (findings == []), done.stderr
    return findings


def test_spectral_s_openapi_ruleset_finds_nothing(document: dict[str, Any], tmp_path: Path) -> None:
    assert spectral(document, tmp_path) == []
    # The lint can fail: an info object without a contact is a finding.
    doctored = copy.deepcopy(document)
    del doctored["info"]["contact"]
    found = spectral(doctored, tmp_path)
    assert [finding["code"] for finding in found] == ["info-contact"]
