// React hooks over @taskplane/client.
//
//   <TaskplaneProvider client={createClient({ baseUrl, apiKey })}> … </TaskplaneProvider>
//   const { task, ended, error } = useTask(taskId);          // folded state
//   const { events } = useTaskEvents(taskId);                 // the events themselves
//   const { tasks, refresh, loadMore } = useTaskList({ status: "running" });
//
// A task that ended is remembered per client: a component that mounts again for it
// gets its events from memory, with no request at all.

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
} from "react";

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

interface Followed {
  /** Every event, known type or not, in sequence order. */
  all: readonly AnyEvent[];
  ended: boolean;
  error: unknown;
}

const FRESH: Followed = { all: [], ended: false, error: undefined };
// Ended tasks' events, per client: their streams are over, nothing can change them.
const endedTasks = new WeakMap<TaskplaneClient, Map<string, readonly AnyEvent[]>>();

function useFollow(taskId: string | null | undefined, client: TaskplaneClient): Followed {
  const [followed, setFollowed] = useState<Followed & { key: string }>({ ...FRESH, key: "" });
  const key = taskId ?? "";
  useEffect(() => {
    if (!taskId) return undefined;
    const remembered = endedTasks.get(client)?.get(taskId);
    if (remembered !== undefined) {
      setFollowed({ all: remembered, ended: true, error: undefined, key: taskId });
      return undefined;
    }
    setFollowed({ ...FRESH, key: taskId });
    const controller = new AbortController();
    const all: AnyEvent[] = [];
    const add = (event: AnyEvent): void => {
      all.push(event);
      const snapshot = [...all];
      setFollowed((now) => ({ ...now, all: snapshot, key: taskId }));
    };
    (async () => {
      try {
        for await (const event of client.tasks.watch(taskId, {
          signal: controller.signal,
          onOtherEvent: add,
        })) {
          add(event);
        }
        if (controller.signal.aborted) return;
        let byTask = endedTasks.get(client);
        if (byTask === undefined) endedTasks.set(client, (byTask = new Map()));
        byTask.set(taskId, [...all]);
        setFollowed((now) => ({ ...now, ended: true, key: taskId }));
      } catch (error) {
        if (!controller.signal.aborted) setFollowed((now) => ({ ...now, error, key: taskId }));
      }
    })();
    return () => controller.abort();
  }, [client, taskId]);
  // While the effect has not caught up with a new id, show nothing of the old task.
  return followed.key === key ? followed : FRESH;
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
