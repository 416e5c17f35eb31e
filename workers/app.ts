/**
 * Builds the Hono application: request ids (hono/request-id), the request's Services, the single error shape, and the
 * OpenAPI document. Routes register themselves from their own modules (see routes/index.ts).
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import { HTTPException } from "hono/http-exception";
import type { AppEnv } from "./context";
import { ApiError, errorBody, validationError } from "./errors";
import { requestId } from "hono/request-id";
import { ZodError } from "zod";
import { newId } from "./lib/ids";
import { isForeignKeyError } from "./lib/d1Errors";
import { servicesMiddleware, type ServiceOverrides } from "./middleware/services";

export function createRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    // zod-openapi calls this when a request part fails its schema; the error lists each path.
    defaultHook: (result) => {
      if (!result.success) {
        const prefix = result.target === "json" ? [] : [result.target];
        throw validationError(result.error, prefix);
      }
    },
  });
}

/**
 * 5xx answers that are no platform fault, so not logged as errors: customer code failing (531, recorded on its event
 * and logged as a warning where it failed) and dependencies that will pass, answered with Retry-After (the meter, the
 * payments queue; logged as warnings where they failed).
 */
const EXPECTED_FAILURES: ReadonlySet<string> = new Set(["workflow_error", "meter_unavailable", "payments_unavailable"]);

/** `overrides` replace services for tests (a failing meter, a fixed clock); production passes none. */
export function createApp(overrides: ServiceOverrides = {}): OpenAPIHono<AppEnv> {
  const app = createRouter();

  // Always our own id (`req_…`): a caller's X-Request-Id is not trusted into logs and audit records. The header is set
  // after the handler, so it reaches raw Responses too (endpoint workflows) and overrides one a workflow set.
  app.use("*", requestId({ generator: () => newId("req"), headerName: "" }));
  app.use("*", async (c, next) => {
    await next();
    c.res.headers.set("X-Request-Id", c.var.requestId);
  });
  app.use("*", servicesMiddleware(overrides));

  app.onError((error, c) => {
    const requestId = c.get("requestId") ?? newId("req");
    const apiError = toApiError(error);
    if (apiError.status >= 500 && !EXPECTED_FAILURES.has(apiError.code)) console.error(`[${requestId}]`, error);
    const headers: Record<string, string> = { "X-Request-Id": requestId };
    if (apiError.retryAfterSeconds !== undefined) headers["Retry-After"] = String(apiError.retryAfterSeconds);
    return c.json(errorBody(apiError, requestId), apiError.status as 400, headers);
  });

  app.notFound((c) => {
    const requestId = c.get("requestId") ?? newId("req");
    return c.json(errorBody(new ApiError("not_found", `No route for ${c.req.method} ${new URL(c.req.url).pathname}`), requestId), 404);
  });

  return app;
}

export function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof HTTPException) {
    // Hono's validator raises this for a body that is not JSON; body-limit for one that is too large.
    if (error.status === 413) return new ApiError("payload_too_large", error.message || "Request body too large");
    if (error.status === 400) return new ApiError("invalid_json", error.message || "Invalid JSON body");
    if (error.status === 401) return new ApiError("unauthorized", error.message || "Unauthorized");
    if (error.status === 415) return new ApiError("unsupported_media_type", "Unsupported media type: send application/json");
    return new ApiError(error.status >= 500 ? "internal_error" : "bad_request", error.message);
  }
  if (error instanceof ZodError) return validationError(error);
  // D1 refuses a row whose parent another request deleted meanwhile (e.g. a key created while its environment is
  // deleted): the request lost a race, it did not break anything.
  if (isForeignKeyError(error)) {
    return new ApiError("conflict", "Something this request refers to was deleted by another request; read it again and retry");
  }
  return new ApiError("internal_error", "Internal error");
}
