// Talking to the Taskplane API from the page: through @taskplane/client
// (taskplane-client.js, the committed bundle of clients/js/packages/client that
// `make client-types` writes), so the page and every other front end share one
// implementation of requests, typed problem+json errors and the event stream.
//
// What is the page's own is the API key: with keys configured the API answers 401;
// we then ask the person for a key once (every waiting request shares the same
// question), keep it in sessionStorage (gone when the tab closes), and go on with a
// client made for that key (`Authorization: Bearer`; streams on stream tokens).

import { createClient, ProblemError, UnauthorizedError } from "./taskplane-client.js";

const KEY_STORAGE = "taskplane.apiKey";
// The API serves the page: its base is the page's own directory (`/` under `make up`).
const BASE_URL = new URL(".", location.href).href;

let askForKey = async () => {
  throw new UnauthorizedError(401, { title: "Unauthorized", status: 401, detail: "this API needs a key" });
};
let pendingQuestion = null;
let cached = { key: undefined, client: null };

/** The page registers how to ask for a key: `(reason) => Promise<string>`. */
export function onKeyNeeded(ask) {
  askForKey = ask;
}

export function currentKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

/** The client for the key this tab has now (none: the API is open, or we will ask). */
export function client() {
  const key = currentKey() ?? undefined;
  if (cached.client === null || cached.key !== key) {
    cached = { key, client: createClient({ baseUrl: BASE_URL, apiKey: key }) };
  }
  return cached.client;
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

/**
 * `operation(client)`, again with a key when the API answers 401: resolves to what it
 * resolves to, rejects with the client's typed errors (ProblemError, NetworkError).
 * A stream that needs a key is an operation too; it runs again from where it was.
 */
export async function withKey(operation) {
  for (;;) {
    const key = currentKey();
    try {
      return await operation(client());
    } catch (error) {
      if (!(error instanceof UnauthorizedError)) throw error;
      if (key && currentKey() === key) sessionStorage.removeItem(KEY_STORAGE);
      if (currentKey()) continue; // another request already got a new key
      await obtainKey(key ? "That key was refused; try another." : error.detail);
    }
  }
}

/** An error as the page shows it: the API's own words, and which fields are wrong. */
export function problemText(error) {
  if (!(error instanceof ProblemError)) return `Cannot reach the API (${error?.message ?? error})`;
  let text = error.detail || error.message;
  for (const item of error.problem.errors || []) {
    text += `\n${(item.loc || []).join(".")}: ${item.msg}`;
  }
  return text;
}
