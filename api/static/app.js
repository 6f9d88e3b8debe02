// The Taskplane task page: a live list of tasks, a form to start one, and a task view
// with a progress bar per step, the event log as it arrives, and the control buttons.
//
// The list polls `GET /tasks` every 2 s instead of holding one event stream per task:
// it needs only each task's status and progress (the read model has both), a page
// of 25 tasks would otherwise hold 25 streams per viewer against the API's stream
// cap, and one request every 2 s is cheap. The task view, which needs every event,
// follows the task with the client's `tasks.watch` (each event once, in order, across
// reconnections, API restarts and stream tokens, until the task ended). Polling pauses
// while the tab is hidden.
//
// Each part of the page is a view with `open()` and `close()`, chosen by the URL's
// fragment in `route()`: a new part is one more route and one more view.

import { NotFoundError } from "./taskplane-client.js";
import { onKeyNeeded, problemText, withKey } from "./api.js";
import { openInputLink, TaskInputs } from "./inputs.js";

const LIST_POLL_MS = 2000;
const LIST_LIMIT = 25;
const TERMINAL = new Set(["completed", "failed", "cancelled", "terminated"]);
const MAX_BACKOFF_MS = 3000; // between reconnection attempts of the task view's stream

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};

const page = {
  config: null,
  listTimer: null,
  view: null, // the open task view, if any
};

// -- the API key ------------------------------------------------------------------------

onKeyNeeded(
  (reason) =>
    new Promise((resolve) => {
      const panel = $("key-panel");
      $("key-reason").textContent = reason || "This API needs a key.";
      panel.hidden = false;
      $("key-input").value = "";
      $("key-input").focus();
      $("key-form").onsubmit = (event) => {
        event.preventDefault();
        const key = $("key-input").value.trim();
        if (!key) return;
        panel.hidden = true;
        resolve(key);
      };
    }),
);

// -- start-up and routing -----------------------------------------------------------------

async function start() {
  $("create-form").addEventListener("submit", createTask);
  $("task-type").addEventListener("change", fillDefaultInput);
  for (const action of ["pause", "resume", "cancel"]) {
    $(`${action}-button`).addEventListener("click", () => page.view?.control(action));
  }
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && !$("list-view").hidden) refreshList();
  });
  window.addEventListener("hashchange", route);
  await loadConfig();
  route();
}

