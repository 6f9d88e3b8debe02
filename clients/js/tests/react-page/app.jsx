// The page tests/browser/test_react_hooks.py drives: @taskplane/react's hooks on a page
// of another origin than the API. Query: ?api=<base URL>&task=<id>[&key=<API key>].
// It counts the requests it makes (window.taskplaneRequests), so the test can check
// that a task that ended is not fetched again when its component mounts again.
import { createClient } from "@taskplane/client";
import { TaskplaneProvider, useTask, useTaskEvents, useTaskList } from "@taskplane/react";
import { useState } from "react";
import { createRoot } from "react-dom/client";

const params = new URLSearchParams(location.search);
window.taskplaneRequests = [];
const countingFetch = (url, init) => {
  const { pathname, searchParams } = new URL(url);
  const resumed = searchParams.has("after") ? " (resumed)" : "";
  window.taskplaneRequests.push(`${init?.method ?? "GET"} ${pathname}${resumed}`);
  return fetch(url, init);
};
const client = createClient({
  baseUrl: params.get("api"),
  ...(params.get("key") ? { apiKey: params.get("key") } : {}),
  fetch: countingFetch,
});

function Task({ taskId }) {
  const { task, ended, error } = useTask(taskId);
  const { events } = useTaskEvents(taskId);
  return (
    <section>
      <p>
        status <output id="status">{task.status}</output>, progress{" "}
        <output id="progress">{Math.round(task.progress)}</output>, ended{" "}
        <output id="ended">{String(ended)}</output>, events{" "}
        <output id="events">{events.map((e) => e.sequence).join(",")}</output>
      </p>
      {error ? <p id="error">{String(error)}</p> : null}
      <ol id="steps">
        {task.steps.map((step) => (
          <li key={step.index} data-status={step.status}>
            {step.name}: {step.status} {Math.round(step.percent)}%
          </li>
        ))}
      </ol>
    </section>
  );
}

function List() {
  const { tasks, loading } = useTaskList({ limit: 5 });
  return (
    <ul id="list" data-loading={String(loading)}>
      {tasks.map((t) => (
        <li key={t.task_id}>{t.task_id}</li>
      ))}
    </ul>
  );
}

function App() {
  const [shown, setShown] = useState(true);
  return (
    <TaskplaneProvider client={client}>
      <button type="button" onClick={() => setShown(!shown)}>
        {shown ? "Hide" : "Show"}
      </button>
      {shown ? <Task taskId={params.get("task")} /> : null}
      <List />
    </TaskplaneProvider>
  );
}

createRoot(document.getElementById("root")).render(<App />);
