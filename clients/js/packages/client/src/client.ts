// createClient: the REST operations of the API, typed, plus `tasks.watch`.

import type {
  ControlResponse,
  CreateTaskResponse,
  InputDeliveryView,
  InputLinkStateView,
  InputLinkView,
  StreamTokenView,
  TaskPageView,
  TaskSnapshot,
  TaskStatus,
  TaskView,
  WebhookSpec,
} from "./generated.js";
import { type FetchLike, Transport } from "./transport.js";
import { type WatchOptions, watchTask } from "./watch.js";
import type { TaskEvent } from "./generated.js";

/** `GET /tasks/{id}/history`: events in sequence order; `next_after` resumes the paging. */
export interface HistoryPage {
  events: TaskEvent[];
  next_after: number;
}

export interface ClientOptions {
  /** Where the API is, e.g. `https://tasks.example.com` or `""` (this page's origin). */
  baseUrl: string;
  /** The API key (`Authorization: Bearer`); leave out for an API in open mode. */
  apiKey?: string;
  /** The fetch to use (default: the global one). */
  fetch?: FetchLike;
}

export interface CreateTask {
  type: string;
  input?: Record<string, unknown>;
  webhook?: WebhookSpec;
}

export interface CreateOptions {
  /** Same key + same body → the same task, however often it is sent (per tenant). */
  idempotencyKey?: string;
  signal?: AbortSignal;
}

