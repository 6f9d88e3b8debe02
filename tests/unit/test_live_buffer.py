"""`LiveBuffer`: many writes become few batches, nothing is lost or reordered, a flush
writes at once, a failed write reaches the writer, and the pending size is bounded.
No timing assertions: a long linger makes "coalesced" a matter of counting."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from activities.live_buffer import Batch, LiveBuffer
from schemas.live_events import MAX_METADATA_BYTES
from schemas.live_fold import fold


class Sink:
    def __init__(self, fail_at: int | None = None) -> None:
        self.batches: list[Batch] = []
        self.fail_at = fail_at

    async def write(self, batch: Batch) -> None:
        if self.fail_at is not None and len(self.batches) + 1 == self.fail_at:
            raise RuntimeError("store down")
        await asyncio.sleep(0)
        self.batches.append(batch)

    def text(self, stream: str) -> str:
        return "".join(c.text or "" for b in self.batches for c in b.chunks if c.stream == stream)


async def test_a_burst_is_coalesced_in_order_and_nothing_is_lost() -> None:
    sink = Sink()
    buffer = LiveBuffer(sink.write, linger=3600)  # only the first write and flushes go
    for n in range(500):
        await buffer.output("answer", text=f"{n} ")
        await buffer.output("items", item={"n": n})
        await buffer.metadata({"tokens": n, f"k{n % 3}": n})
        await buffer.progress(n / 500, f"{n}")
    await buffer.close()
    assert len(sink.batches) <= 3  # the first write, then the rest at close
    assert sink.text("answer") == "".join(f"{n} " for n in range(500))
    items = [
        i for b in sink.batches for c in b.chunks if c.stream == "items" for i in c.items or []
    ]
    assert items == [{"n": n} for n in range(500)]
    last = sink.batches[-1]
    assert last.metadata == {"tokens": 499, "k0": 498, "k1": 499, "k2": 497}
    assert last.progress == (499 / 500, "499")


async def test_flush_writes_now_and_a_lone_write_is_not_held() -> None:
    sink = Sink()
    buffer = LiveBuffer(sink.write, linger=3600)
    await buffer.output("log", text="first")
    await buffer.flush()  # with an hour's linger, only the flush can have written it
    assert sink.text("log") == "first"
    await buffer.output("log", text=" second")
    await buffer.flush()
    assert sink.text("log") == "first second"
    await buffer.close()


async def test_a_failed_write_reaches_the_writer() -> None:
    sink = Sink(fail_at=1)
    buffer = LiveBuffer(sink.write, linger=0)
    await buffer.output("log", text="x")
    with pytest.raises(RuntimeError, match="store down"):
        await buffer.flush()
    with pytest.raises(RuntimeError, match="store down"):
        await buffer.output("log", text="y")
    with pytest.raises(RuntimeError, match="store down"):
        await buffer.close()


async def test_a_writer_past_the_pending_bound_waits_for_the_flush() -> None:
    sink = Sink()
    buffer = LiveBuffer(sink.write, linger=3600, max_pending=100)
    for _ in range(10):
        await buffer.output("log", text="x" * 40)
    # Never more than the bound (plus the write that crossed it) was held.
    assert all(b.size <= 140 for b in sink.batches)
    await buffer.close()
    assert sink.text("log") == "x" * 400


def test_the_metadata_cap_is_the_one_the_store_enforces() -> None:
    migration = Path(__file__).resolve().parents[2] / "store/migrations/0010_live_state.sql"
    caps = {int(n) for n in re.findall(r"> (\d+) THEN", migration.read_text())}
    assert caps == {MAX_METADATA_BYTES}


def test_the_fold_leaves_out_failed_attempts_and_merges_metadata() -> None:
    def output(seq: int, text: str, attempt: int | None) -> dict[str, object]:
        step = None if attempt is None else 1
        data = {"stream": "s", "text": text, "offset": 0, "step": step, "attempt": attempt}
        return {"type": "task.output.v1", "sequence": seq, "data": data}

    failed = {"index": 1, "name": "a", "error": "x", "attempt": 1, "will_retry": True}
    state = fold(
        [
            {"type": "task.created.v1", "sequence": 1, "data": {}},
            output(2, "head ", None),
            output(3, "lost", 1),
            {
                "type": "task.metadata.updated.v1",
                "sequence": 4,
                "data": {"patch": {"a": 1, "b": 2}},
            },
            {"type": "task.step.failed.v1", "sequence": 5, "data": failed},
            output(6, "kept", 2),
            {"type": "task.metadata.updated.v1", "sequence": 7, "data": {"patch": {"a": None}}},
        ]
    )
    assert state.output_text("s") == "head kept"
    assert state.output_lengths() == {"s": 9}
    assert state.metadata == {"b": 2}
    assert (state.status, state.last_sequence) == ("running", 7)
