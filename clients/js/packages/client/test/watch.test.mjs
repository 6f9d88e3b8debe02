import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import {
  ConflictError,
  createClient,
  NotFoundError,
  RateLimitedError,
  UnauthorizedError,
  ValidationError,
} from "../dist/index.js";
import { fakeApi, frame, problem, sse } from "./fake_api.mjs";

let api;
afterEach(() => api?.close());

async function collect(iterator) {
  const got = [];
  for await (const event of iterator) got.push(event);
  return got;
}

const fast = { maxBackoffMs: 20 };

test("resumes after a drop, never repeats, ends at the 204 after the terminal event", async () => {
  api = await fakeApi([
    (req, res) => sse(res, "retry: 10\n" + frame(1, "task.created.v1") + frame(2, "task.step.started.v1")),
    (req, res) => {
      // An overlapping resume (the server sends 2 again): delivered once only. Then the
      // connection breaks in the middle of frame 3.
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      const body = frame(2, "task.step.started.v1") + frame(3, "task.step.progress.v1");
      res.write(body.slice(0, -20), () => res.destroy());
    },
    (req, res, url) => {
      const after = Number(url.searchParams.get("after"));
      const all = [frame(3, "task.step.progress.v1"), frame(4, "task.completed.v1", { result: { ok: true } })];
      sse(res, all.slice(after - 2).join(""));
    },
    (req, res) => { res.writeHead(204); res.end(); },
  ]);
  const client = createClient({ baseUrl: api.baseUrl });
  const events = await collect(client.tasks.watch("t1", fast));
  assert.deepEqual(events.map((e) => e.sequence), [1, 2, 3, 4]);
  assert.deepEqual(events.at(-1).data, { result: { ok: true } });
  const afters = api.streamRequests().map((r) => r.url.searchParams.get("after"));
  assert.deepEqual(afters, [null, "2", "2", "4"]);
  assert.ok(api.streamRequests().every((r) => r.url.searchParams.get("snapshot") === "false"));
});

test("follows a reset into the next chapter after a terminal event", async () => {
  api = await fakeApi([
    (req, res) => sse(res, frame(1, "task.created.v1") + frame(2, "task.failed.v1", { error: "x" })),
    (req, res) => sse(res, frame(3, "task.reset.v1", { to_run_id: "r2" }) + frame(4, "task.completed.v1")),
    (req, res) => { res.writeHead(204); res.end(); },
  ]);
  const client = createClient({ baseUrl: api.baseUrl });
  const types = (await collect(client.tasks.watch("t1", fast))).map((e) => e.type);
  assert.deepEqual(types, ["task.created.v1", "task.failed.v1", "task.reset.v1", "task.completed.v1"]);
});

test("with a key: mints a token per connection, re-mints after a 401, sends no key on the stream", async () => {
  api = await fakeApi([
    (req, res) => sse(res, frame(1, "task.created.v1")),
    (req, res) => problem(res, 401, "token expired"),
    (req, res) => sse(res, frame(2, "task.completed.v1")),
    (req, res) => { res.writeHead(204); res.end(); },
  ]);
  const client = createClient({ baseUrl: api.baseUrl, apiKey: "k".repeat(20) });
  const events = await collect(client.tasks.watch("t1", { ...fast, after: 0 }));
  assert.deepEqual(events.map((e) => e.sequence), [1, 2]);
  const streams = api.streamRequests();
  assert.deepEqual(streams.map((r) => r.url.searchParams.get("token")), ["tok1", "tok1", "tok2", "tok2"]);
  assert.ok(streams.every((r) => r.headers.authorization === undefined));
  const mints = api.requests.filter((r) => r.url.pathname.endsWith("/stream-token"));
  assert.ok(mints.every((r) => r.headers.authorization === `Bearer ${"k".repeat(20)}`));
});

test("a wrong key fails the watch with UnauthorizedError (no endless retry)", async () => {
  api = await fakeApi([], { mint: (req, res) => problem(res, 401, "unknown key") });
  const client = createClient({ baseUrl: api.baseUrl, apiKey: "wrong-key-wrong-key" });
  await assert.rejects(collect(client.tasks.watch("t1", fast)), UnauthorizedError);
});

