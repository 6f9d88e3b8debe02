export { createClient } from "./client.js";
export type {
  CallOptions,
  ClientOptions,
  CreateOptions,
  CreateTask,
  HistoryPage,
  InputLinkOptions,
  InputLinksApi,
  ListFilter,
  SendInputOptions,
  TaskplaneClient,
  TasksApi,
} from "./client.js";
export * from "./errors.js";
export * from "./generated.js";
export { SseParser } from "./sse.js";
export type { SseFrame, SseItem } from "./sse.js";
export type { FetchLike } from "./transport.js";
export type { WatchOptions } from "./watch.js";
export { EMPTY_TASK_STATE, foldEvents, foldTask } from "./state.js";
export type {
  AnyEvent,
  FoldedStatus,
  OutputChunk,
  OutputStream,
  StepState,
  StepStatus,
  TaskState,
  WaitingInput,
} from "./state.js";
