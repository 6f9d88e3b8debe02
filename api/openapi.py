"""The OpenAPI document tells the truth about errors and authentication.

FastAPI documents the responses a handler declares; the ones that come from
elsewhere (the auth and body-limit middlewares, the problem handlers, the 404
every task lookup can answer, the 503 when Postgres, Redis or Temporal fails) are
added here, once, for every operation — routes added later included. Every error
is `application/problem+json` with the `Problem` schema (but `/readyz`'s 503,
which has its own body), so a client (and the schemathesis run in CI) can check
them. `tests/unit/test_openapi.py` reads each route's code for the statuses it
can answer and fails when one is not documented here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from api.auth import is_public
from api.problems import CURSOR_PARAMETERS, PROBLEM_JSON
from schemas.registry import EVENT_MODELS
from schemas.tasks import TASK_INPUT_MODELS
from settings import Settings

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
BEARER_SCHEME = "apiKey"

_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 0},
    }
}
_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": 'The scheme to use: `Bearer realm="taskplane"` (RFC 6750).',
        "schema": {"type": "string"},
    }
}


class Problem(BaseModel):
    """An error, as RFC 9457 has it; some carry more members (e.g. `errors`)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(default="about:blank", examples=["about:blank"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(ge=400, le=599, examples=[404])
    detail: str = Field(examples=["no task 2b7f0c2e-…"])
    instance: str | None = Field(default=None, examples=["/tasks/2b7f0c2e-…"])


# Responses any operation of a kind can give, with what causes them.
_UNAUTHORIZED = "No API key, an unknown key, or (events only) an invalid stream token."
_TOO_LARGE = "The request body is larger than TASKPLANE_LIMIT_BODY_BYTES."
_INVALID = "The request is not valid (`errors` says where)."
_NOT_FOUND = "No such task (or it belongs to another tenant)."
_BAD_CURSOR = "A resume point (`after`, `cursor`, `Last-Event-ID`) that is not valid."
_DEPENDENCY_DOWN = (
    "Postgres, Redis or Temporal failed or did not answer (`component` says which):"
    " retry after `Retry-After` seconds."
)
# Every operation under these paths reads the store or asks Temporal.
_REACHES_DEPENDENCIES = ("/tasks", "/schedules")

DESCRIPTION = (
    "Tasks on Temporal you can watch and steer: create one, follow its events as"
    " Server-Sent Events (CloudEvents 1.0 JSON, a dense per-task `sequence`), pause,"
    " resume or cancel it. Errors are RFC 9457 problem+json. Events: AsyncAPI"
    " `docs/asyncapi.json` and JSON Schemas under `/schemas/events`."
)
CONTACT = {"name": "The Taskplane maintainers (issues in the Taskplane repository)"}

TAGS: list[dict[str, str]] = [
    {"name": "tasks", "description": "Create, list, read and steer tasks; a task's history."},
    {
        "name": "events",
        "description": "A task's events as Server-Sent Events, and the stream tokens"
        " browsers open them with (docs/events.md).",
    },
    {
        "name": "schedules",
        "description": "Tasks on a cron or an interval, on Temporal Schedules (docs/schedules.md).",
    },
    {"name": "webhooks", "description": "A task's webhook and its deliveries (docs/webhooks.md)."},
    {"name": "health", "description": "Liveness, readiness and Prometheus metrics."},
    {"name": "schemas", "description": "The published JSON Schemas of the events."},
    {"name": "page", "description": "What the task page at `/` needs from the server."},
]
SERVERS: list[dict[str, str]] = [
    {
        "url": "/",
        "description": "The API that serves this document (`taskplane api`; locally"
        " http://127.0.0.1:8000).",
    }
]


def _problem(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}},
    }
    if headers:
        response["headers"] = headers
    return response


def _document_operation(path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    parameters = operation.get("parameters", [])
    names = {(p.get("in"), p.get("name")) for p in parameters}
    if not is_public(path):
        responses.setdefault("401", _problem(_UNAUTHORIZED, _WWW_AUTHENTICATE))
        operation.setdefault("security", [{BEARER_SCHEME: []}])
    if "requestBody" in operation:
        responses.setdefault("413", _problem(_TOO_LARGE))
    if ("path", "task_id") in names:
        responses.setdefault("404", _problem(_NOT_FOUND))
    if any(where == "query" and name in CURSOR_PARAMETERS for where, name in names):
        responses.setdefault("400", _problem(_BAD_CURSOR))
    if parameters or "requestBody" in operation:
        responses.setdefault("422", _problem(_INVALID))
    if path.startswith(_REACHES_DEPENDENCIES):
        responses.setdefault("503", _problem(_DEPENDENCY_DOWN))
    for code, response in responses.items():
        if not code.isdigit() or int(code) < 400 or _has_own_body(response):
            continue
        # Whatever FastAPI put there (its `HTTPValidationError`, or nothing), the
        # problem handlers answer problem+json.
        response["content"] = {PROBLEM_JSON: {"schema": PROBLEM_REF}}
        if code in {"429", "503"}:
            response.setdefault("headers", {}).update(_RETRY_AFTER)


def _has_own_body(response: dict[str, Any]) -> bool:
    """A route that declared a JSON model of its own for an error (`/readyz`'s 503)."""
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema) and schema.get("$ref") != "#/components/schemas/HTTPValidationError"


