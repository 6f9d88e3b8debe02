// One watch per (client, task), shared by every hook that follows the task: a page with
// `useTask` and `useTaskEvents` of one task, or the same task in two places, holds one
// stream. The watch stops when the last hook lets go; a task that ended stays here
// (nothing can change it), so following it again costs no request.

import type { AnyEvent, TaskplaneClient } from "@taskplane/client";

export interface FeedState {
  /** Every event, known type or not, in sequence order. */
  readonly all: readonly AnyEvent[];
  readonly ended: boolean;
  readonly error: unknown;
}

export const IDLE: FeedState = { all: [], ended: false, error: undefined };

class Feed {
  state: FeedState = IDLE;
  private readonly listeners = new Set<() => void>();
  private controller: AbortController | undefined;

  constructor(
    private readonly client: TaskplaneClient,
    private readonly taskId: string,
    private readonly forget: () => void,
  ) {}

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    if (this.controller === undefined && !this.state.ended) this.start();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size > 0 || this.state.ended) return;
      this.controller?.abort(); // nobody follows it any more: release the stream
      this.forget();
    };
  }

  private set(state: FeedState): void {
    this.state = state;
    for (const listener of this.listeners) listener();
  }

  private start(): void {
    const controller = new AbortController();
    this.controller = controller;
    const add = (event: AnyEvent): void => this.set({ ...this.state, all: [...this.state.all, event] });
    (async () => {
      try {
        for await (const event of this.client.tasks.watch(this.taskId, {
          signal: controller.signal,
          onOtherEvent: add,
        })) {
          add(event);
        }
        if (!controller.signal.aborted) this.set({ ...this.state, ended: true });
      } catch (error) {
        if (controller.signal.aborted) return;
        // Shown to every hook until the last one lets go; a hook mounted after that
        // gets a new feed, which tries again.
        this.set({ ...this.state, error });
      }
    })();
  }
}

const feeds = new WeakMap<TaskplaneClient, Map<string, Feed>>();

export function feedOf(client: TaskplaneClient, taskId: string): Feed {
  let byTask = feeds.get(client);
  if (byTask === undefined) feeds.set(client, (byTask = new Map()));
  let feed = byTask.get(taskId);
  if (feed === undefined) {
    const tasks = byTask;
    const created: Feed = new Feed(client, taskId, () => {
      if (tasks.get(taskId) === created) tasks.delete(taskId);
    });
    feed = created;
    tasks.set(taskId, feed);
  }
  return feed;
}
