"""TLS and API-key options of the Temporal client, from settings, without a network.

`connect_client(..., lazy=True)` builds the real client (and the SDK's connect
config) without dialling, so these tests see exactly what would be sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesResponse
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from settings import ConfigurationError, Settings
from temporal.client import connect_client, connection_security, ensure_search_attributes

ADDRESS = "temporal.example.invalid:7233"


def settings(**fields: Any) -> Settings:
    return Settings(temporal_address=ADDRESS, **fields)


@pytest.fixture
def pem_files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for name in ("ca", "cert", "key"):
        path = tmp_path / f"{name}.pem"
        path.write_bytes(f"-----BEGIN {name.upper()}-----\n{name}\n".encode())
        files[name] = path
    return files


async def test_plain_by_default() -> None:
    client = await connect_client(settings(), lazy=True)
    assert client.service_client.config.tls is False
    assert client.service_client.config.api_key is None


async def test_an_api_key_turns_tls_on_and_is_sent() -> None:
    client = await connect_client(settings(temporal_api_key="tc-key-123"), lazy=True)
    assert client.service_client.config.tls is True
    assert client.service_client.config.api_key == "tc-key-123"
    assert client.namespace == "default"


def test_an_api_key_may_go_without_tls_when_asked() -> None:
    security = connection_security(settings(temporal_api_key="k", temporal_tls=False))
    assert security.tls is False
    assert security.api_key == "k"


def test_tls_with_system_roots() -> None:
    assert connection_security(settings(temporal_tls=True)).tls is True


async def test_mtls_files_and_server_name_make_a_tls_config(pem_files: dict[str, Path]) -> None:
    client = await connect_client(
        settings(
            temporal_namespace="prod.a1b2c",
            temporal_tls_ca_path=pem_files["ca"],
            temporal_tls_cert_path=pem_files["cert"],
            temporal_tls_key_path=pem_files["key"],
            temporal_tls_server_name="prod.a1b2c.tmprl.cloud",
        ),
        lazy=True,
    )
    tls = client.service_client.config.tls
    assert isinstance(tls, TLSConfig)
    assert tls.server_root_ca_cert == pem_files["ca"].read_bytes()
    assert tls.client_cert == pem_files["cert"].read_bytes()
    assert tls.client_private_key == pem_files["key"].read_bytes()
    assert tls.domain == "prod.a1b2c.tmprl.cloud"
    assert client.namespace == "prod.a1b2c"


def test_a_ca_alone_verifies_the_server_without_a_client_cert(pem_files: dict[str, Path]) -> None:
    tls = connection_security(settings(temporal_tls_ca_path=pem_files["ca"])).tls
    assert isinstance(tls, TLSConfig)
    assert tls.server_root_ca_cert == pem_files["ca"].read_bytes()
    assert tls.client_cert is None
    assert tls.domain is None


def test_from_environment_variables(
    monkeypatch: pytest.MonkeyPatch, pem_files: dict[str, Path]
) -> None:
    monkeypatch.setenv("TASKPLANE_TEMPORAL_TLS", "true")
    monkeypatch.setenv("TASKPLANE_TEMPORAL_TLS_CERT_PATH", str(pem_files["cert"]))
    monkeypatch.setenv("TASKPLANE_TEMPORAL_TLS_KEY_PATH", str(pem_files["key"]))
    monkeypatch.setenv("TASKPLANE_TEMPORAL_API_KEY", "env-key")
    security = connection_security(Settings())
    assert isinstance(security.tls, TLSConfig)
    assert security.tls.client_private_key == pem_files["key"].read_bytes()
    assert security.api_key == "env-key"
    assert "env-key" not in repr(Settings())  # a secret, never printed with the settings


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"temporal_tls_cert_path": "cert"}, "go together"),
        ({"temporal_tls_key_path": "key"}, "go together"),
        ({"temporal_tls": False, "temporal_tls_ca_path": "ca"}, "TLS is false"),
        ({"temporal_tls_ca_path": "missing"}, "cannot read"),
    ],
)
def test_contradictions_and_missing_files_are_refused(
    fields: dict[str, str], message: str, pem_files: dict[str, Path], tmp_path: Path
) -> None:
    paths = {
        key: (pem_files[value] if value in pem_files else tmp_path / value)
        if key.endswith("_path")
        else value
        for key, value in fields.items()
    }
    with pytest.raises(ConfigurationError, match=message):
        connection_security(settings(**paths))


class RefusingOperator:
    """An operator service that refuses like Temporal Cloud does (no server needed)."""

    def __init__(self, refuse_list: bool) -> None:
        self.refuse_list = refuse_list

    async def list_search_attributes(self, request: object) -> object:
        if self.refuse_list:
            raise RPCError("not allowed", RPCStatusCode.PERMISSION_DENIED, b"")
        return ListSearchAttributesResponse()  # none of ours exist yet

    async def add_search_attributes(self, request: object) -> object:
        raise RPCError("not allowed", RPCStatusCode.PERMISSION_DENIED, b"")


class CloudLikeClient:
    def __init__(self, refuse_list: bool) -> None:
        self.operator_service = RefusingOperator(refuse_list)


async def test_search_attributes_the_server_will_not_list_are_left_to_the_operator(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = cast(Client, CloudLikeClient(refuse_list=True))
    assert await ensure_search_attributes(client, "prod.a1b2c") == []
    assert "make sure these exist" in caplog.text


async def test_missing_search_attributes_that_cannot_be_added_stop_the_worker() -> None:
    client = cast(Client, CloudLikeClient(refuse_list=False))
    with pytest.raises(ConfigurationError, match="TaskStatus"):
        await ensure_search_attributes(client, "prod.a1b2c")
