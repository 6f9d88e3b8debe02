import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { createClient } from "@taskplane/client";

import { feedOf } from "../dist/feed.js";
import { fakeApi, frame, sse } from "../../client/test/fake_api.mjs";

let api;
afterEach(() => api?.close());

const settled = (feed) =>
  new Promise((resolve) => {
    const check = () => {
      if (!feed.state.ended && !feed.state.error) return;
      queueMicrotask(stop);
      resolve(feed.state);
    };
    const stop = feed.subscribe(check);
    check(); // an ended feed changes no more: read it as it is
  });

test("hooks of one task share one watch; an ended task is served from memory", async () => {
  api = await fakeApi([
    (req, res) => sse(res, frame(1, "task.created.v1") + frame(2, "task.completed.v1")),
    (req, res) => { res.writeHead(204); res.end(); },
  ]);
  const client = createClient({ baseUrl: api.baseUrl });
  const feed = feedOf(client, "t1");
  assert.equal(feedOf(client, "t1"), feed);
  const [a, b] = await Promise.all([settled(feed), settled(feed)]);
  assert.equal(a, b);
  assert.deepEqual(a.all.map((e) => e.sequence), [1, 2]);
  assert.equal(api.streamRequests().length, 2); // one watch: its stream, then the 204
  const again = await settled(feedOf(client, "t1"));
  assert.equal(again, a);
  assert.equal(api.streamRequests().length, 2); // nothing asked again
});

test("the last hook to let go of a running task closes its stream", async () => {
  let closed;
  const gone = new Promise((resolve) => (closed = resolve));
  api = await fakeApi([
    (req, res) => {
      sse(res, frame(1, "task.created.v1"), { end: false });
      res.on("close", closed);
    },
  ]);
  const client = createClient({ baseUrl: api.baseUrl });
  const feed = feedOf(client, "t2");
  const first = await new Promise((resolve) => {
    const stop = feed.subscribe(() => resolve(stop));
  });
  first();
  await gone;
  assert.notEqual(feedOf(client, "t2"), feed, "a later hook starts afresh");
});
