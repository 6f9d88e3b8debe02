// React hooks over @taskplane/client.
//
//   <TaskplaneProvider client={createClient({ baseUrl, apiKey })}> … </TaskplaneProvider>
//   const { task, ended, error } = useTask(taskId);          // folded state
//   const { events } = useTaskEvents(taskId);                 // the events themselves
//   const { tasks, refresh, loadMore } = useTaskList({ status: "running" });
//
// Hooks that follow one task share one stream (feed.ts). A task that ended is
// remembered per client: a component that mounts again for it makes no request.

import {
  type AnyEvent,
  EMPTY_TASK_STATE,
  foldTask,
  isKnownEventType,
  type ListFilter,
  type TaskEvent,
  type TaskplaneClient,
  type TaskState,
  type TaskView,
} from "@taskplane/client";
import {
  createContext,
  createElement,
  type ReactNode,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useState,
  useSyncExternalStore,
} from "react";

import { type FeedState, feedOf, IDLE } from "./feed.js";

const ClientContext = createContext<TaskplaneClient | null>(null);

export function TaskplaneProvider(props: { client: TaskplaneClient; children?: ReactNode }) {
  return createElement(ClientContext.Provider, { value: props.client }, props.children);
}

export interface HookOptions {
  /** Use this client instead of the provider's. */
  client?: TaskplaneClient;
}

export function useTaskplaneClient(client?: TaskplaneClient): TaskplaneClient {
  const provided = useContext(ClientContext);
  const found = client ?? provided;
  if (found === null) throw new Error("no Taskplane client: wrap in <TaskplaneProvider client={…}>");
  return found;
}

function useFollow(taskId: string | null | undefined, client: TaskplaneClient): FeedState {
  const subscribe = useCallback(
    (listener: () => void) => (taskId ? feedOf(client, taskId).subscribe(listener) : () => {}),
    [client, taskId],
  );
  const current = useCallback(() => (taskId ? feedOf(client, taskId).state : IDLE), [client, taskId]);
  return useSyncExternalStore(subscribe, current, current);
}

export interface TaskEventsResult {
  /** The task's events of the types this client knows, in order, each once. */
  events: readonly TaskEvent[];
  /** The stream is over: the task ended and every event is here. */
  ended: boolean;
  /** Why following stopped (a wrong key, no such task); recoverable failures never show. */
  error: unknown;
}

export function useTaskEvents(
  taskId: string | null | undefined,
  options: HookOptions = {},
): TaskEventsResult {
  const client = useTaskplaneClient(options.client);
  const { all, ended, error } = useFollow(taskId, client);
  const events = useMemo(
    () => all.filter((event): event is TaskEvent => isKnownEventType(event.type)),
    [all],
  );
  return { events, ended, error };
}

export interface TaskResult {
  /** Status, steps, progress, metadata, outputs and waiting inputs, folded from the stream. */
  task: TaskState;
  ended: boolean;
  error: unknown;
}

export function useTask(taskId: string | null | undefined, options: HookOptions = {}): TaskResult {
  const client = useTaskplaneClient(options.client);
  const { all, ended, error } = useFollow(taskId, client);
  const task = useMemo(() => all.reduce(foldTask, EMPTY_TASK_STATE), [all]);
  return { task, ended, error };
}

export interface TaskListResult {
  tasks: readonly TaskView[];
  nextCursor: string | null;
  loading: boolean;
  error: unknown;
  /** Fetch the first page again. */
  refresh: () => void;
  /** Append the next page (when `nextCursor`). */
  loadMore: () => void;
}

export function useTaskList(filter: ListFilter = {}, options: HookOptions = {}): TaskListResult {
  const client = useTaskplaneClient(options.client);
  const filterKey = JSON.stringify(filter);
  const [generation, setGeneration] = useState(0);
  // The page to append, for this filter only: a new filter starts at its first page.
  const [more, setMore] = useState<{ filterKey: string; cursor: string } | undefined>(undefined);
  const cursor = more?.filterKey === filterKey ? more.cursor : undefined;
  const [state, setState] = useState<{
    tasks: readonly TaskView[];
    nextCursor: string | null;
    loading: boolean;
    error: unknown;
  }>({ tasks: [], nextCursor: null, loading: true, error: undefined });
  useEffect(() => {
    const controller = new AbortController();
    const page: ListFilter = JSON.parse(filterKey) as ListFilter;
    if (cursor !== undefined) page.cursor = cursor;
    setState((now) => ({ ...now, loading: true }));
    client.tasks.list(page, { signal: controller.signal }).then(
      (answer) =>
        setState((now) => ({
          tasks: cursor === undefined ? answer.tasks : [...now.tasks, ...answer.tasks],
          nextCursor: answer.next_cursor,
          loading: false,
          error: undefined,
        })),
      (error: unknown) => {
        if (!controller.signal.aborted) setState((now) => ({ ...now, loading: false, error }));
      },
    );
    return () => controller.abort();
  }, [client, filterKey, cursor, generation]);
  const refresh = useCallback(() => {
    setMore(undefined);
    setGeneration((n) => n + 1);
  }, []);
  const nextCursor = state.nextCursor;
  const loadMore = useCallback(() => {
    if (nextCursor !== null) setMore({ filterKey, cursor: nextCursor });
  }, [filterKey, nextCursor]);
  return { ...state, refresh, loadMore };
}
