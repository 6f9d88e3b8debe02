import assert from "node:assert/strict";
import { test } from "node:test";

import { SseParser } from "../dist/index.js";

const frames = (items) => items.filter((i) => i.kind === "frame").map((i) => i.frame);

test("frames, comments, multi-line data and retry", () => {
  const parser = new SseParser();
  const items = parser.push(
    "retry: 1500\n: ping\n\nid: 7\nevent: task.created.v1\ndata: {\"a\":\ndata: 1}\n\n",
  );
  assert.deepEqual(items[0], { kind: "retry", ms: 1500 });
  assert.deepEqual(frames(items), [{ event: "task.created.v1", data: '{"a":\n1}', id: "7" }]);
});

test("any split of the bytes gives the same frames, CRLF and CR line ends included", () => {
  const text = "\uFEFFid: 1\r\nevent: x\r\ndata: one\r\n\r\nid: 2\rdata: two\r\rdata:three\n\n";
  const whole = frames(new SseParser().push(text));
  assert.deepEqual(whole, [
    { event: "x", data: "one", id: "1" },
    { event: "message", data: "two", id: "2" },
    { event: "message", data: "three", id: undefined },
  ]);
  for (let size = 1; size < 6; size++) {
    const parser = new SseParser();
    const got = [];
    for (let i = 0; i < text.length; i += size) got.push(...frames(parser.push(text.slice(i, i + size))));
    assert.deepEqual(got, whole, `chunks of ${size}`);
  }
});

test("a frame without data is not dispatched; an unfinished frame is kept", () => {
  const parser = new SseParser();
  assert.deepEqual(frames(parser.push("id: 3\nevent: nothing\n\ndata: half")), []);
  assert.deepEqual(frames(parser.push("\n\n")), [{ event: "message", data: "half", id: undefined }]);
});

test("unknown fields, a bad retry and an id with NUL are ignored", () => {
  const items = new SseParser().push("foo: bar\nretry: soon\nid: 1\u00002\ndata\n\n");
  assert.deepEqual(items, [{ kind: "frame", frame: { event: "message", data: "", id: undefined } }]);
});
