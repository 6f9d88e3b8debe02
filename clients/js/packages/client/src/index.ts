export { createClient } from "./client.js";
export type {
  CallOptions,
  ClientOptions,
  CreateOptions,
  CreateTask,
  HistoryPage,
  ListFilter,
  TaskplaneClient,
  TasksApi,
} from "./client.js";
export * from "./errors.js";
export * from "./generated.js";
export { SseParser } from "./sse.js";
export type { SseFrame, SseItem } from "./sse.js";
export type { FetchLike } from "./transport.js";
export type { WatchOptions } from "./watch.js";
