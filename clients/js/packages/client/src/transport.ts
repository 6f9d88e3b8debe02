// The one place requests are made: base URL, the key, the fetch to use, errors.

import { NetworkError, problemFrom } from "./errors.js";

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface RequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal | undefined;
  /** Leave out the Authorization header (the URL carries a stream token). */
  bare?: boolean;
}

export class Transport {
  readonly baseUrl: string;
  readonly apiKey: string | undefined;
  private readonly fetchImpl: FetchLike;

  constructor(baseUrl: string, apiKey: string | undefined, fetchImpl: FetchLike | undefined) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.apiKey = apiKey === "" ? undefined : apiKey;
    const found = fetchImpl ?? globalThis.fetch;
    if (typeof found !== "function") {
      throw new TypeError("no fetch: pass createClient({ fetch }) on this platform");
    }
    // Called unbound: a browser's window.fetch refuses another `this`.
    this.fetchImpl = (input, init) => found(input, init);
  }

  /** The raw response (any status); rejects only when there is no response. */
  fetch(path: string, options: RequestOptions & { method?: string } = {}): Promise<Response> {
    const headers: Record<string, string> = { ...options.headers };
    if (this.apiKey !== undefined && !options.bare) headers.Authorization = `Bearer ${this.apiKey}`;
    const init: RequestInit = { method: options.method ?? "GET", headers };
    if (options.signal !== undefined) init.signal = options.signal;
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    return this.fetchImpl(`${this.baseUrl}${path}`, init);
  }

  /** A JSON answer, or the typed error of a non-2xx one. */
  async json<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    let response: Response;
    try {
      response = await this.fetch(path, {
        ...options,
        method,
        headers: { Accept: "application/json", ...options.headers },
      });
    } catch (error) {
      if (options.signal?.aborted) throw error;
      throw new NetworkError(`${method} ${path}: no answer`, { cause: error });
    }
    if (!response.ok) throw await problemFrom(response);
    return (await response.json()) as T;
  }
}
