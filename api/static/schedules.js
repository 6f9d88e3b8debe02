// The page's list of the tenant's schedules (docs/schedules.md): each with when it
// fires and, when it is paused, a Resume button, else Pause and Run now. Refreshed
// while the task list shows; a fire's task appears in the task list like any other.
// Plain `fetch` with the tab's key: asking for a key is the task list's business
// (api.js); until there is one, this list waits.

import { currentKey } from "./api.js";

const POLL_MS = 5000;

async function api(path, { method = "GET" } = {}) {
  const headers = { Accept: "application/json, application/problem+json" };
  const key = currentKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  const response = await fetch(new URL(path.replace(/^\//, ""), new URL(".", location.href)), {
    method,
    headers,
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error(data?.detail || `HTTP ${response.status}`);
  return data;
}

function describe(schedule) {
  const when = schedule.cron ? `cron ${schedule.cron}` : `every ${schedule.every} s`;
  return schedule.timezone ? `${when} (${schedule.timezone})` : when;
}

function button(label, onClick) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = label;
  element.addEventListener("click", onClick);
  return element;
}

async function steer(schedule, action) {
  try {
    await api(`/schedules/${encodeURIComponent(schedule.id)}/${action}`, { method: "POST" });
  } catch (error) {
    document.getElementById("schedules-error").textContent = error.message;
  }
  refresh();
}

function row(schedule, paused) {
  const item = document.createElement("li");
  item.className = "task-item";
  item.dataset.scheduleId = schedule.id;
  const name = document.createElement("code");
  name.textContent = schedule.id;
  const what = document.createElement("span");
  what.textContent = `${schedule.type}, ${describe(schedule)}`;
  const state = document.createElement("span");
  state.className = "status";
  state.textContent = paused ? "paused" : "active";
  item.append(name, what, state);
  if (paused) item.append(button("Resume", () => steer(schedule, "resume")));
  else item.append(button("Pause", () => steer(schedule, "pause")));
  item.append(button("Run now", () => steer(schedule, "trigger")));
  return item;
}

let timer = null;

async function refresh() {
  clearTimeout(timer);
  const section = document.getElementById("schedules-section");
  const listView = document.getElementById("list-view");
  if (!section || (listView && listView.hidden) || document.hidden) {
    timer = setTimeout(refresh, POLL_MS);
    return;
  }
  if (!currentKey() && document.getElementById("key-panel")?.hidden === false) {
    timer = setTimeout(refresh, POLL_MS);
    return;
  }
  try {
    const page = await api("/schedules?limit=100");
    const views = await Promise.all(
      page.schedules.map((s) => api(`/schedules/${encodeURIComponent(s.id)}`).catch(() => null)),
    );
    const items = page.schedules.map((s, i) => row(s, Boolean(views[i]?.paused)));
    document.getElementById("schedule-list").replaceChildren(...items);
    section.hidden = items.length === 0;
    document.getElementById("schedules-error").textContent = "";
  } catch (error) {
    document.getElementById("schedules-error").textContent = error.message;
  }
  timer = setTimeout(refresh, POLL_MS);
}

refresh();
