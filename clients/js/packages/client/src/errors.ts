// Every failure the client reports is a TaskplaneError:
//
//   TaskplaneError
//   ├── ProblemError            the API answered with an error (problem+json, RFC 9457)
//   │   ├── BadRequestError       400
//   │   ├── UnauthorizedError     401 (no key, wrong key, expired stream token)
//   │   ├── NotFoundError         404 (no such task, or another tenant's)
//   │   ├── ConflictError         409 (a transition that makes no sense now)
//   │   ├── GoneError             410 (an input link that expired or was used)
//   │   ├── PayloadTooLargeError  413
//   │   ├── ValidationError       422 (bad input; same Idempotency-Key, other body)
//   │   ├── RateLimitedError      429 (see `retryAfter`)
//   │   └── UnavailableError      502/503/504 (see `retryAfter`)
//   └── NetworkError            no HTTP answer at all (connection refused, reset, …)

import type { Problem } from "./generated.js";

export class TaskplaneError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The API refused a request; `problem` is its problem+json body. */
export class ProblemError extends TaskplaneError {
  readonly status: number;
  readonly problem: Problem;
  /** Seconds from `Retry-After`, when the response had one. */
  readonly retryAfter: number | undefined;

  constructor(status: number, problem: Problem, retryAfter?: number) {
    super(`${status} ${problem.title ?? ""}: ${problem.detail ?? ""}`.trim());
    this.status = status;
    this.problem = problem;
    this.retryAfter = retryAfter;
  }

  /** The problem's `type` URI (`about:blank` when it has none). */
  get type(): string {
    return this.problem.type ?? "about:blank";
  }

  get detail(): string {
    return this.problem.detail;
  }
}

export class BadRequestError extends ProblemError {}
export class UnauthorizedError extends ProblemError {}
export class NotFoundError extends ProblemError {}
export class ConflictError extends ProblemError {}
export class GoneError extends ProblemError {}
export class PayloadTooLargeError extends ProblemError {}
export class ValidationError extends ProblemError {}
export class RateLimitedError extends ProblemError {}
export class UnavailableError extends ProblemError {}

/** The request got no HTTP answer (the API is down, restarting, or unreachable). */
export class NetworkError extends TaskplaneError {}

const BY_STATUS: Record<number, typeof ProblemError> = {
  400: BadRequestError,
  401: UnauthorizedError,
  404: NotFoundError,
  409: ConflictError,
  410: GoneError,
  413: PayloadTooLargeError,
  422: ValidationError,
  429: RateLimitedError,
  502: UnavailableError,
  503: UnavailableError,
  504: UnavailableError,
};

/** The typed error for a non-2xx response (reads its body). */
export async function problemFrom(response: Response): Promise<ProblemError> {
  let problem: Problem = {
    type: "about:blank",
    status: response.status,
    title: response.statusText,
    detail: "",
  };
  try {
    const text = await response.text();
    const parsed: unknown = text ? JSON.parse(text) : undefined;
    if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) {
      problem = parsed as Problem;
    }
  } catch {
    // not JSON (a proxy's HTML page): the status line is all there is
  }
  const header = response.headers.get("Retry-After");
  const retryAfter = header !== null && /^\d+$/.test(header.trim()) ? Number(header) : undefined;
  const ErrorClass = BY_STATUS[response.status] ?? ProblemError;
  return new ErrorClass(response.status, problem, retryAfter);
}

/** Whether a request that failed this way may succeed if simply tried again later. */
export function isTransient(error: unknown): boolean {
  if (error instanceof NetworkError) return true;
  if (error instanceof RateLimitedError || error instanceof UnavailableError) return true;
  return error instanceof ProblemError && error.status >= 500;
}
