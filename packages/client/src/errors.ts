/**
 * Failures as values. A decision call never throws for what the network or the platform did: it resolves with one of
 * these, so the caller has to decide what a failure means for its page (see `failureMode`) instead of an exception
 * deciding it by accident.
 */
import type { ErrorCode } from "./types";

export type ClientError =
  /** The platform answered with its error shape. */
  | {
      kind: "api";
      status: number;
      code: ErrorCode | (string & {});
      message: string;
      requestId: string | null;
      details?: { path: string; message: string }[];
      /** The `Retry-After` header, in seconds, when the platform sent one. */
      retryAfterSeconds?: number;
    }
  /** No answer within `timeoutMs` (per attempt). */
  | { kind: "timeout"; message: string }
  /** No answer at all: DNS, connection refused or reset, a service binding that threw. */
  | { kind: "network"; message: string; cause: unknown }
  /** The caller's own signal aborted the call. */
  | { kind: "aborted"; message: string }
  /** An answer that is not the platform's: not JSON, not its error shape (a proxy's HTML error page, say), or a 2xx decision without `features`. */
  | { kind: "invalid_response"; status: number; message: string };

/**
 * Whether the failure is the platform being unreachable or broken — what fail-open covers — rather than the caller's
 * mistake (a 4xx: wrong key, invalid body, unknown surface) or a required workflow failing (531, a decision the
 * customer's own configuration made impossible) or the caller giving up (aborted).
 *
 * An answer that is not the platform's counts only with an outage's status (5xx, 429, 408: a load balancer's error
 * page). Any other — a 404 HTML page, a login wall's 200 — is something else answering at `baseUrl`: a
 * misconfiguration that must not fail open forever.
 */
export function isUnavailable(error: ClientError): boolean {
  switch (error.kind) {
    case "network":
    case "timeout":
      return true;
    case "invalid_response":
      return error.status >= 500 || error.status === 429 || error.status === 408;
    case "api":
      return error.status === 429 || (error.status >= 500 && error.status !== WORKFLOW_ERROR_STATUS);
    case "aborted":
      return false;
  }
}

/** A required workflow failed: the platform worked, the customer's configuration could not produce a decision. */
export const WORKFLOW_ERROR_STATUS = 531;

/** `Retry-After` as seconds (delta-seconds or an HTTP date), or undefined when absent or unreadable. */
export function parseRetryAfter(header: string | null, now = Date.now()): number | undefined {
  if (header === null || header.trim() === "") return undefined;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, Math.ceil((date - now) / 1000));
}

/** The ClientError for a non-2xx answer, from its status, headers and body (parsed JSON, or the text when it is not). */
export function errorFromResponse(response: Response, body: unknown): ClientError {
  const retryAfterSeconds = parseRetryAfter(response.headers.get("Retry-After"));
  if (!isErrorShape(body)) {
    const what = response.headers.get("Content-Type") ?? "no content type";
    return { kind: "invalid_response", status: response.status, message: `HTTP ${response.status} without the platform's error shape (${what})` };
  }
  const details = Array.isArray(body.details) ? body.details.filter(isDetail) : undefined;
  return {
    kind: "api",
    status: response.status,
    code: body.code,
    message: body.message,
    requestId: typeof body.requestId === "string" ? body.requestId : response.headers.get("X-Request-Id"),
    ...(details && details.length > 0 ? { details } : {}),
    ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }),
  };
}

function isErrorShape(body: unknown): body is { code: string; message: string; requestId?: unknown; details?: unknown } {
  if (typeof body !== "object" || body === null) return false;
  const candidate = body as Record<string, unknown>;
  return candidate.status === "error" && typeof candidate.code === "string" && typeof candidate.message === "string";
}

function isDetail(value: unknown): value is { path: string; message: string } {
  if (typeof value !== "object" || value === null) return false;
  const candidate = value as Record<string, unknown>;
  return typeof candidate.path === "string" && typeof candidate.message === "string";
}

export function describe(cause: unknown): string {
  if (cause instanceof Error) return cause.message || cause.name;
  return String(cause);
}

/** A failure as one line for an operator's log: the platform's status, code, message and request id, or its kind. */
export function describeError(error: ClientError): string {
  if (error.kind === "api") return `${error.status} ${error.code}: ${error.message}${error.requestId ? ` (request ${error.requestId})` : ""}`;
  return `${error.kind}: ${error.message}`;
}
