import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { createClient, GoneError, ValidationError } from "../dist/index.js";
import { fakeApi, frame, sse } from "./fake_api.mjs";

/** A fetch that records each call and answers with `answer(path, init)`. */
function recording(answer) {
  const seen = [];
  const fetch = async (url, init) => {
    seen.push({ url, init });
    return answer(new URL(url).pathname, init);
  };
  return { seen, fetch };
}

function problemResponse(status, detail) {
  return new Response(JSON.stringify({ type: "about:blank", title: "t", status, detail }), {
    status,
    headers: { "Content-Type": "application/problem+json" },
  });
}

const KEY = "secret-key-0123456789";

test("sendInput posts the value with the key (and an Idempotency-Key); inputLink mints a link", async () => {
  const { seen, fetch } = recording((path) =>
    path.endsWith("/link")
      ? Response.json({ url: "http://api.test/#/input/tok", token: "tok", expires_at: "x" }, { status: 201 })
      : Response.json({ task_id: "t 1", name: "approve", sequence: 7, status: "running", events: "" }, { status: 202 }),
  );
  const client = createClient({ baseUrl: "http://api.test", apiKey: KEY, fetch });
  const delivered = await client.tasks.sendInput("t 1", "approve", { approved: true }, { idempotencyKey: "once" });
  assert.equal(delivered.sequence, 7);
  assert.equal(seen[0].url, "http://api.test/tasks/t%201/inputs/approve");
  assert.equal(seen[0].init.method, "POST");
  assert.deepEqual(JSON.parse(seen[0].init.body), { approved: true });
  assert.equal(seen[0].init.headers.Authorization, `Bearer ${KEY}`);
  assert.equal(seen[0].init.headers["Idempotency-Key"], "once");

  const link = await client.tasks.inputLink("t 1", "approve", { expiresInSeconds: 60 });
  assert.equal(link.token, "tok");
  assert.equal(seen[1].url, "http://api.test/tasks/t%201/inputs/approve/link");
  assert.deepEqual(JSON.parse(seen[1].init.body), { expires_in_seconds: 60 });
  await client.tasks.inputLink("t 1", "approve");
  assert.deepEqual(JSON.parse(seen[2].init.body), {});
});

test("input links send no key (the token is the credential); 410 is a GoneError", async () => {
  let used = false;
  const { seen, fetch } = recording((path, init) => {
    if (init.method === "POST") {
      if (used) return problemResponse(410, "the link was used");
      used = true;
      return Response.json({ task_id: "t1", name: "approve", sequence: 9, status: "running", events: "" }, { status: 202 });
    }
    return Response.json({ task_id: "t1", task_type: "demo.approval", status: "waiting", name: "approve",
      expires_at: "x", used, waiting: null });
  });
  const client = createClient({ baseUrl: "http://api.test", apiKey: KEY, fetch });
  const state = await client.inputLinks.get("a.b/c");
  assert.equal(state.name, "approve");
  assert.equal(seen[0].url, "http://api.test/input-links/a.b%2Fc");
  await client.inputLinks.send("a.b/c", { approved: false });
  const again = await client.inputLinks.send("a.b/c", { approved: false }).catch((e) => e);
  assert.ok(again instanceof GoneError);
  assert.equal(again.name, "GoneError");
  assert.equal(again.detail, "the link was used");
  assert.ok(seen.every(({ init }) => init.headers.Authorization === undefined));
  assert.deepEqual(JSON.parse(seen[1].init.body), { approved: false });
});

test("a refused value is a ValidationError carrying the problem's `errors`", async () => {
  const { fetch } = recording(
    () =>
      new Response(
        JSON.stringify({ title: "t", status: 422, detail: "bad value", errors: [{ loc: ["approved"], msg: "required" }] }),
        { status: 422, headers: { "Content-Type": "application/problem+json" } },
      ),
  );
  const error = await createClient({ baseUrl: "http://api.test", fetch })
    .tasks.sendInput("t1", "approve", {})
    .catch((e) => e);
  assert.ok(error instanceof ValidationError);
  assert.deepEqual(error.problem.errors, [{ loc: ["approved"], msg: "required" }]);
});

let api;
afterEach(() => api?.close());

test("onOpen is called once per open connection, not for a refused one", async () => {
  api = await fakeApi([
    (req, res) => sse(res, frame(1, "task.created.v1")),
    (req, res) => { res.writeHead(503, { "Retry-After": "0" }); res.end(); },
    (req, res) => sse(res, frame(2, "task.completed.v1")),
    (req, res) => { res.writeHead(204); res.end(); },
  ]);
  const log = [];
  const watch = createClient({ baseUrl: api.baseUrl }).tasks.watch("t1", {
    maxBackoffMs: 20,
    onOpen: () => log.push("open"),
    onReconnect: (error) => log.push(error.constructor.name),
  });
  for await (const event of watch) log.push(event.sequence);
  assert.deepEqual(log, ["open", 1, "UnavailableError", "open", 2]);
});
