// Used by tests/e2e/test_js_client_e2e.py: creates a task with @taskplane/client and
// watches it to the end. Prints one JSON line per delivered event ({"event": …}), per
// snapshot frame ({"snapshot": {status, last}}), per recovered failure
// ({"reconnect": "<error class>"}), and {"end": true} when the
// watch finished by itself. Usage: node watch-task.mjs <baseUrl> <input JSON> [apiKey]
import { createClient } from "@taskplane/client";

const [baseUrl, input, apiKey] = process.argv.slice(2);
const client = createClient({ baseUrl, ...(apiKey ? { apiKey } : {}) });
const say = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);

const created = await client.tasks.create(
  { type: "demo.pipeline", input: JSON.parse(input) },
  { idempotencyKey: `js-e2e-${process.pid}-${Date.now()}` },
);
say({ created: created.task_id });
for await (const event of client.tasks.watch(created.task_id, {
  maxBackoffMs: 500,
  onReconnect: (error) => say({ reconnect: error?.constructor?.name ?? String(error) }),
  onSnapshot: (snapshot) => say({ snapshot: { status: snapshot.status, last: snapshot.last_sequence } }),
})) {
  say({ event });
}
say({ end: true });