test("404 is thrown; 429 and 503 wait and retry", async () => {
  api = await fakeApi([(req, res) => problem(res, 404, "no task")]);
  await assert.rejects(collect(createClient({ baseUrl: api.baseUrl }).tasks.watch("t1")), NotFoundError);
  await api.close();
  api = await fakeApi([
    (req, res) => problem(res, 429, "slow down", { "Retry-After": "0" }),
    (req, res) => problem(res, 503, "full", { "Retry-After": "0" }),
    (req, res) => sse(res, frame(1, "task.cancelled.v1")),
    (req, res) => { res.writeHead(204); res.end(); },
  ]);
  const retried = [];
  const events = await collect(
    createClient({ baseUrl: api.baseUrl }).tasks.watch("t1", {
      ...fast,
      onReconnect: (error) => retried.push(error.constructor.name),
    }),
  );
  assert.deepEqual(events.map((e) => e.type), ["task.cancelled.v1"]);
  assert.deepEqual(retried, ["RateLimitedError", "UnavailableError"]);
});

test("snapshots go to onSnapshot, unknown types to onOtherEvent, an error frame reconnects", async () => {
  api = await fakeApi([
    (req, res) =>
      sse(
        res,
        'event: snapshot\ndata: {"status":"running"}\n\n' +
          frame(1, "task.created.v1") +
          frame(2, "task.brand.new.v9") +
          'event: error\ndata: {"status":503}\n\n',
      ),
    (req, res) => sse(res, 'event: snapshot\ndata: {"status":"completed"}\n\n' + frame(3, "task.completed.v1")),
    (req, res) => { res.writeHead(204); res.end(); },
  ]);
  const snapshots = [];
  const others = [];
  const events = await collect(
    createClient({ baseUrl: api.baseUrl }).tasks.watch("t1", {
      ...fast,
      onSnapshot: (s) => snapshots.push(s.status),
      onOtherEvent: (e) => others.push(e.sequence),
    }),
  );
  assert.deepEqual(events.map((e) => e.sequence), [1, 3]);
  assert.deepEqual(snapshots, ["running", "completed"]);
  assert.deepEqual(others, [2]);
  assert.equal(api.streamRequests()[0].url.searchParams.get("snapshot"), null);
  assert.equal(api.streamRequests()[1].url.searchParams.get("after"), "2");
});

test("abort and break end the watch and release the connection", async () => {
  api = await fakeApi([
    (req, res) => sse(res, frame(1, "task.created.v1"), { end: false }),
    (req, res) => sse(res, frame(1, "task.created.v1"), { end: false }),
  ]);
  const client = createClient({ baseUrl: api.baseUrl });
  const controller = new AbortController();
  const got = [];
  for await (const event of client.tasks.watch("t1", { signal: controller.signal })) {
    got.push(event.sequence);
    controller.abort();
  }
  assert.deepEqual(got, [1]);
  for await (const event of client.tasks.watch("t1")) {
    assert.equal(event.sequence, 1);
    break;
  }
});

test("a silent connection is dropped after idleTimeoutMs and resumed", async () => {
  api = await fakeApi([
    (req, res) => sse(res, frame(1, "task.created.v1"), { end: false }),
    (req, res) => sse(res, frame(2, "task.completed.v1")),
    (req, res) => { res.writeHead(204); res.end(); },
  ]);
  const events = await collect(
    createClient({ baseUrl: api.baseUrl }).tasks.watch("t1", { ...fast, idleTimeoutMs: 100 }),
  );
  assert.deepEqual(events.map((e) => e.sequence), [1, 2]);
});

