// `tasks.watch`: one task's events, each exactly once and in order, across dropped
// connections, API restarts and expired stream tokens, until the task ended.
//
// The server's contract (docs/events.md): frame ids are the events' sequences,
// `?after=N` resumes after N, a stream ends after a terminal event, and a request
// after the task's last event gets 204. So the loop is: connect after the last
// sequence delivered; deliver frames whose sequence is higher; when the body ends,
// connect again at once. A 204 is the only normal end — after a terminal event the
// reconnection gets it, unless an operator's reset opened a new chapter
// (`task.reset.v1` …), which the same loop then follows.

import { isTransient, NetworkError, problemFrom, UnauthorizedError } from "./errors.js";
import { isKnownEventType, type TaskEvent, type TaskSnapshot } from "./generated.js";
import { readSse, SseIdleError } from "./sse.js";
import type { Transport } from "./transport.js";

export interface WatchOptions {
  /** Start after this sequence (the last event you already have); 0 = from the first. */
  after?: number;
  /** Aborting ends the iteration quietly (no error). */
  signal?: AbortSignal;
  /**
   * Called with the server's snapshot of the task (the `event: snapshot` frame, sent
   * first on each connection by servers that have it). Without it, none is asked for.
   */
  onSnapshot?: (snapshot: TaskSnapshot) => void;
  /** Events of types this client does not know (a newer server); they are not yielded. */
  onOtherEvent?: (event: { type: string; sequence: number; [key: string]: unknown }) => void;
  /** Called each time a connection is open (200), before its first frame: the stream is live. */
  onOpen?: () => void;
  /** Called with every failure that the watch recovers from by reconnecting. */
  onReconnect?: (error: unknown, attempt: number) => void;
  /** No byte for this long (pings come every 15 s by default) = a dead connection. */
  idleTimeoutMs?: number;
  /** Longest wait between reconnection attempts. */
  maxBackoffMs?: number;
}

const FIRST_BACKOFF_MS = 250;

/** The `event: error` frame: the server failed mid-stream; resume elsewhere. */
class StreamFailed extends Error {}
/** A response that ended before it delivered anything new. */
class StreamEnded extends Error {}

export async function* watchTask(
  transport: Transport,
  taskId: string,
  options: WatchOptions = {},
): AsyncGenerator<TaskEvent, void, undefined> {
  const { signal, onSnapshot, onOtherEvent, onOpen, onReconnect } = options;
  const idleMs = options.idleTimeoutMs ?? 45_000;
  const maxBackoff = options.maxBackoffMs ?? 5_000;
  let last = options.after ?? 0;
  let failures = 0;
  let token: string | undefined;
  let retryMs = FIRST_BACKOFF_MS;
  const path = `/tasks/${encodeURIComponent(taskId)}`;

  const recover = async (error: unknown, retryAfterSeconds?: number): Promise<void> => {
    failures += 1;
    onReconnect?.(error, failures);
    const backoff = Math.min(retryMs * 2 ** (failures - 1), maxBackoff);
    await sleep(retryAfterSeconds !== undefined ? retryAfterSeconds * 1000 : backoff, signal);
  };

  while (!signal?.aborted) {
    let fresh = false; // the token was minted for this very connection
    if (transport.apiKey !== undefined && token === undefined) {
      try {
        const minted = await transport.json<{ token: string }>("POST", `${path}/stream-token`, {
          signal,
        });
        token = minted.token;
        fresh = true;
      } catch (error) {
        if (signal?.aborted) return;
        if (!isTransient(error)) throw error; // a wrong key, an unknown task
        await recover(error, retryAfterOf(error));
        continue;
      }
    }
    const query = new URLSearchParams();
    if (last > 0) query.set("after", String(last));
    if (token !== undefined) query.set("token", token);
    if (onSnapshot === undefined) query.set("snapshot", "false");
    const controller = new AbortController();
    const stop = (): void => controller.abort();
    signal?.addEventListener("abort", stop, { once: true });
    try {
      let response: Response;
      try {
        // No Authorization and no Last-Event-ID header: with `?token=` and `?after=` the
        // request is a "simple" one, which a browser sends cross-origin without a preflight.
        response = await transport.fetch(`${path}/events?${query}`, {
          headers: { Accept: "text/event-stream" },
          signal: controller.signal,
          bare: token !== undefined,
        });
      } catch (error) {
        if (signal?.aborted) return;
        await recover(new NetworkError(`cannot reach ${path}/events`, { cause: error }));
        continue;
      }
      if (response.status === 204) return; // the task ended and we have every event
      if (!response.ok) {
        const problem = await problemFrom(response);
        if (problem instanceof UnauthorizedError && token !== undefined) {
          // An expired token, or one another API process minted (no shared secret, or a
          // restart): a fresh one follows at once. The key itself is checked when
          // minting; a token refused as soon as it was minted waits like any failure.
          token = undefined;
          if (fresh) await recover(problem);
          else onReconnect?.(problem, failures + 1);
          continue;
        }
        if (!isTransient(problem)) throw problem;
        await recover(problem, problem.retryAfter);
        continue;
      }
      if (response.body === null) throw new NetworkError("the event stream has no body");
      onOpen?.();
      const before = last;
      for await (const item of readSse(response.body, idleMs)) {
        if (item.kind === "retry") {
          retryMs = Math.max(item.ms, 1);
          continue;
        }
        const { frame } = item;
        if (frame.event === "error") throw new StreamFailed(frame.data);
        if (frame.event === "snapshot") {
          onSnapshot?.(JSON.parse(frame.data) as TaskSnapshot);
          continue;
        }
        if (frame.id === undefined || !/^\d+$/.test(frame.id)) continue; // not an event
        const sequence = Number(frame.id);
        if (sequence <= last) continue; // delivered already (a resume overlaps)
        const event = JSON.parse(frame.data) as { type: string; sequence: number };
        last = sequence;
        failures = 0;
        if (isKnownEventType(event.type)) yield event as TaskEvent;
        else onOtherEvent?.(event);
      }
      // The body ended: after a terminal event (the reconnection gets 204), an idle
      // timeout or a server shutdown. Either way: connect again — at once when this
      // connection brought something, after a pause when not (no busy loop against a
      // proxy that cuts every stream short).
      if (last === before) await recover(new StreamEnded("the stream ended without an event"));
    } catch (error) {
      if (signal?.aborted) return;
      if (!(error instanceof StreamFailed || error instanceof SseIdleError || isNetwork(error))) {
        throw error;
      }
      await recover(error);
    } finally {
      signal?.removeEventListener("abort", stop);
      controller.abort(); // a consumer's `break` lands here too: release the connection
    }
  }
}

function isNetwork(error: unknown): boolean {
  // A body read that broke off: undici's TypeError("terminated"), a browser's TypeError.
  return error instanceof TypeError || error instanceof NetworkError;
}

function retryAfterOf(error: unknown): number | undefined {
  return typeof error === "object" && error !== null && "retryAfter" in error
    ? (error.retryAfter as number | undefined)
    : undefined;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
