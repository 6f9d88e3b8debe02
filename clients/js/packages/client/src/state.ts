// A task's state folded from its events: what `useTask` shows, usable without React.
// Pure: `foldTask(state, event)` returns a new state and never mutates the old one.
// Events of types this client version does not generate yet (task code's metadata,
// output and input events) fold by their type name and documented fields, so a page
// shows them as soon as the server sends them.

import { isTerminalEventType } from "./generated.js";

/** Any event envelope, known type or not. */
export interface AnyEvent {
  readonly type: string;
  readonly sequence: number;
  readonly data?: unknown;
  readonly [extension: string]: unknown;
}

export type StepStatus = "running" | "retrying" | "completed" | "failed";

export interface StepState {
  readonly index: number;
  readonly name: string;
  readonly status: StepStatus;
  readonly attempt: number | undefined;
  /** 0–100 within the step. */
  readonly percent: number;
  readonly message: string | undefined;
  readonly output: unknown;
  readonly error: string | undefined;
}

export interface WaitingInput {
  readonly name: string;
  readonly inputSchema: unknown;
  readonly deadline: string | undefined;
  readonly prompt: string | undefined;
}

export interface OutputChunk {
  readonly stream: string;
  readonly text: string | undefined;
  readonly items: readonly unknown[] | undefined;
  readonly step: number | undefined;
  readonly attempt: number | undefined;
}

export interface OutputStream {
  readonly text: string;
  readonly items: readonly unknown[];
}

export type FoldedStatus =
  | "unknown"
  | "pending"
  | "queued"
  | "running"
  | "paused"
  | "waiting"
  | "completed"
  | "failed"
  | "cancelled"
  | "terminated";

export interface TaskState {
  readonly taskId: string | undefined;
  readonly type: string | undefined;
  readonly input: Record<string, unknown> | undefined;
  readonly status: FoldedStatus;
  /** Steps by their 1-based index, in order. */
  readonly steps: readonly StepState[];
  readonly totalSteps: number | undefined;
  /** 0–100 for the whole task. */
  readonly progress: number;
  readonly result: unknown;
  readonly error: string | undefined;
  /** Why it was paused, cancelled or terminated, when said. */
  readonly reason: string | undefined;
  readonly metadata: Readonly<Record<string, unknown>>;
  /** Output streams by name; chunks of failed step attempts left out. */
  readonly outputs: Readonly<Record<string, OutputStream>>;
  readonly outputChunks: readonly OutputChunk[];
  /** Inputs the task waits for, by name. */
  readonly waitingInputs: Readonly<Record<string, WaitingInput>>;
  /** 1, plus one per operator reset (`task.reset.v1`). */
  readonly chapter: number;
  readonly lastSequence: number;
  /** The last event is terminal. */
  readonly ended: boolean;
}

export const EMPTY_TASK_STATE: TaskState = {
  taskId: undefined,
  type: undefined,
  input: undefined,
  status: "unknown",
  steps: [],
  totalSteps: undefined,
  progress: 0,
  result: undefined,
  error: undefined,
  reason: undefined,
  metadata: {},
  outputs: {},
  outputChunks: [],
  waitingInputs: {},
  chapter: 1,
  lastSequence: 0,
  ended: false,
};

type Data = Record<string, unknown>;

const str = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined);
const num = (value: unknown): number | undefined =>
  typeof value === "number" && Number.isFinite(value) ? value : undefined;

/** `events` folded from the empty state. */
export function foldEvents(events: Iterable<AnyEvent>, state: TaskState = EMPTY_TASK_STATE): TaskState {
  let folded = state;
  for (const event of events) folded = foldTask(folded, event);
  return folded;
}

