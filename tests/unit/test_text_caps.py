"""Free text is capped so no reason or error can make its event oversized."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas import EventEnvelope, cap_text, check_size, validate_data
from schemas.size import MAX_TEXT_BYTES


def test_short_text_is_kept_as_it_is() -> None:
    assert cap_text("no longer needed") == "no longer needed"


@pytest.mark.parametrize("text", ["x" * 70_000, "é" * 40_000, "🙂" * 20_000])
def test_long_text_is_cut_to_the_cap_with_the_cut_marked(text: str) -> None:
    capped = cap_text(text)
    assert len(capped.encode()) <= MAX_TEXT_BYTES
    cut = len(text.encode()) - len(capped.split("…[truncated")[0].encode())
    assert capped.endswith(f"…[truncated {cut} bytes]")
    assert text.startswith(capped.split("…[truncated")[0])


def test_a_capped_70_kb_reason_fits_in_an_event() -> None:
    data = validate_data("task.cancelled.v1", {"reason": cap_text("r" * 70_000)})
    envelope = EventEnvelope(
        id="e",
        type="task.cancelled.v1",
        subject="t",
        time=datetime.now(UTC),
        data=data.model_dump(mode="json"),
    )
    assert check_size(envelope) < 64 * 1024


def test_only_free_text_fields_are_capped() -> None:
    from schemas.size import cap_free_text

    data = {"error": "e" * 70_000, "index": 2, "name": "n" * 9000, "reason": None}
    capped = cap_free_text(data)
    assert len(str(capped["error"]).encode()) <= MAX_TEXT_BYTES
    assert capped["name"] == data["name"]
    assert capped["index"] == 2
    assert capped["reason"] is None