test("REST calls: headers, Idempotency-Key, typed problem errors", async () => {
  const seen = [];
  const fetch = async (url, init) => {
    seen.push({ url, init });
    const path = new URL(url).pathname;
    if (path === "/tasks" && init.method === "POST") {
      return Response.json({ task_id: "t1", workflow_id: "task-t1", status: "pending", links: {} }, { status: 202 });
    }
    if (path.endsWith("/pause")) return problemResponse(409, "already paused");
    if (path.endsWith("/resume")) return problemResponse(422, "bad");
    return Response.json({ tasks: [], next_cursor: null });
  };
  const client = createClient({ baseUrl: "http://api.test/", apiKey: "secret-key-0123456789", fetch });
  const created = await client.tasks.create(
    { type: "demo.pipeline", input: { steps: 1 } },
    { idempotencyKey: "order-1" },
  );
  assert.equal(created.task_id, "t1");
  assert.equal(seen[0].url, "http://api.test/tasks");
  assert.equal(seen[0].init.headers["Idempotency-Key"], "order-1");
  assert.equal(seen[0].init.headers.Authorization, "Bearer secret-key-0123456789");
  assert.deepEqual(JSON.parse(seen[0].init.body), { type: "demo.pipeline", input: { steps: 1 } });
  const error = await client.tasks.pause("t1").catch((e) => e);
  assert.ok(error instanceof ConflictError);
  assert.equal(error.status, 409);
  assert.equal(error.detail, "already paused");
  await assert.rejects(client.tasks.resume("t1"), ValidationError);
  await client.tasks.list({ status: "running", limit: 5 });
  assert.equal(seen.at(-1).url, "http://api.test/tasks?status=running&limit=5");
  assert.ok(!(error instanceof RateLimitedError));
});

function problemResponse(status, detail) {
  return new Response(JSON.stringify({ type: "about:blank", title: "t", status, detail }), {
    status,
    headers: { "Content-Type": "application/problem+json" },
  });
}

test("no answer at all: REST calls throw NetworkError, watch waits for the API to come back", async () => {
  const http = await import("node:http");
  const { NetworkError } = await import("../dist/index.js");
  const first = await fakeApi([(req, res) => sse(res, frame(1, "task.created.v1"), { end: false })]);
  const port = new URL(first.baseUrl).port;
  const client = createClient({ baseUrl: first.baseUrl });
  const seen = [];
  let back;
  const watching = (async () => {
    for await (const event of client.tasks.watch("t1", {
      maxBackoffMs: 20,
      onReconnect: (error) => {
        seen.push(error.constructor.name);
        if (error instanceof NetworkError && seen.filter((n) => n === "NetworkError").length === 2) {
          // The API is back on the same address after two refused connections.
          back = http.createServer((req, res) => {
            const after = new URL(req.url, "http://x").searchParams.get("after");
            if (after === "2") return res.writeHead(204).end();
            sse(res, frame(2, "task.completed.v1"));
          });
          back.listen(Number(port), "127.0.0.1");
        }
      },
    })) {
      if (event.sequence === 1) await first.close(); // the API dies mid-stream
      seen.push(event.sequence);
    }
  })();
  await watching;
  await new Promise((resolve) => back.close(resolve));
  assert.deepEqual(seen.filter((s) => typeof s === "number"), [1, 2]);
  assert.ok(seen.includes("NetworkError"));
  await assert.rejects(client.tasks.get("t1"), NetworkError);
});

test("listAll follows next_cursor to the last page", async () => {
  const pages = {
    "": { tasks: [{ task_id: "a" }, { task_id: "b" }], next_cursor: "c1" },
    c1: { tasks: [{ task_id: "c" }], next_cursor: null },
  };
  const asked = [];
  const fetch = async (url) => {
    const query = new URL(url).searchParams;
    asked.push(query.toString());
    return Response.json(pages[query.get("cursor") ?? ""]);
  };
  const client = createClient({ baseUrl: "http://api.test", fetch });
  const ids = [];
  for await (const task of client.tasks.listAll({ status: "running" })) ids.push(task.task_id);
  assert.deepEqual(ids, ["a", "b", "c"]);
  assert.deepEqual(asked, ["status=running", "status=running&cursor=c1"]);
});
