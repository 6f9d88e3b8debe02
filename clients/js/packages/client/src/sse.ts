// A Server-Sent Events parser over a fetch body, written to the WHATWG
// "event stream interpretation" rules (html.spec.whatwg.org, §9.2.6), so it
// works wherever fetch streams do (browsers, Node >= 20) and can send headers,
// which EventSource cannot.

/** One dispatched SSE frame. `id` is undefined when the frame set none. */
export interface SseFrame {
  readonly event: string;
  readonly data: string;
  readonly id: string | undefined;
}

/** What the parser reports: frames, and `retry:` values (the server's reconnect delay). */
export type SseItem = { kind: "frame"; frame: SseFrame } | { kind: "retry"; ms: number };

/** An incremental parser: feed it text as it arrives, take the items it completed. */
export class SseParser {
  private buffer = "";
  private event = "";
  private data: string[] = [];
  private id: string | undefined = undefined;
  private started = false;
  private pendingCR = false;

  /** Parses `chunk` (text, any split) and returns the items it completed. */
  push(chunk: string): SseItem[] {
    if (!this.started && chunk.length > 0) {
      this.started = true;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1); // one leading BOM
    }
    if (this.pendingCR && chunk.startsWith("\n")) chunk = chunk.slice(1); // CRLF split over chunks
    this.pendingCR = false;
    this.buffer += chunk;
    const items: SseItem[] = [];
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const c = this.buffer.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const line = this.buffer.slice(start, i);
      if (c === 13) {
        if (i + 1 === this.buffer.length) this.pendingCR = true;
        else if (this.buffer.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
      this.line(line, items);
    }
    this.buffer = this.buffer.slice(start);
    return items;
  }

  private line(line: string, items: SseItem[]): void {
    if (line === "") {
      this.dispatch(items);
      return;
    }
    if (line.startsWith(":")) return; // a comment (`: ping`)
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.event = value;
        break;
      case "data":
        this.data.push(value);
        break;
      case "id":
        if (!value.includes("\u0000")) this.id = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) items.push({ kind: "retry", ms: Number(value) });
        break;
      default: // unknown fields are ignored, as the standard says
    }
  }

  private dispatch(items: SseItem[]): void {
    const frameId = this.id;
    // The id is per frame here: Taskplane's frames without `id:` (a snapshot) carry none,
    // and the resume point is what the client itself delivered, not the last id line.
    this.id = undefined;
    if (this.data.length === 0) {
      this.event = "";
      return;
    }
    items.push({
      kind: "frame",
      frame: { event: this.event || "message", data: this.data.join("\n"), id: frameId },
    });
    this.event = "";
    this.data = [];
  }
}

/**
 * The items of a response body, in order. Ends when the body ends (an unfinished
 * frame at the end is dropped, as the standard says); `idleMs` without a byte
 * aborts the read with an `SseIdleError`.
 */
export async function* readSse(
  body: ReadableStream<Uint8Array>,
  idleMs: number,
): AsyncGenerator<SseItem, void, undefined> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  try {
    for (;;) {
      const { done, value } = await readWithin(reader, idleMs);
      if (done) return;
      yield* parser.push(decoder.decode(value, { stream: true }));
    }
  } finally {
    reader.cancel().catch(() => undefined);
  }
}

/** No byte (not even a `: ping`) for longer than the idle limit: the connection is dead. */
export class SseIdleError extends Error {
  constructor(ms: number) {
    super(`no byte from the stream for ${ms} ms`);
    this.name = "SseIdleError";
  }
}

function readWithin(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  ms: number,
): Promise<ReadableStreamReadResult<Uint8Array>> {
  if (!(ms > 0) || !Number.isFinite(ms)) return reader.read();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const idle = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SseIdleError(ms)), ms);
  });
  return Promise.race([reader.read(), idle]).finally(() => clearTimeout(timer));
}