export interface ListFilter {
  status?: TaskStatus;
  type?: string;
  limit?: number;
  cursor?: string;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface SendInputOptions extends CallOptions {
  /** A repeat with the same key answers with the first delivery (200, not 202). */
  idempotencyKey?: string;
}

export interface InputLinkOptions extends CallOptions {
  /** How long the link stays valid (at most the server's TASKPLANE_INPUT_LINK_TTL_SECONDS). */
  expiresInSeconds?: number;
}

/** One-time input links (`/input-links/{token}`): the token is the credential, no key is sent. */
export interface InputLinksApi {
  /** The task behind the link, whether it still waits for the input (with its schema), used or not. */
  get(token: string, options?: CallOptions): Promise<InputLinkStateView>;
  /** Delivers the input the link names, once. */
  send(token: string, value: Record<string, unknown>, options?: CallOptions): Promise<InputDeliveryView>;
}

export interface TasksApi {
  create(task: CreateTask, options?: CreateOptions): Promise<CreateTaskResponse>;
  /** The task's current state (`TaskView` plus metadata, outputs, waiting inputs). */
  get(taskId: string, options?: CallOptions): Promise<TaskSnapshot>;
  list(filter?: ListFilter, options?: CallOptions): Promise<TaskPageView>;
  /** Every task the filter matches, newest first, page after page (`next_cursor`). */
  listAll(filter?: Omit<ListFilter, "cursor">, options?: CallOptions): AsyncGenerator<TaskView>;
  pause(taskId: string, options?: CallOptions): Promise<ControlResponse>;
  resume(taskId: string, options?: CallOptions): Promise<ControlResponse>;
  cancel(taskId: string, options?: CallOptions): Promise<ControlResponse>;
  history(
    taskId: string,
    page?: { after?: number; limit?: number },
    options?: CallOptions,
  ): Promise<HistoryPage>;
  streamToken(taskId: string, options?: CallOptions): Promise<StreamTokenView>;
  /** Delivers an input the task waits for (`wait_for_input`); resolves once the task took it. */
  sendInput(
    taskId: string,
    name: string,
    value: Record<string, unknown>,
    options?: SendInputOptions,
  ): Promise<InputDeliveryView>;
  /** Mints a one-time link (`url`, for a person) that delivers this input without a key. */
  inputLink(taskId: string, name: string, options?: InputLinkOptions): Promise<InputLinkView>;
  /** The task's events, each once and in order, until it ended (see WatchOptions). */
  watch(taskId: string, options?: WatchOptions): AsyncGenerator<TaskEvent, void, undefined>;
}

export interface TaskplaneClient {
  readonly baseUrl: string;
  readonly tasks: TasksApi;
  readonly inputLinks: InputLinksApi;
}

export function createClient(options: ClientOptions): TaskplaneClient {
  const transport = new Transport(options.baseUrl, options.apiKey, options.fetch);
  const task = (taskId: string): string => `/tasks/${encodeURIComponent(taskId)}`;
  const control =
    (action: "pause" | "resume" | "cancel") =>
    (taskId: string, call: CallOptions = {}): Promise<ControlResponse> =>
      transport.json("POST", `${task(taskId)}/${action}`, { signal: call.signal });
  const tasks: TasksApi = {
    create(body, { idempotencyKey, signal } = {}) {
      const headers: Record<string, string> = {};
      if (idempotencyKey !== undefined) headers["Idempotency-Key"] = idempotencyKey;
      const payload = { type: body.type, input: body.input ?? {}, ...pick(body, "webhook") };
      return transport.json("POST", "/tasks", { body: payload, headers, signal });
    },
    get: (taskId, call = {}) => transport.json("GET", task(taskId), { signal: call.signal }),
    list(filter = {}, call = {}) {
      const query = new URLSearchParams();
      for (const [name, value] of Object.entries(filter)) {
        if (value !== undefined) query.set(name, String(value));
      }
      const text = query.toString(); // not `query.size`: older browsers lack it
      const suffix = text ? `?${text}` : "";
      return transport.json("GET", `/tasks${suffix}`, { signal: call.signal });
    },
    async *listAll(filter = {}, call = {}) {
      let cursor: string | null = null;
      do {
        const page: TaskPageView = await tasks.list(
          cursor === null ? filter : { ...filter, cursor },
          call,
        );
        yield* page.tasks;
        cursor = page.next_cursor;
      } while (cursor !== null);
    },
    pause: control("pause"),
    resume: control("resume"),
    cancel: control("cancel"),
    history(taskId, page = {}, call = {}) {
      const query = new URLSearchParams({ after: String(page.after ?? 0) });
      if (page.limit !== undefined) query.set("limit", String(page.limit));
      return transport.json("GET", `${task(taskId)}/history?${query}`, { signal: call.signal });
    },
    streamToken: (taskId, call = {}) =>
      transport.json("POST", `${task(taskId)}/stream-token`, { signal: call.signal }),
    sendInput(taskId, name, value, { idempotencyKey, signal } = {}) {
      const headers: Record<string, string> = {};
      if (idempotencyKey !== undefined) headers["Idempotency-Key"] = idempotencyKey;
      const path = `${task(taskId)}/inputs/${encodeURIComponent(name)}`;
      return transport.json("POST", path, { body: value, headers, signal });
    },
    inputLink(taskId, name, { expiresInSeconds, signal } = {}) {
      const body = expiresInSeconds === undefined ? {} : { expires_in_seconds: expiresInSeconds };
      const path = `${task(taskId)}/inputs/${encodeURIComponent(name)}/link`;
      return transport.json("POST", path, { body, signal });
    },
    watch: (taskId, watchOptions) => watchTask(transport, taskId, watchOptions),
  };
  const link = (token: string): string => `/input-links/${encodeURIComponent(token)}`;
  const inputLinks: InputLinksApi = {
    get: (token, call = {}) => transport.json("GET", link(token), { signal: call.signal, bare: true }),
    send: (token, value, call = {}) =>
      transport.json("POST", link(token), { body: value, signal: call.signal, bare: true }),
  };
  return { baseUrl: transport.baseUrl, tasks, inputLinks };
}

function pick<T extends object, K extends keyof T>(value: T, key: K): Partial<Pick<T, K>> {
  return value[key] === undefined ? {} : ({ [key]: value[key] } as Partial<Pick<T, K>>);
}
