// Compiled (never run) by tests/unit/test_js_client.py: what a TypeScript user writes
// must type-check, and what the types forbid must not (`@ts-expect-error` fails the
// build when the line below it compiles).
import {
  ConflictError,
  createClient,
  foldTask,
  EMPTY_TASK_STATE,
  GoneError,
  ProblemError,
  type TaskEvent,
  type TaskState,
  TERMINAL_EVENT_TYPES,
} from "@taskplane/client";
import { useTask, useTaskEvents, useTaskList } from "@taskplane/react";

export async function follow(taskId: string): Promise<TaskState> {
  const client = createClient({ baseUrl: "http://localhost:8000", apiKey: "k" });
  const created = await client.tasks.create(
    { type: "demo.pipeline", input: { steps: 2 } },
    { idempotencyKey: "once" },
  );
  const status: "pending" | "running" | "paused" | string = created.status;
  void status;
  let state = EMPTY_TASK_STATE;
  for await (const event of client.tasks.watch(taskId, { after: 3 })) {
    state = foldTask(state, event);
    if (event.type === "task.step.progress.v1") {
      const percent: number = event.data.percent; // narrowed by `type`
      void percent;
    }
    if (event.type === "task.completed.v1") {
      // @ts-expect-error: a completed event has no `percent` (only unknown extensions)
      const percent: number = event.data.percent;
      void percent;
    }
  }
  try {
    await client.tasks.pause(taskId);
  } catch (error) {
    if (error instanceof ConflictError) void error.problem.detail;
    if (error instanceof ProblemError) void (error.status satisfies number);
  }
  // @ts-expect-error: an unknown option
  client.tasks.watch(taskId, { after: 1, nonsense: true });
  const terminal: readonly TaskEvent["type"][] = TERMINAL_EVENT_TYPES;
  void terminal;
  return state;
}

export function Hooks(props: { id: string }): string {
  const { task, ended } = useTask(props.id);
  const { events } = useTaskEvents(props.id);
  const { tasks, loadMore } = useTaskList({ status: "running", limit: 5 });
  loadMore();
  // @ts-expect-error: not a status
  useTaskList({ status: "sleeping" });
  return `${task.status} ${ended} ${events.length} ${tasks.length}`;
}

export async function answer(taskId: string, token: string): Promise<number> {
  const client = createClient({ baseUrl: "" });
  const delivered = await client.tasks.sendInput(taskId, "approve", { approved: true });
  const link = await client.tasks.inputLink(taskId, "approve", { expiresInSeconds: 60 });
  const state = await client.inputLinks.get(link.token);
  const prompt: string | null | undefined = state.waiting?.prompt;
  void prompt;
  try {
    await client.inputLinks.send(token, { approved: false });
  } catch (error) {
    if (error instanceof GoneError) return 0;
  }
  // @ts-expect-error: an input's value is a JSON object
  await client.tasks.sendInput(taskId, "approve", true);
  return delivered.sequence;
}
