import assert from "node:assert/strict";
import { test } from "node:test";

import { EMPTY_TASK_STATE, foldEvents, foldTask } from "../dist/index.js";
import { envelope } from "./fake_api.mjs";

let sequence = 0;
const ev = (type, data) => envelope(++sequence, type, data);

test("status, steps and progress folded from a run with a retry, a pause and a result", () => {
  sequence = 0;
  const state = foldEvents([
    ev("task.created.v1", { task_type: "demo.pipeline", input: { steps: 2 } }),
    ev("task.step.started.v1", { index: 1, name: "fetch", attempt: 1, total_steps: 2 }),
    ev("task.step.progress.v1", { index: 1, name: "fetch", percent: 50, message: "half" }),
    ev("task.step.failed.v1", { index: 1, name: "fetch", error: "boom", attempt: 1, will_retry: true }),
    ev("task.step.started.v1", { index: 1, name: "fetch", attempt: 2, total_steps: 2 }),
    ev("task.step.completed.v1", { index: 1, name: "fetch", duration_seconds: 1, output: { n: 1 } }),
    ev("task.paused.v1", { reason: "lunch" }),
  ]);
  assert.equal(state.status, "paused");
  assert.equal(state.type, "demo.pipeline");
  assert.equal(state.progress, 50);
  assert.deepEqual(
    state.steps.map((s) => [s.index, s.status, s.attempt, s.output]),
    [[1, "completed", 2, { n: 1 }]],
  );
  const done = foldEvents(
    [ev("task.resumed.v1", {}), ev("task.completed.v1", { result: { ok: true } })],
    state,
  );
  assert.equal(done.status, "completed");
  assert.equal(done.progress, 100);
  assert.deepEqual(done.result, { ok: true });
  assert.ok(done.ended);
  assert.equal(foldTask(done, { ...ev("task.failed.v1", {}), sequence: 3 }), done, "old events change nothing");
});

test("metadata, outputs (failed attempts left out), waiting inputs and chapters", () => {
  sequence = 0;
  const state = foldEvents([
    ev("task.created.v1", { task_type: "t", input: {} }),
    ev("task.metadata.updated.v1", { patch: { stage: "a", keep: 1 } }),
    ev("task.metadata.updated.v1", { patch: { stage: "b", keep: null } }),
    ev("task.step.started.v1", { index: 1, name: "s", attempt: 1 }),
    ev("task.output.v1", { stream: "log", text: "lost ", offset: 0, step: 1, attempt: 1 }),
    ev("task.step.failed.v1", { index: 1, name: "s", error: "x", attempt: 1, will_retry: true }),
    ev("task.output.v1", { stream: "log", text: "kept", offset: 0, step: 1, attempt: 2 }),
    ev("task.output.v1", { stream: "rows", items: [1, 2], offset: 0 }),
    ev("task.input.requested.v1", { name: "approve", input_schema: { type: "object" }, prompt: "ok?" }),
  ]);
  assert.deepEqual(state.metadata, { stage: "b" });
  assert.deepEqual(state.outputs, { log: { text: "kept", items: [] }, rows: { text: "", items: [1, 2] } });
  assert.equal(state.status, "waiting");
  assert.equal(state.waitingInputs.approve.prompt, "ok?");
  const later = foldEvents(
    [
      ev("task.input.received.v1", { name: "approve", value: { approved: true } }),
      ev("task.failed.v1", { error: "no" }),
      ev("task.reset.v1", { to_run_id: "r2" }),
    ],
    state,
  );
  assert.equal(later.status, "running");
  assert.deepEqual(later.waitingInputs, {});
  assert.equal(later.chapter, 2);
  assert.equal(later.ended, false);
  assert.equal(EMPTY_TASK_STATE.status, "unknown");
});
