"""The CLI's progress rendering, without a server (its SSE parser: test_sse_parser.py;
the e2e tests in tests/e2e/test_cli_tasks.py run the same code against the real stack)."""

from __future__ import annotations

import io
from typing import Any

import orjson

from cli.watch_render import BarsRenderer, TaskProgress, TextRenderer, describe


def envelope(sequence: int, event_type: str, **data: Any) -> dict[str, Any]:
    return {"sequence": sequence, "type": event_type, "data": data}


def test_progress_follows_steps_retries_and_the_end() -> None:
    progress = TaskProgress("t")
    events = [
        envelope(1, "task.created.v1", task_type="demo.pipeline", input={"steps": 2}),
        envelope(2, "task.step.started.v1", index=1, name="step-1", attempt=1),
        envelope(3, "task.step.progress.v1", index=1, name="step-1", percent=50.0),
        envelope(4, "task.step.failed.v1", index=1, name="step-1", attempt=1, will_retry=True),
    ]
    for event in events:
        progress.apply(event)
    assert (progress.total_steps, progress.steps[1].state, progress.percent) == (2, "retrying", 25)
    progress.apply(envelope(5, "task.step.started.v1", index=1, name="step-1", attempt=2))
    progress.apply(envelope(6, "task.step.completed.v1", index=1, name="step-1"))
    progress.apply(envelope(7, "task.paused.v1"))
    assert (progress.status, progress.percent, progress.steps[1].attempt) == ("paused", 50, 2)
    progress.apply(envelope(8, "task.cancelled.v1", reason="operator"))
    assert progress.status == "cancelled"


def test_bars_redraw_in_place_and_text_is_one_line_per_event() -> None:
    tty = io.StringIO()
    bars = BarsRenderer(tty)
    progress = TaskProgress("t", task_type="demo.pipeline", status="running", total_steps=2)
    bars.draw(progress)
    progress.apply(envelope(3, "task.step.progress.v1", index=1, name="step-1", percent=50.0))
    bars.draw(progress)
    first, second = tty.getvalue().split("\x1b[3F")  # the second draw goes back 3 lines
    assert first.count("\n") == second.count("\n") == 3  # the task line + 2 steps
    assert "step-1" in second
    assert " 50%" in second

    plain = io.StringIO()
    text = TextRenderer(plain)
    text.event(envelope(3, "task.step.progress.v1", name="step-1", percent=50.0), progress)
    text.event(envelope(9, "task.failed.v1", error="boom"), progress)
    assert plain.getvalue() == "#3 task.step.progress.v1 step-1 50%\n#9 task.failed.v1 — boom\n"
    assert "\x1b" not in plain.getvalue()


def test_describe_handles_every_v1_type() -> None:
    index = orjson.loads(open("schemas/json/index.json", "rb").read())  # noqa: SIM115
    for number, event_type in enumerate(index["events"], start=1):
        assert describe(envelope(number, event_type)).startswith(f"#{number} {event_type}")


def test_fields_and_attributes_it_does_not_know_change_nothing() -> None:
    """Tolerant reader: a newer producer's additions neither break nor alter the display."""
    known = envelope(3, "task.step.progress.v1", index=1, name="step-1", percent=50.0)
    newer = {
        **envelope(3, "task.step.progress.v1", index=1, name="step-1", percent=50.0, eta_seconds=4),
        "partitionkey": "tenant-a",
    }
    assert describe(newer) == describe(known)
    before, after = TaskProgress("t"), TaskProgress("t")
    before.apply(known)
    after.apply(newer)
    assert (after.percent, after.steps[1].percent) == (before.percent, before.steps[1].percent)


def test_plain_lines_show_output_chunks_and_metadata_patches() -> None:
    text = {"stream": "answer", "text": " durable" * 20, "offset": 0, "step": 1, "attempt": 1}
    line = describe({"sequence": 5, "type": "task.output.v1", "data": text})
    assert line.startswith("#5 task.output.v1 answer: ' durable durable")
    assert len(line) < 100  # cut short
    items = {"stream": "pages", "items": [{"page": 1}], "offset": 0, "step": 1, "attempt": 2}
    line = describe({"sequence": 6, "type": "task.output.v1", "data": items})
    assert line == '#6 task.output.v1 attempt 2 pages: [{"page":1}]'
    patch = {"patch": {"tokens": 3}, "step": None, "attempt": None}
    line = describe({"sequence": 7, "type": "task.metadata.updated.v1", "data": patch})
    assert line == '#7 task.metadata.updated.v1 {"tokens":3}'
