"""A task's webhook, API side: checked and stored at creation, its delivery state readable.

The subscription is stored BEFORE the workflow starts, so the statement that
records the task's very first event already finds it (webhooks/enqueue.py). The
secret lives only in Postgres, never in the workflow input (Temporal history is
readable by operators).

A generated secret is returned by the creating request — and by an
`Idempotency-Key` repeat of that same request, which gets the same answer — and
never by `GET /tasks/{id}/webhook`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets

from fastapi import APIRouter

from api.auth import TenantDep
from api.deps import ServicesDep
from api.lookup import describe_workflow, find_task
from api.models import WebhookDeliveryView, WebhookSpec, WebhookStateView, WebhookView
from api.problems import ProblemError
from api.services import Services
from schemas.registry import EVENT_MODELS
from schemas.upcast import READ_ONLY_TYPES, recorded_type_for
from webhooks.outbound import DestinationRefusedError, check_destination
from webhooks.store import WebhookEndpoint, WebhookStore

log = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"])

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32
# The Standard Webhooks spec: secrets SHOULD be 24 to 64 bytes of randomness.
SECRET_MIN_BYTES, SECRET_MAX_BYTES = 24, 64
KEY_REUSED = "this Idempotency-Key was already used with a different request body"


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _checked_secret(secret: str) -> str:
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ProblemError(422, "webhook.secret is not valid base64 after 'whsec_'") from None
    if not SECRET_MIN_BYTES <= len(key) <= SECRET_MAX_BYTES:
        raise ProblemError(
            422,
            f"webhook.secret must hold {SECRET_MIN_BYTES} to {SECRET_MAX_BYTES} bytes "
            f"(base64 after 'whsec_'); it holds {len(key)}",
        )
    return secret


def _checked_event_types(events: list[str] | None) -> list[str] | None:
    if events is None:
        return None
    unknown = sorted({event for event in events if event not in EVENT_MODELS})
    if unknown:
        raise ProblemError(
            422,
            f"unknown webhook event types: {', '.join(unknown)}",
            unknown=unknown,
            known_types=sorted(EVENT_MODELS),
        )
    if not events:
        raise ProblemError(422, "webhook.events is empty: omit it to receive every event type")
    read_only = sorted(set(events) & READ_ONLY_TYPES)
    if read_only:
        # Webhooks deliver events as recorded; these are only ever made by an adapter.
        instead = [recorded_type_for(event) for event in read_only]
        raise ProblemError(
            422,
            f"webhook event types {', '.join(read_only)} are never recorded (readers get them"
            f" by upcasting): subscribe to {', '.join(instead)}",
            read_only=read_only,
            recorded_types=instead,
        )
    return list(dict.fromkeys(events))


def _view(endpoint: WebhookEndpoint) -> WebhookView:
    return WebhookView(
        url=endpoint.url,
        events=list(endpoint.event_types) if endpoint.event_types is not None else None,
        secret=endpoint.secret if endpoint.secret_generated else None,
    )


async def subscribe_webhook(
    services: Services,
    task_id: str,
    spec: WebhookSpec | None,
    *,
    request_hash: str,
    idempotent: bool,
) -> WebhookView | None:
    """Check and store the task's webhook; call before the workflow starts.

    422 for an unknown event type, a bad secret, or a URL that is not http(s) or
    reaches a non-public address (unless private networks are allowed).
    """
    if spec is None:
        return None
    event_types = _checked_event_types(spec.events)
    secret = _checked_secret(spec.secret) if spec.secret is not None else generate_secret()
    url = str(spec.url)
    try:
        await check_destination(url, allow_private=services.settings.webhook_allow_private_networks)
    except DestinationRefusedError as exc:
        raise ProblemError(422, str(exc), field="webhook.url") from None
    webhooks = WebhookStore(services.pool)
    if idempotent:
        # A key names an existing task only for a repeat of its request: never attach a
        # webhook to a task another body created (the route then answers 422 too).
        description = await describe_workflow(services, task_id)
        if description is not None:
            if description.request_hash != request_hash:
                raise ProblemError(422, KEY_REUSED)
            existing = await webhooks.endpoint(task_id)
            return _view(existing) if existing is not None else None
    endpoint, created = await webhooks.subscribe(
        task_id,
        url=url,
        secret=secret,
        secret_generated=spec.secret is None,
        event_types=event_types,
        request_hash=request_hash,
    )
    if not created and endpoint.request_hash != request_hash:
        raise ProblemError(422, KEY_REUSED)
    if created:
        log.info("webhook subscribed", extra={"task_id": task_id, "event_types": event_types})
    return _view(endpoint)


@router.get(
    "/tasks/{task_id}/webhook",
    response_model=WebhookStateView,
    responses={404: {"description": "Unknown task, or a task without a webhook."}},
)
async def webhook_state(task_id: str, services: ServicesDep, tenant: TenantDep) -> WebhookStateView:
    """The task's webhook and the state of each delivery, in `sequence` order."""
    task = await find_task(services, task_id, tenant)
    webhooks = WebhookStore(services.pool)
    endpoint = await webhooks.endpoint(task.task_id)
    if endpoint is None:
        raise ProblemError(404, f"task {task.task_id} has no webhook")
    deliveries = await webhooks.deliveries(task.task_id)
    return WebhookStateView(
        url=endpoint.url,
        events=list(endpoint.event_types) if endpoint.event_types is not None else None,
        disabled_reason=endpoint.disabled_reason,
        deliveries=[
            WebhookDeliveryView(
                event_id=d.event_id,
                event_type=d.event_type,
                sequence=d.sequence,
                status=d.status,
                attempts=d.attempts,
                last_status_code=d.last_status_code,
                last_error=d.last_error,
                next_attempt_at=d.next_attempt_at,
                delivered_at=d.delivered_at,
            )
            for d in deliveries
        ],
    )
