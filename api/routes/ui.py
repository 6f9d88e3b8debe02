"""The live task page at `/`: static files (no build step) and the little config it needs.

The page is plain HTML, CSS and ES modules under `api/static/`, shipped as
package data, so `pip install taskplane` serves it with no Node toolchain (the JS
client it uses is there as a committed bundle: `make client-types`).
`GET /ui-config` tells it what only the server knows: where the Temporal Web
UI is, which namespace, and which task types exist with a starting input.
These three paths carry no task data, so they stay public even when API keys
are required: the page must load before it can ask for a key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ValidationError
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from api.deps import ServicesDep
from schemas.tasks import TASK_INPUT_MODELS

router = APIRouter(tags=["page"])

# Paths that must not require an API key (the page asks for one after it loads).
PUBLIC_PATHS = ("/", "/ui-config")
PUBLIC_PREFIXES = ("/static/",)

# Inputs the form starts with for the built-in types: long enough, with progress
# ticks, that the bars visibly move. Other types start from their model's defaults.
SUGGESTED_INPUTS: dict[str, dict[str, Any]] = {  # in the form's order
    "demo.pipeline": {"steps": 3, "step_seconds": 2, "progress_ticks": 5},
    "demo.fanout": {"branches": 4, "max_parallel": 2, "step_seconds": 2, "progress_ticks": 5},
    "demo.chat": {"prompt": "Why stream task output?", "tokens": 80, "token_seconds": 0.05},
    "demo.approval": {"step_seconds": 1, "timeout_seconds": 3600},
}

# No caching of the page itself: a new version must show after an upgrade.
_NO_CACHE = {"Cache-Control": "no-cache"}


class UiConfig(BaseModel):
    temporal_ui_url: str
    temporal_namespace: str
    task_types: dict[str, dict[str, Any]]


STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def _starting_input(task_type: str, model: type[BaseModel]) -> dict[str, Any]:
    if task_type in SUGGESTED_INPUTS:
        return SUGGESTED_INPUTS[task_type]
    try:
        return model().model_dump(mode="json", exclude_none=True)
    except ValidationError:  # a plugin type with required fields starts empty
        return {}


def _form_order(task_type: str) -> tuple[int, str]:
    suggested = list(SUGGESTED_INPUTS)
    return (suggested.index(task_type) if task_type in suggested else len(suggested), task_type)


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=_NO_CACHE)


@router.get("/ui-config", response_model=UiConfig)
async def ui_config(request: Request, services: ServicesDep) -> UiConfig:
    """What the task page needs from the server's settings."""
    settings = services.settings
    # Unset: the Web UI on the host the browser already reaches, on its usual port.
    host = request.url.hostname or "127.0.0.1"
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    base = settings.temporal_ui_url or f"http://{host}:{settings.temporal_ui_port}"
    return UiConfig(
        temporal_ui_url=base.rstrip("/"),
        temporal_namespace=settings.temporal_namespace,
        # The built-in demos first (the form's default), then the rest by name.
        task_types={
            task_type: _starting_input(task_type, TASK_INPUT_MODELS[task_type])
            for task_type in sorted(TASK_INPUT_MODELS, key=_form_order)
        },
    )


class RevalidatedStaticFiles(StaticFiles):
    """Static files a browser must revalidate (a cheap 304 by ETag) before each use, so
    an upgraded API never runs a stale app.js against a newer page."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers.update(_NO_CACHE)
        return response


def install_page(app: FastAPI) -> None:
    """`/` and `/ui-config` routes plus the `/static` files."""
    app.include_router(router)
    app.mount("/static", RevalidatedStaticFiles(directory=STATIC_DIR), name="static")