/** The state after `event`; an event at or below `lastSequence` changes nothing. */
export function foldTask(state: TaskState, event: AnyEvent): TaskState {
  if (event.sequence <= state.lastSequence) return state;
  const data: Data = event.data !== null && typeof event.data === "object" ? (event.data as Data) : {};
  let next: TaskState = {
    ...state,
    lastSequence: event.sequence,
    taskId: state.taskId ?? str(event.subject),
    ended: isTerminalEventType(event.type),
  };
  const total = num(data.total_steps);
  if (total !== undefined) next = { ...next, totalSteps: total };
  switch (event.type) {
    case "task.created.v1":
      next = { ...next, status: "running", type: str(data.task_type), input: data.input as Data };
      break;
    case "task.step.started.v1":
    case "task.step.progress.v1":
    case "task.step.completed.v1":
    case "task.step.failed.v1":
      next = foldStep(next, event.type, data);
      break;
    case "task.progress.v1":
      return { ...next, progress: num(data.percent) ?? next.progress };
    case "task.queued.v1": // over its concurrency key's limit: waits for a slot
      next = { ...next, status: "queued" };
      break;
    case "task.deferred.v1": // its start rate deferred it: starts at `until`
      // (noticed late, after its start: the status stays)
      next = { ...next, status: next.status === "unknown" ? "queued" : next.status };
      break;
    case "task.admitted.v1":
      next = { ...next, status: "running" };
      break;
    case "task.paused.v1":
      next = { ...next, status: "paused", reason: str(data.reason) };
      break;
    case "task.resumed.v1":
      next = { ...next, status: waitingOr(next, "running"), reason: undefined };
      break;
    case "task.metadata.updated.v1":
      next = { ...next, metadata: merged(next.metadata, data.patch) };
      break;
    case "task.output.v1":
      next = withChunks(next, [...next.outputChunks, chunkOf(data)]);
      break;
    case "task.input.requested.v1": {
      const name = str(data.name) ?? "";
      const waiting: WaitingInput = {
        name,
        inputSchema: data.input_schema,
        deadline: str(data.deadline),
        prompt: str(data.prompt),
      };
      next = { ...next, status: "waiting", waitingInputs: { ...next.waitingInputs, [name]: waiting } };
      break;
    }
    case "task.input.received.v1": {
      const { [str(data.name) ?? ""]: _gone, ...rest } = next.waitingInputs;
      next = { ...next, waitingInputs: rest };
      next = { ...next, status: waitingOr(next, "running") };
      break;
    }
    case "task.completed.v1":
      next = { ...next, status: "completed", result: data.result, progress: 100 };
      break;
    case "task.failed.v1":
      next = { ...next, status: "failed", error: str(data.error) };
      break;
    case "task.cancelled.v1":
      next = { ...next, status: "cancelled", reason: str(data.reason) };
      break;
    case "task.terminated.v1":
    case "task.terminated.v2":
      next = { ...next, status: "terminated", reason: str(data.reason) };
      break;
    case "task.reset.v1":
      // A new chapter: the run goes on from the reset point, and its ending is open again.
      next = {
        ...next,
        status: "running",
        chapter: next.chapter + 1,
        result: undefined,
        error: undefined,
        reason: undefined,
        waitingInputs: {},
      };
      break;
    default: // a type this fold does not know: only the sequence moves
  }
  return event.type === "task.completed.v1" ? next : { ...next, progress: stepsProgress(next) };
}

function waitingOr(state: TaskState, status: FoldedStatus): FoldedStatus {
  return Object.keys(state.waitingInputs).length > 0 ? "waiting" : status;
}

function foldStep(state: TaskState, type: string, data: Data): TaskState {
  const index = num(data.index) ?? 0;
  const before = state.steps.find((step) => step.index === index);
  const step: StepState = before ?? {
    index,
    name: str(data.name) ?? `step ${index}`,
    status: "running",
    attempt: undefined,
    percent: 0,
    message: undefined,
    output: undefined,
    error: undefined,
  };
  let changed: StepState;
  let next = state;
  switch (type) {
    case "task.step.started.v1":
      changed = { ...step, status: "running", attempt: num(data.attempt), percent: 0, error: undefined };
      break;
    case "task.step.progress.v1":
      changed = { ...step, percent: num(data.percent) ?? step.percent, message: str(data.message) };
      break;
    case "task.step.completed.v1":
      changed = { ...step, status: "completed", percent: 100, output: data.output, error: undefined };
      break;
    default: {
      const retry = data.will_retry === true;
      changed = { ...step, status: retry ? "retrying" : "failed", error: str(data.error) };
      // Output of an attempt that failed is not part of the task's final state.
      const attempt = num(data.attempt);
      next = withChunks(
        next,
        next.outputChunks.filter((c) => !(c.step === index && c.attempt === attempt)),
      );
    }
  }
  const steps = [...next.steps.filter((s) => s.index !== index), changed].sort(
    (a, b) => a.index - b.index,
  );
  return { ...next, steps };
}

function stepsProgress(state: TaskState): number {
  const total = state.totalSteps ?? state.steps.length;
  if (total <= 0) return state.progress;
  const done = state.steps.reduce(
    (sum, step) => sum + (step.status === "completed" ? 100 : step.percent),
    0,
  );
  return Math.max(state.progress, Math.min(100, done / total));
}

function merged(metadata: Readonly<Record<string, unknown>>, patch: unknown): Record<string, unknown> {
  const result: Record<string, unknown> = { ...metadata };
  if (patch === null || typeof patch !== "object") return result;
  for (const [key, value] of Object.entries(patch as Data)) {
    if (value === null) delete result[key];
    else result[key] = value;
  }
  return result;
}

function chunkOf(data: Data): OutputChunk {
  return {
    stream: str(data.stream) ?? "",
    text: str(data.text),
    items: Array.isArray(data.items) ? data.items : undefined,
    step: num(data.step),
    attempt: num(data.attempt),
  };
}

function withChunks(state: TaskState, chunks: readonly OutputChunk[]): TaskState {
  const outputs: Record<string, { text: string; items: unknown[] }> = {};
  for (const chunk of chunks) {
    const stream = (outputs[chunk.stream] ??= { text: "", items: [] });
    if (chunk.text !== undefined) stream.text += chunk.text;
    if (chunk.items !== undefined) stream.items.push(...chunk.items);
  }
  return { ...state, outputChunks: chunks, outputs };
}
