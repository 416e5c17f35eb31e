/**
 * One error class, one error shape. Every failure leaves the API as
 * `{status: "error", statusCode, message, code, requestId, details?}`. Clients of the wire contract rely on the first
 * three; `code`, `requestId` and `details` are additions (docs/public-api.md, "Errors").
 */
import { z } from "@hono/zod-openapi";
import type { ZodError } from "zod";

export const ERROR_STATUS = {
  bad_request: 400,
  invalid_json: 400,
  invalid_yaml: 400,
  validation_failed: 400,
  invalid_identity: 400,
  invalid_signature: 400,
  invalid_offer_token: 400,
  unauthorized: 401,
  invalid_api_key: 401,
  invalid_jwt: 401,
  forbidden: 403,
  forbidden_identity_form: 403,
  rejected_by_workflow: 403,
  offer_token_not_yours: 403,
  not_found: 404,
  organization_not_found: 404,
  surface_not_found: 404,
  conflict: 409,
  offer_changed: 409,
  insufficient_credits: 409,
  reservation_not_found: 409,
  reservation_expired: 409,
  reservation_finalized: 409,
  payment_not_found: 409,
  payment_expired: 409,
  payment_settling: 409,
  payment_settled: 409,
  payment_settlement_failed: 409,
  payment_settlement_unknown: 409,
  offer_token_expired: 410,
  payload_too_large: 413,
  unsupported_media_type: 415,
  idempotency_key_reused: 422,
  payment_above_authorization: 422,
  too_many_requests: 429,
  internal_error: 500,
  upstream_error: 502,
  meter_unavailable: 503,
  payments_unavailable: 503,
  service_unavailable: 503,
  version_unreadable: 503,
  workflow_error: 531,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface ErrorDetail {
  /** JSON path of the offending value, e.g. `plans.premium.features.widget.enabled`. */
  path: string;
  message: string;
}

export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: ErrorDetail[],
    /** A 4xx chosen by customer code (a middleware workflow's `fail`); defaults to the code's status. */
    status?: number,
  ) {
    super(message);
    this.status = status ?? ERROR_STATUS[code];
  }

  /** Seconds a client should wait before retrying (sent as `Retry-After`), for errors that pass. */
  retryAfterSeconds?: number;
}

/**
 * The user's meter object could not be reached (overloaded, restarting, a dropped connection). The runtime cannot
 * always tell whether the object received the call, so the caller is told it may not have been applied and to retry
 * with the same Idempotency-Key. The cause stays in the logs, never in the response.
 */
export function meterUnavailable(overloaded: boolean): ApiError {
  const error = new ApiError("meter_unavailable", "The meter is unavailable: the update may not have been applied; retry with the same Idempotency-Key");
  error.retryAfterSeconds = overloaded ? 5 : 1;
  return error;
}

export const ErrorResponse = z
  .object({
    status: z.literal("error"),
    statusCode: z.number().int().openapi({ example: 400 }),
    message: z.string().openapi({ example: "plans.premium.features.widget: unknown feature widget" }),
    code: z.string().openapi({ example: "validation_failed" }),
    requestId: z.string().openapi({ example: "req_3k2j4h5g6f7d8s9a" }),
    details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .openapi("Error");
export type ErrorResponse = z.infer<typeof ErrorResponse>;

export function errorBody(error: ApiError, requestId: string): ErrorResponse {
  return {
    status: "error",
    statusCode: error.status,
    message: error.message,
    code: error.code,
    requestId,
    ...(error.details?.length ? { details: error.details } : {}),
  };
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else out += out ? `.${String(segment)}` : String(segment);
  }
  return out || "(root)";
}

/** Each zod issue as `{path, message}`; the message of the error lists them all so a client without `details` sees them. */
export function validationError(error: ZodError, prefix: readonly PropertyKey[] = [], code: ErrorCode = "validation_failed"): ApiError {
  const details = error.issues.map((issue) => ({ path: formatPath([...prefix, ...issue.path]), message: issue.message }));
  const summary = details.slice(0, 10).map((d) => `${d.path}: ${d.message}`).join("; ");
  const more = details.length > 10 ? ` (and ${details.length - 10} more)` : "";
  return new ApiError(code, `Invalid request: ${summary}${more}`, details);
}

/** Standard OpenAPI error responses for a route. */
export function errorResponses(...statuses: number[]) {
  const out: Record<number, { description: string; content: { "application/json": { schema: typeof ErrorResponse } } }> = {};
  for (const status of statuses) {
    out[status] = { description: DESCRIPTIONS[status] ?? "Error", content: { "application/json": { schema: ErrorResponse } } };
  }
  return out;
}

const DESCRIPTIONS: Record<number, string> = {
  400: "Invalid JSON or body",
  401: "Invalid or missing API key",
  403: "The key may not do this",
  404: "Not found",
  409: "Conflict with the current state",
  413: "Body larger than allowed",
  422: "Idempotency key reused with a different body",
  429: "Too many at once (e.g. open live tails of an environment)",
  503: "The meter is unavailable (retry after Retry-After seconds), or the deployed version cannot be read by this build: nothing changed",
  531: "Workflow error",
};
