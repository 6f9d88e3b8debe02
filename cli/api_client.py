"""The CLI's REST client: the few calls `taskplane tasks …` makes, errors made typed.

Kept apart from the commands so they read as what they do with a task; here is how
an HTTP answer (problem+json, or no answer at all) becomes an `ApiError` with the
exit code it means.
"""

from __future__ import annotations

from typing import Any

import httpx

from cli.exit_codes import EXIT_API_ERROR, EXIT_CONFLICT, EXIT_NOT_FOUND, EXIT_USAGE

REQUEST_TIMEOUT_SECONDS = 30.0


class ApiError(Exception):
    """The API answered with an error (problem+json), or could not be reached."""

    def __init__(self, status: int | None, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail

    @property
    def exit_code(self) -> int:
        if self.status == 404:
            return EXIT_NOT_FOUND
        if self.status == 409:
            return EXIT_CONFLICT
        if self.status in {400, 422}:
            return EXIT_USAGE
        return EXIT_API_ERROR


class TaskApi:
    """The few REST calls the CLI makes, with problem+json turned into `ApiError`."""

    def __init__(self, base_url: str, key: str | None) -> None:
        headers = {"User-Agent": "taskplane-cli"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=REQUEST_TIMEOUT_SECONDS
        )

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, **options: Any) -> Any:
        try:
            response = self.http.request(method, path, **options)
        except httpx.HTTPError as exc:
            raise ApiError(None, f"cannot reach the API at {self.http.base_url}: {exc}") from exc
        if response.is_error:
            raise ApiError(response.status_code, _problem_text(response))
        return response.json() if response.content else None


def _problem_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if not isinstance(body, dict):
        return f"HTTP {response.status_code}"
    text = f"{response.status_code} {body.get('title', '')}: {body.get('detail', '')}".strip()
    for error in body.get("errors") or []:
        location = ".".join(str(part) for part in error.get("loc", []))
        text += f"\n  {location}: {error.get('msg', '')}"
    return text
