// Used by tests/e2e/test_js_client_e2e.py: follows a task to its end and prints the
// state foldTask made of its events, to compare with the server's own (GET /tasks/{id}).
// Usage: node fold-task.mjs <baseUrl> <task id>
import { createClient, EMPTY_TASK_STATE, foldTask } from "@taskplane/client";

const [baseUrl, taskId] = process.argv.slice(2);
const client = createClient({ baseUrl });
let state = EMPTY_TASK_STATE;
for await (const event of client.tasks.watch(taskId)) state = foldTask(state, event);
const lengths = Object.fromEntries(
  Object.entries(state.outputs).map(([name, out]) => [name, out.text.length + out.items.length]),
);
process.stdout.write(
  JSON.stringify({
    status: state.status,
    progress: state.progress,
    metadata: state.metadata,
    outputs: lengths,
    last_sequence: state.lastSequence,
    steps: state.steps.map((step) => step.status),
  }),
);
