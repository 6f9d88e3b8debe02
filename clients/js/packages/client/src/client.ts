// createClient: the REST operations of the API, typed, plus `tasks.watch`.

import type {
  ControlResponse,
  CreateTaskResponse,
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
  /** The task's events, each once and in order, until it ended (see WatchOptions). */
  watch(taskId: string, options?: WatchOptions): AsyncGenerator<TaskEvent, void, undefined>;
}

export interface TaskplaneClient {
  readonly baseUrl: string;
  readonly tasks: TasksApi;
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
    watch: (taskId, watchOptions) => watchTask(transport, taskId, watchOptions),
  };
  return { baseUrl: transport.baseUrl, tasks };
}

function pick<T extends object, K extends keyof T>(value: T, key: K): Partial<Pick<T, K>> {
  return value[key] === undefined ? {} : ({ [key]: value[key] } as Partial<Pick<T, K>>);
}