async function loadConfig() {
  // Public (no key): the page needs it before it can ask for one. Not part of the client.
  try {
    const response = await fetch("ui-config", { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`GET /ui-config: HTTP ${response.status}`);
    page.config = await response.json();
  } catch (error) {
    showError("create-error", error);
    page.config = { temporal_ui_url: "", temporal_namespace: "default", task_types: {} };
  }
  const select = $("task-type");
  select.replaceChildren(
    ...Object.keys(page.config.task_types).map((type) => el("option", { value: type }, type)),
  );
  fillDefaultInput();
}

function route() {
  const match = location.hash.match(/^#\/tasks\/([0-9a-fA-F-]{36})$/);
  const link = location.hash.match(/^#\/input\/([A-Za-z0-9_.-]+)$/);
  page.view?.close();
  page.view = null;
  $("input-link-view").hidden = true;
  if (link) {
    // A one-time input link (an approval e-mail): its token is the credential.
    $("list-view").hidden = true;
    $("task-view").hidden = true;
    stopListPolling();
    document.title = "An input for a task · Taskplane";
    openInputLink(link[1], {
      section: $("input-link-view"),
      summary: $("link-summary"),
      formBox: $("link-form"),
      done: $("link-done"),
    });
  } else if (match) {
    $("list-view").hidden = true;
    $("task-view").hidden = false;
    stopListPolling();
    page.view = new TaskView(match[1].toLowerCase());
    page.view.open();
  } else {
    $("task-view").hidden = true;
    $("list-view").hidden = false;
    document.title = "Taskplane";
    refreshList();
  }
}

// -- the task list ------------------------------------------------------------------------

function stopListPolling() {
  clearTimeout(page.listTimer);
  page.listTimer = null;
}

async function refreshList() {
  stopListPolling();
  try {
    const body = await withKey((tp) => tp.tasks.list({ limit: LIST_LIMIT }));
    renderList(body.tasks);
    $("list-error").textContent = "";
  } catch (error) {
    showError("list-error", error);
  }
  if (!$("list-view").hidden && !document.hidden) {
    page.listTimer = setTimeout(refreshList, LIST_POLL_MS);
  }
}

function renderList(tasks) {
  const list = $("task-list");
  const existing = new Map([...list.children].map((item) => [item.dataset.taskId, item]));
  const items = tasks.map((task) => {
    const item = existing.get(task.task_id) || newListItem(task);
    updateListItem(item, task);
    return item;
  });
  // Re-append in order: existing nodes move (keeping focus), new ones appear.
  list.replaceChildren(...items);
  $("tasks-empty").hidden = tasks.length > 0;
}

function newListItem(task) {
  const progress = el("progress", { max: 100, className: "task-progress" });
  progress.setAttribute("aria-label", `progress of task ${task.task_id}`);
  const item = el(
    "li",
    { className: "task-item" },
    el("a", { href: `#/tasks/${task.task_id}`, className: "task-link" }, el("code", {}, "")),
    el("span", { className: "task-type" }),
    el("span", { className: "status" }),
    progress,
    el("span", { className: "percent" }),
  );
  item.dataset.taskId = task.task_id;
  return item;
}

function updateListItem(item, task) {
  item.querySelector("code").textContent = task.task_id.slice(0, 8);
  item.querySelector(".task-link").setAttribute("aria-label", `task ${task.task_id}`);
  item.querySelector(".task-type").textContent = task.type || "?";
  const status = item.querySelector(".status");
  status.textContent = task.status;
  status.dataset.status = task.status;
  item.dataset.status = task.status;
  item.querySelector("progress").value = task.progress;
  item.querySelector(".percent").textContent = `${Math.round(task.progress)}%`;
}

// -- the form -----------------------------------------------------------------------------

function fillDefaultInput() {
  const type = $("task-type").value;
  const input = page.config?.task_types?.[type] ?? {};
  $("task-input").value = JSON.stringify(input, null, 2);
}

async function createTask(event) {
  event.preventDefault();
  const button = $("create-button");
  $("create-error").textContent = "";
  let input;
  try {
    input = JSON.parse($("task-input").value || "{}");
  } catch (error) {
    $("create-error").textContent = `The input is not valid JSON: ${error.message}`;
    $("task-input").focus();
    return;
  }
  button.disabled = true;
  try {
    const type = $("task-type").value;
    const created = await withKey((tp) => tp.tasks.create({ type, input }));
    location.hash = `#/tasks/${created.task_id}`;
  } catch (error) {
    showError("create-error", error);
  } finally {
    button.disabled = false;
  }
}

function showError(id, error) {
  $(id).textContent = problemText(error);
}

// -- the task view ------------------------------------------------------------------------

class TaskView {
  constructor(taskId) {
    this.taskId = taskId;
    this.status = "pending";
    this.taskType = null;
    this.steps = new Map(); // index -> {name, percent, state, attempt}
    this.totalSteps = null;
    this.pauseRequested = false;
    this.cancelRequested = false;
    this.busy = false;
    this.lastSequence = 0; // the stream resumes after it
    this.stopped = new AbortController(); // ends the stream when the view closes
    this.closed = false;
    this.metadata = {};
    this.metadataAsOf = 0; // the snapshot's metadata covers the patches up to here
    this.chunks = []; // [stream, "step:attempt", text or items] in sequence order
    this.failedAttempts = new Set(); // "step:attempt" whose output is not the task's
    this.taskProgress = null; // workflow code's own figure (task.progress.v1)
    this.inputs = new TaskInputs($("inputs"), taskId);
  }

  async open() {
    $("task-id").textContent = this.taskId;
    document.title = `Task ${this.taskId.slice(0, 8)} · Taskplane`;
    $("steps").replaceChildren();
    $("log").replaceChildren();
    $("result").textContent = "";
    $("result-section").hidden = true;
    $("metadata-section").hidden = true;
    $("outputs-section").hidden = true;
    $("outputs").replaceChildren();
    $("control-error").textContent = "";
    $("task-error").textContent = "";
    this.inputs.clearAll();
    const link = $("temporal-link");
    const ui = page.config?.temporal_ui_url;
    link.hidden = !ui;
    if (ui) {
      const ns = encodeURIComponent(page.config.temporal_namespace || "default");
      link.href = `${ui}/namespaces/${ns}/workflows/task-${this.taskId}`;
    }
    this.render();
    try {
      const task = await withKey((tp) => tp.tasks.get(this.taskId));
      if (this.closed) return;
      this.taskType = task.type;
      if (this.status === "pending") this.status = task.status;
      this.render();
    } catch (error) {
      showError("task-error", error);
      if (error instanceof NotFoundError) return;
    }
    if (!this.closed) this.follow();
  }

  close() {
    this.closed = true;
    this.stopped.abort();
  }

  /** The task's events until it ended: history first, then live, each once (tasks.watch). */
  async follow() {
    const signal = this.stopped.signal;
    const streamState = (state) => {
      if (signal.aborted) return;
      const label = $("stream-state");
      label.textContent = state;
      label.dataset.state = state;
    };
    const deliver = (envelope) => {
      this.lastSequence = envelope.sequence;
      this.apply(envelope);
    };
    try {
      // A 401 (no key yet, or a refused one) asks for a key and watches on from here.
      await withKey(async (tp) => {
        streamState("connecting");
        const events = tp.tasks.watch(this.taskId, {
          after: this.lastSequence,
          signal,
          maxBackoffMs: MAX_BACKOFF_MS,
          onOpen: () => streamState("live"),
          onReconnect: () => streamState("reconnecting"),
          onSnapshot: (snapshot) => this.applySnapshot(snapshot),
          onOtherEvent: deliver, // a type newer than this page: a line in the log
        });
        for await (const envelope of events) deliver(envelope);
      });
      streamState("ended");
    } catch (error) {
      if (signal.aborted) return;
      streamState("error");
      showError("task-error", error);
    }
  }

  applySnapshot(snapshot) {
    // The state at connect, at once; the events that follow fill in the rest.
    if (snapshot.last_sequence >= this.metadataAsOf) {
      this.metadata = snapshot.metadata || {};
      this.metadataAsOf = snapshot.last_sequence;
    }
    if (!this.taskType) this.taskType = snapshot.type;
    if (this.status === "pending") this.status = snapshot.status;
    this.render();
  }

  apply(envelope) {
    const data = envelope.data || {};
    const type = envelope.type;
    if (type === "task.output.v1") {
      // Output is rendered in its own section, not as a line per chunk in the log.
      this.chunks.push([data.stream, `${data.step}:${data.attempt}`, data.text ?? data.items ?? []]);
      this.renderOutputs();
      return;
    }
    this.appendLog(envelope);
    this.inputs.apply(envelope);
    if (data.total_steps) this.totalSteps = data.total_steps;
    switch (type) {
      case "task.created.v1": {
        this.taskType = data.task_type;
        const planned = data.input?.steps ?? data.input?.branches;
        if (Number.isInteger(planned) && !this.totalSteps) this.totalSteps = planned;
        this.status = "running";
        break;
      }
      case "task.step.started.v1":
        this.step(data).state = "running";
        this.step(data).attempt = data.attempt;
        this.step(data).percent = 0;
        break;
      case "task.step.progress.v1":
        this.step(data).percent = data.percent;
        break;
      case "task.step.completed.v1":
        Object.assign(this.step(data), { percent: 100, state: "completed" });
        break;
      case "task.step.failed.v1":
        this.step(data).state = data.will_retry ? "retrying" : "failed";
        this.failedAttempts.add(`${data.index}:${data.attempt}`); // its output is void
        this.renderOutputs();
        break;
      case "task.metadata.updated.v1":
        if (envelope.sequence > this.metadataAsOf) {
          const merged = { ...this.metadata, ...data.patch };
          this.metadata = Object.fromEntries(Object.entries(merged).filter(([, v]) => v !== null));
        }
        break;
      case "task.progress.v1":
        this.taskProgress = data.percent;
        break;
      case "task.paused.v1":
        this.status = "paused";
        this.pauseRequested = false;
        break;
      case "task.resumed.v1":
        this.status = "running";
        this.pauseRequested = false;
        break;
      case "task.input.requested.v1":
        this.status = "waiting";
        break;
      case "task.queued.v1":
        this.status = "queued";
        break;
      case "task.deferred.v1": // its start is booked (noticed late: the status stays)
        if (this.status === "pending") this.status = "queued";
        break;
      case "task.admitted.v1":
        this.status = "running";
        break;
      case "task.input.received.v1":
        this.status = "running";
        break;
      case "task.completed.v1":
        this.status = "completed";
        this.showResult(JSON.stringify(data.result ?? {}, null, 2));
        break;
      case "task.failed.v1":
        this.status = "failed";
        this.showResult(data.error);
        break;
      case "task.cancelled.v1":
        this.status = "cancelled";
        this.showResult(data.reason || "cancelled");
        break;
      case "task.terminated.v2":
        this.status = "terminated";
        this.showResult(
          data.reason || `${data.timed_out ? "timed out" : "terminated"} in Temporal (${data.close_status})`,
        );
        break;
      case "task.reset.v1":
        // An operator's reset in Temporal: a new chapter, the steps start over.
        this.status = "running";
        this.steps.clear();
        $("result-section").hidden = true;
        break;
      default:
        break;
    }
    this.render();
  }

  step(data) {
    let step = this.steps.get(data.index);
    if (!step) {
      step = { name: data.name, percent: 0, state: "waiting", attempt: null };
      this.steps.set(data.index, step);
    }
    if (data.name) step.name = data.name;
    return step;
  }

  showResult(text) {
    $("result-section").hidden = false;
    $("result").textContent = text;
  }

  appendLog(envelope) {
    const log = $("log");
    const data = envelope.data || {};
    const time = (envelope.time || "").slice(11, 23);
    let detail = "";
    if (data.name) detail += ` ${data.name}`;
    if (data.percent !== undefined) detail += ` ${Math.round(data.percent)}%`;
    if (data.attempt > 1) detail += ` attempt ${data.attempt}`;
    if (data.error) detail += ` — ${data.error}`;
    const item = el(
      "li",
      {},
      el("span", { className: "seq" }, `#${envelope.sequence}`),
      " ",
      el("time", { dateTime: envelope.time || "" }, time),
      " ",
      el("span", { className: "type" }, envelope.type),
      detail,
    );
    item.dataset.seq = String(envelope.sequence);
    item.dataset.type = envelope.type;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
    log.append(item);
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  renderOutputs() {
    const streams = new Map();
    for (const [stream, writer, part] of this.chunks) {
      if (this.failedAttempts.has(writer)) continue;
      if (!streams.has(stream)) streams.set(stream, []);
      if (typeof part === "string") streams.get(stream).push(part);
      else streams.get(stream).push(...part.map((item) => `${JSON.stringify(item)}\n`));
    }
    const box = $("outputs");
    for (const [stream, parts] of streams) {
      let pre = box.querySelector(`pre[data-stream="${stream}"]`);
      if (!pre) {
        const id = `output-${stream}`;
        pre = el("pre", { id, className: "output" });
        pre.dataset.stream = stream;
        pre.setAttribute("aria-label", `output stream ${stream}`);
        box.append(el("h4", {}, stream), pre);
      }
      pre.textContent = parts.join("");
    }
    // A stream whose only writer failed shows empty until the retry writes again.
    for (const pre of box.querySelectorAll("pre[data-stream]")) {
      if (!streams.has(pre.dataset.stream)) pre.textContent = "";
    }
    $("outputs-section").hidden = this.chunks.length === 0;
  }

  render() {
    $("task-type-label").textContent = this.taskType || "…";
    const metadata = Object.keys(this.metadata).length ? JSON.stringify(this.metadata, null, 2) : "";
    $("metadata").textContent = metadata;
    $("metadata-section").hidden = !metadata;
    const status = $("task-status");
    status.textContent = this.pauseRequested && this.status === "running" ? "running (pausing…)" : this.status;
    status.dataset.status = this.status;
    $("task-view").dataset.status = this.status;
    this.renderSteps();
    this.renderButtons();
  }

  renderSteps() {
    const total = Math.max(this.totalSteps || 0, ...this.steps.keys(), 0);
    const list = $("steps");
    let sum = 0;
    for (let index = 1; index <= total; index += 1) {
      const step = this.steps.get(index) || { name: this.placeholder(index), percent: 0, state: "waiting" };
      if (this.status === "completed") Object.assign(step, { percent: 100, state: "completed" });
      sum += step.percent;
      let item = list.querySelector(`li[data-index="${index}"]`);
      if (!item) {
        const id = `step-bar-${index}`;
        item = el(
          "li",
          { className: "step" },
          el("label", { htmlFor: id, className: "step-name" }),
          el("progress", { id, max: 100, value: 0 }),
          el("span", { className: "percent" }),
          el("span", { className: "step-state" }),
        );
        item.dataset.index = String(index);
        list.append(item);
      }
      item.dataset.state = step.state;
      item.querySelector(".step-name").textContent = step.name;
      item.querySelector("progress").value = step.percent;
      item.querySelector(".percent").textContent = `${Math.round(step.percent)}%`;
      const attempt = step.attempt > 1 ? ` (attempt ${step.attempt})` : "";
      item.querySelector(".step-state").textContent = `${step.state}${attempt}`;
    }
    const overall = this.taskProgress ?? (total ? sum / total : 0);
    $("task-progress").value = overall;
    $("task-progress-text").textContent = `${Math.round(overall)}%`;
  }

  placeholder(index) {
    // Until a step starts, its name is unknown; the built-in types name them like this.
    return this.taskType === "demo.fanout" ? `branch-${index}` : `step-${index}`;
  }

  renderButtons() {
    const terminal = TERMINAL.has(this.status);
    if (terminal) this.inputs.clearAll();
    const canPause = this.status === "running" && !this.pauseRequested;
    const canResume = this.status === "paused" || (this.pauseRequested && !terminal);
    const canCancel = !terminal && !this.cancelRequested;
    $("pause-button").disabled = this.busy || !canPause;
    $("resume-button").disabled = this.busy || !canResume;
    $("cancel-button").disabled = this.busy || !canCancel;
  }

  async control(action) {
    this.busy = true;
    this.renderButtons();
    $("control-error").textContent = "";
    try {
      await withKey((tp) => tp.tasks[action](this.taskId));
      if (action === "pause") this.pauseRequested = true;
      if (action === "resume") this.pauseRequested = false;
      if (action === "cancel") this.cancelRequested = true;
    } catch (error) {
      showError("control-error", error);
    } finally {
      this.busy = false;
      this.render();
    }
  }
}

start();