def _describe_task_requests(schemas: dict[str, Any]) -> None:
    """`POST /tasks` as the server checks it: one variant per registered task type with
    that type's input model (plugins included), not "any string and any object"."""
    request = schemas.get("CreateTaskRequest")
    if request is None:
        return
    variants = []
    for task_type, model in sorted(TASK_INPUT_MODELS.items()):
        input_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(input_schema.pop("$defs", {}))
        schemas[model.__name__] = input_schema
        variant = {
            "type": "object",
            "title": task_type,
            "properties": {
                **request["properties"],
                "type": {"const": task_type},
                "input": {"$ref": f"#/components/schemas/{model.__name__}"},
            },
            "required": ["type", "input"] if input_schema.get("required") else ["type"],
        }
        variants.append(variant)
    schemas["CreateTaskRequest"] = {
        "title": "CreateTaskRequest",
        "description": "A task of a registered type with its input (`GET /ui-config` and"
        " this document list the types).",
        "oneOf": variants,
    }
    _describe_webhooks(schemas.get("WebhookSpec"))


# A `whsec_` secret: base64 of 24 to 64 random bytes (the Standard Webhooks advice).
_B64 = "[A-Za-z0-9+/]"
_SECRET_PATTERN = (
    f"^whsec_(?:(?:{_B64}{{4}}){{8,20}}(?:{_B64}{{2}}==|{_B64}{{3}}=)?"
    f"|(?:{_B64}{{4}}){{21}}(?:{_B64}{{2}}==)?)$"
)


def _describe_webhooks(spec: dict[str, Any] | None) -> None:
    """What webhooks/api.py accepts, stated so a client can check it before sending."""
    if spec is None:
        return
    properties = spec["properties"]
    properties["url"]["pattern"] = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s/?#@]+(?:[/?#]\S*)?$"
    for option in properties["secret"].get("anyOf", []):
        if option.get("type") == "string":
            option["pattern"] = _SECRET_PATTERN
    for option in properties["events"].get("anyOf", []):
        if option.get("type") == "array":
            option["items"] = {"type": "string", "enum": sorted(EVENT_MODELS)}
            option["minItems"] = 1


# The Idempotency-Key values api/idempotency.py accepts: a token or a structured-field
# string of 1 to 255 characters (after unescaping), with optional surrounding blanks.
_IDEMPOTENCY_KEY = (
    r"^[ \t]*(?:[A-Za-z0-9!#$%&'*+.^_`|~:/=-]{1,255}"
    r'|"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\]){1,255}")[ \t]*$'
)


def _describe_parameters(schema: dict[str, Any], settings: Settings) -> None:
    """Bounds that come from settings or from parsing, stated where a client reads them."""
    maxima = {
        ("/tasks", "get"): settings.limit_tasks_page_size,
        ("/tasks/{task_id}/history", "get"): settings.limit_history_page_size,
    }
    for (path, method), maximum in maxima.items():
        operation = schema.get("paths", {}).get(path, {}).get(method, {})
        for parameter in operation.get("parameters", []):
            if parameter.get("name") == "limit":
                _set_maximum(parameter["schema"], maximum)
    for path in ("/tasks", "/tasks/{task_id}/inputs/{name}", "/tasks/bulk"):
        operation = schema.get("paths", {}).get(path, {}).get("post", {})
        for parameter in operation.get("parameters", []):
            if parameter.get("name") == "idempotency-key":
                for option in parameter["schema"].get("anyOf", [parameter["schema"]]):
                    if option.get("type") == "string":
                        option["pattern"] = _IDEMPOTENCY_KEY


def _set_maximum(schema: dict[str, Any], maximum: int) -> None:
    for option in schema.get("anyOf", [schema]):
        if option.get("type") == "integer":
            option["maximum"] = maximum


def _document(schema: dict[str, Any], settings: Settings) -> None:
    schema["info"].setdefault("description", DESCRIPTION)
    schema["info"].setdefault("contact", CONTACT)
    schema["tags"] = TAGS
    schema["servers"] = SERVERS
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    _describe_task_requests(schemas)
    _describe_parameters(schema, settings)
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    components.setdefault("securitySchemes", {}).setdefault(
        BEARER_SCHEME, {"type": "http", "scheme": "bearer"}
    )
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method in {"get", "put", "post", "delete", "patch", "head", "options"}:
                _document_operation(path, operation)


def document_problems(app: FastAPI, settings: Settings) -> None:
    """Post-process the app's generated OpenAPI document (built once, then cached)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _document(generate(), settings)  # generate() caches it in app.openapi_schema
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
