"""`GET /schemas/events[/{type}]`: the published JSON Schemas of the events.

Served byte for byte from the checked-in `schemas/json/` (the published
contract, kept current by a test), not regenerated, so what a consumer
downloads is exactly what was reviewed. Every registered type is served,
including older versions kept during a migration.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter, Response

from api.problems import PROBLEM_JSON, ProblemError
from schemas.contract import INDEX_FILE, file_name
from schemas.envelope import SCHEMA_ID_PREFIX

router = APIRouter(tags=["schemas"])

SCHEMA_JSON = "application/schema+json"
_CACHE = {"Cache-Control": "public, max-age=300"}


@cache
def _published() -> dict[str, bytes]:
    """File name → bytes of every published schema; read once per process."""
    directory = files("schemas").joinpath("json")
    return {
        entry.name: entry.read_bytes()
        for entry in directory.iterdir()
        if entry.name.endswith(".json")
    }


@router.get(
    "/schemas/events",
    summary="Index of the event JSON Schemas",
    response_class=Response,
    responses={
        200: {
            "content": {"application/json": {}},
            "description": "Every event type with its schema file, description and"
            " whether it is terminal. Schema files resolve relative to this URL.",
        }
    },
)
async def event_schema_index() -> Response:
    """The published index (`schemas/json/index.json`), byte for byte."""
    return Response(_published()[INDEX_FILE], media_type="application/json", headers=_CACHE)


@router.get(
    "/schemas/events/{event_type}",
    summary="The JSON Schema of one event type",
    response_class=Response,
    responses={
        200: {
            "content": {SCHEMA_JSON: {}},
            "description": "A JSON Schema (draft 2020-12) of the whole CloudEvents envelope"
            " of this type. `task.step.progress.v1` and `task.step.progress.v1.json` both work.",
        },
        404: {"content": {PROBLEM_JSON: {}}, "description": "No such event type."},
    },
)
async def event_schema(event_type: str) -> Response:
    """One published schema file, byte for byte; validate a whole received event with it."""
    event_type = event_type.removeprefix(SCHEMA_ID_PREFIX)  # an event's `dataschema` works too
    name = event_type if event_type.endswith(".json") else file_name(event_type)
    body = _published().get(name)
    if body is None or name == INDEX_FILE:
        raise ProblemError(404, f"no event type {event_type.removesuffix('.json')!r}")
    return Response(body, media_type=SCHEMA_JSON, headers=_CACHE)
