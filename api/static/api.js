// Talking to the Taskplane API from the page: JSON in and out, problem+json errors,
// and the API key. With keys configured the API answers 401; we then ask the person
// for a key once (every waiting request shares the same question), keep it in
// sessionStorage (gone when the tab closes) and send it as `Authorization: Bearer`.

const KEY_STORAGE = "taskplane.apiKey";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

let askForKey = async () => {
  throw new ApiError(401, { detail: "this API needs a key" });
};
let pendingQuestion = null;

/** The page registers how to ask for a key: `(reason) => Promise<string>`. */
export function onKeyNeeded(ask) {
  askForKey = ask;
}

export function currentKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

function forgetKey() {
  sessionStorage.removeItem(KEY_STORAGE);
}

async function obtainKey(reason) {
  if (!pendingQuestion) {
    pendingQuestion = askForKey(reason).then(
      (key) => {
        sessionStorage.setItem(KEY_STORAGE, key);
        pendingQuestion = null;
        return key;
      },
      (error) => {
        pendingQuestion = null;
        throw error;
      },
    );
  }
  return pendingQuestion;
}

/** `fetch` a path of the API; resolves to parsed JSON (or null), rejects with ApiError. */
export async function api(path, { method = "GET", body } = {}) {
  for (;;) {
    const headers = { Accept: "application/json, application/problem+json" };
    const key = currentKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (response.status === 401) {
      const problem = await readJson(response);
      const hadKey = Boolean(key);
      if (hadKey && currentKey() === key) forgetKey();
      if (currentKey()) continue; // another request already got a new key
      await obtainKey(hadKey ? "That key was refused; try another." : problem?.detail);
      continue;
    }
    const data = await readJson(response);
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }
}

async function readJson(response) {
  if (response.status === 204) return null;
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { detail: text };
  }
}
