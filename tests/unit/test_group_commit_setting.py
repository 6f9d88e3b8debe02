"""`TASKPLANE_RECORD_GROUP_MAX` reaches the worker's recorder: 1 turns group commit off."""

from __future__ import annotations

import pytest
from psycopg_pool import AsyncConnectionPool

from broker.memory import MemoryBroker
from settings.config import Settings
from worker.relay import build_recorder_and_relay


@pytest.mark.parametrize(("value", "grouped"), [("32", True), ("1", False)])
async def test_the_setting_turns_groups_on_and_off(
    monkeypatch: pytest.MonkeyPatch, value: str, *, grouped: bool
) -> None:
    monkeypatch.setenv("TASKPLANE_RECORD_GROUP_MAX", value)
    pool = AsyncConnectionPool("postgresql://unused", open=False)  # never opened: no I/O
    recorder, _ = build_recorder_and_relay(Settings(), pool, MemoryBroker())
    assert (recorder.groups is not None) is grouped


def test_the_default_groups_up_to_32() -> None:
    assert Settings().record_group_max == 32
