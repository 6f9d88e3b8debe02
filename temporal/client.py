"""The one way every process connects to Temporal: same converter, namespace and security.

A secured cluster or Temporal Cloud needs TLS (server-verified, or mutual with a
client certificate) and/or an API key; both come from settings
(`TASKPLANE_TEMPORAL_TLS*`, `TASKPLANE_TEMPORAL_API_KEY`, docs/operations.md),
so the API and the worker connect the same way. While tracing is on, the SDK's
`TracingInterceptor` rides on the client: it applies to the worker built on it too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client, Interceptor
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from schemas.workflow import SEARCH_ATTRIBUTES
from settings import ConfigurationError, Settings
from telemetry.tracing import tracer, tracing_enabled
from temporal.converter import data_converter as taskplane_data_converter

log = logging.getLogger(__name__)

INDEXED_VALUE_TYPES = {
    SearchAttributeIndexedValueType.KEYWORD: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    SearchAttributeIndexedValueType.INT: IndexedValueType.INDEXED_VALUE_TYPE_INT,
}


@dataclass(frozen=True)
class ConnectionSecurity:
    """What `Client.connect` gets for `tls` and `api_key`."""

    tls: bool | TLSConfig
    api_key: str | None


def connection_security(settings: Settings) -> ConnectionSecurity:
    """TLS and API key from settings; refuses combinations that cannot be meant.

    TLS is on when asked (`TEMPORAL_TLS=true`), or, unless explicitly off, when an
    API key, a client certificate, a CA or a server name is given. Without a CA
    file the system's trust store verifies the server (Temporal Cloud's case).
    """
    cert, key = settings.temporal_tls_cert_path, settings.temporal_tls_key_path
    ca, server_name = settings.temporal_tls_ca_path, settings.temporal_tls_server_name
    if (cert is None) != (key is None):
        raise ConfigurationError(
            "TASKPLANE_TEMPORAL_TLS_CERT_PATH and TASKPLANE_TEMPORAL_TLS_KEY_PATH go together"
            " (a client certificate needs its private key)"
        )
    api_key = (
        settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    ) or None
    custom = cert is not None or ca is not None or bool(server_name)
    if settings.temporal_tls is False:
        if custom:
            raise ConfigurationError(
                "TASKPLANE_TEMPORAL_TLS is false, but TLS files or a server name are set"
            )
        return ConnectionSecurity(tls=False, api_key=api_key)
    if custom:
        tls: bool | TLSConfig = TLSConfig(
            server_root_ca_cert=_read_pem(ca, "TASKPLANE_TEMPORAL_TLS_CA_PATH"),
            domain=server_name or None,
            client_cert=_read_pem(cert, "TASKPLANE_TEMPORAL_TLS_CERT_PATH"),
            client_private_key=_read_pem(key, "TASKPLANE_TEMPORAL_TLS_KEY_PATH"),
        )
    else:
        tls = bool(settings.temporal_tls) or api_key is not None
    return ConnectionSecurity(tls=tls, api_key=api_key)


def _read_pem(path: Path | None, setting: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{setting}: cannot read {path}: {exc.strerror}") from exc


def client_interceptors() -> Sequence[Interceptor]:
    """The SDK's tracing interceptor while tracing is on; nothing (and no cost) otherwise."""
    if not tracing_enabled():
        return []
    # Imported only when used: most processes never trace.
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(tracer())]


async def connect_client(
    settings: Settings, *, runtime: Runtime | None = None, lazy: bool = False
) -> Client:
    """A client of `settings`' cluster; `runtime` carries the worker's SDK metrics, if any."""
    security = connection_security(settings)
    return await Client.connect(
        settings.require_temporal_address(),
        namespace=settings.temporal_namespace,
        data_converter=taskplane_data_converter,
        tls=security.tls,
        api_key=security.api_key,
        interceptors=client_interceptors(),
        runtime=runtime,
        lazy=lazy,
    )


# What a server says when this client may not use the operator service (Temporal Cloud
# manages search attributes in its own UI and `tcld`; a locked-down cluster may refuse).
_NOT_OURS_TO_MANAGE = frozenset({RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED})


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register Taskplane's custom search attributes that the namespace lacks.

    Where the server does not let this client list them, the worker goes on and
    says what must exist; where it lists them but refuses to add missing ones,
    the worker stops with that message rather than run workflows that would fail.
    """
    names = sorted(key.name for key in SEARCH_ATTRIBUTES)
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
    except RPCError as exc:
        if exc.status not in _NOT_OURS_TO_MANAGE:
            raise
        log.warning(
            "cannot list search attributes here; make sure these exist (Keyword: TaskStatus,"
            " TaskType; Int: TaskStep), e.g. in Temporal Cloud's UI or with tcld",
            extra={"names": names, "namespace": namespace, "error": exc.message},
        )
        return []
    missing = {
        key.name: INDEXED_VALUE_TYPES[key.indexed_value_type]
        for key in SEARCH_ATTRIBUTES
        if key.name not in existing.custom_attributes
    }
    if missing:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
            )
        except RPCError as exc:
            if exc.status not in _NOT_OURS_TO_MANAGE:
                raise
            raise ConfigurationError(
                f"namespace {namespace!r} lacks the search attributes {sorted(missing)} and"
                f" this client may not add them ({exc.message}); add them (Keyword: TaskStatus,"
                " TaskType; Int: TaskStep) in Temporal Cloud's UI, with tcld, or as an admin"
            ) from exc
        log.info("search attributes registered", extra={"names": sorted(missing)})
    return sorted(missing)
