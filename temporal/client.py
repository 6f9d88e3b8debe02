"""The one way every process connects to Temporal: same converter, same namespace."""

from __future__ import annotations

import logging

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.contrib.pydantic import pydantic_data_converter

from settings import Settings
from temporal.search_attributes import ALL_KEYS

log = logging.getLogger(__name__)

INDEXED_VALUE_TYPES = {
    SearchAttributeIndexedValueType.KEYWORD: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    SearchAttributeIndexedValueType.INT: IndexedValueType.INDEXED_VALUE_TYPE_INT,
}


def workflow_id_for(task_id: str) -> str:
    return f"task-{task_id}"


def task_id_from_workflow_id(workflow_id: str) -> str | None:
    return workflow_id.removeprefix("task-") if workflow_id.startswith("task-") else None


async def connect_client(settings: Settings) -> Client:
    return await Client.connect(
        settings.require_temporal_address(),
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register Taskplane's custom search attributes that the namespace lacks."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    missing = {
        key.name: INDEXED_VALUE_TYPES[key.indexed_value_type]
        for key in ALL_KEYS
        if key.name not in existing.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
        log.info("search attributes registered", extra={"names": sorted(missing)})
    return sorted(missing)
