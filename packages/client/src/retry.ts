/**
 * When to try again, how long to wait, and the per-attempt deadline. Only web standards (AbortController, setTimeout),
 * so the same code runs in Workers, Node, Deno, Bun and browsers — no AbortSignal.any / AbortSignal.timeout, which
 * older runtimes (Node 18, Safari 16) lack.
 */
import { WORKFLOW_ERROR_STATUS, type ClientError } from "./errors";

/** Statuses worth another attempt: overload and transient server failures. 531 (a required workflow failed) is not one. */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([429, 500, 502, 503, 504]);

/** The longest the client waits between attempts, whatever `Retry-After` asks: a decision is on a page's path. */
export const MAX_RETRY_DELAY_MS = 5_000;

export interface RetryPolicy {
  /** Extra attempts after the first. */
  retries: number;
  /** Backoff unit: the n-th retry waits a random time in [0, base × 2^n) ("full jitter"), unless Retry-After says. */
  baseDelayMs: number;
  /** Per attempt. */
  timeoutMs: number;
}

/**
 * Whether a failed decision call may be sent again. Every decision call the client makes is safe to repeat (access
 * checks consume nothing; the others carry an Idempotency-Key or are idempotent per offer token), so this only asks
 * whether trying again can help. `conflictsRetry`: offer redemptions answer 409 with Retry-After while the same token
 * is in progress, which clears by itself.
 */
export function isRetryable(error: ClientError, conflictsRetry = false): boolean {
  switch (error.kind) {
    case "network":
    case "timeout":
      return true;
    case "aborted":
      return false;
    case "invalid_response":
      // A load balancer's HTML 502/503 page is as transient as the platform's own; a 200 with a broken body is not.
      return RETRYABLE_STATUSES.has(error.status);
    case "api":
      if (error.status === WORKFLOW_ERROR_STATUS) return false;
      if (conflictsRetry && error.status === 409 && error.retryAfterSeconds !== undefined) return true;
      return RETRYABLE_STATUSES.has(error.status);
  }
}

/**
 * The wait before retry number `retry` (0 for the first retry): the server's Retry-After when it sent one, else
 * exponential backoff with full jitter (so clients that failed together do not come back together); at most
 * MAX_RETRY_DELAY_MS either way.
 */
export function retryDelayMs(retry: number, baseDelayMs: number, retryAfterSeconds?: number, random: () => number = Math.random): number {
  if (retryAfterSeconds !== undefined) return Math.min(retryAfterSeconds * 1000, MAX_RETRY_DELAY_MS);
  return Math.min(Math.floor(random() * baseDelayMs * 2 ** retry), MAX_RETRY_DELAY_MS);
}

/** Waits `ms`; resolves false at once when `signal` aborts (the caller gave up: no point waiting to retry). */
export function sleep(ms: number, signal?: AbortSignal | null): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** One attempt's signal: aborted by its timeout or by the caller's signal, whichever comes first. */
export interface AttemptDeadline {
  readonly signal: AbortSignal;
  /** What aborted the attempt, if anything did. */
  readonly endedBy: () => "timeout" | "caller" | null;
  /**
   * Rejects when the attempt's signal aborts. Raced against the fetch, because a fetch implementation may ignore
   * signals (an in-process Worker, a test double) and the deadline must hold anyway.
   */
  readonly aborted: Promise<never>;
  /** The answer arrived: no more timeout, but the caller's signal still aborts what follows (a streamed body). */
  stopTimer(): void;
  /** Done with the attempt: stop listening to the caller's signal too. */
  release(): void;
}

export function attemptDeadline(timeoutMs: number, callerSignal?: AbortSignal | null): AttemptDeadline {
  const controller = new AbortController();
  let endedBy: "timeout" | "caller" | null = null;
  let rejectAborted: (reason: unknown) => void = () => {};
  const aborted = new Promise<never>((_, reject) => {
    rejectAborted = reject;
  });
  // Nobody may be racing it any more when it rejects; an unobserved rejection must not be reported as unhandled.
  aborted.catch(() => {});
  const end = (by: "timeout" | "caller", reason: unknown) => {
    if (endedBy !== null) return;
    endedBy = by;
    controller.abort(reason);
    rejectAborted(reason);
  };
  const onCallerAbort = () => end("caller", callerSignal?.reason ?? abortError("The operation was aborted", "AbortError"));
  const timer = setTimeout(() => end("timeout", abortError(`No answer within ${timeoutMs} ms`, "TimeoutError")), timeoutMs);
  if (callerSignal?.aborted) onCallerAbort();
  else callerSignal?.addEventListener("abort", onCallerAbort, { once: true });
  return {
    signal: controller.signal,
    endedBy: () => endedBy,
    aborted,
    stopTimer: () => clearTimeout(timer),
    release: () => {
      clearTimeout(timer);
      callerSignal?.removeEventListener("abort", onCallerAbort);
    },
  };
}

function abortError(message: string, name: "AbortError" | "TimeoutError"): Error {
  // DOMException is what fetch rejects with for aborts everywhere; fall back for a runtime without it.
  if (typeof DOMException === "function") return new DOMException(message, name);
  return Object.assign(new Error(message), { name });
}
