import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { runDecision } from "../../decision/pipeline";
import { SurfaceDecisionRequest, SurfaceDecisionResponse } from "../../decision/request";
import { DecisionTraceSchema, TRACE_PARAMETER, tracing } from "../../decision/trace";
import { errorResponses } from "../../errors";
import { sha256Hex } from "../../lib/crypto";
import { requireAuth } from "../../middleware/auth";
import { decisionBodyLimit } from "../../middleware/decisionBody";
import { json, jsonBody, security } from "../admin/shared";
import { callerOf } from "../transport";

const surfaceDecisionRoute = createRoute({
  method: "post",
  path: "/api/v1/surface-decisions",
  tags: ["Decisions"],
  summary: "Everything an access check does, then the surface's behaviour; consumes the surface's meters",
  description: "Send an Idempotency-Key header to make retries safe: a retry with the same key and body consumes nothing more.",
  security,
  parameters: [TRACE_PARAMETER],
  middleware: [decisionBodyLimit, requireAuth("secret", "publishable")],
  request: {
    headers: z.object({ "idempotency-key": z.string().min(1).max(255).optional() }),
    body: jsonBody(SurfaceDecisionRequest),
  },
  responses: {
    200: json(SurfaceDecisionResponse.extend({ trace: DecisionTraceSchema.optional() }), "The decision"),
    ...errorResponses(400, 401, 403, 404, 413, 422, 531),
  },
});

export function registerSurfaceDecisionRoute(app: OpenAPIHono<AppEnv>): void {
  app.openapi(surfaceDecisionRoute, async (c) => {
    const body = c.req.valid("json");
    const idempotencyKey = c.req.valid("header")["idempotency-key"];
    const caller = callerOf(c, body, "Decisions are made");
    const response = await runDecision(c.var.services, {
      ...caller,
      ...tracing(caller, c.req.query("trace")),
      kind: "surface_decision",
      surfaceSlug: body.surfaceSlug,
      idempotencyKey,
      requestHash: idempotencyKey ? await sha256Hex(JSON.stringify(body)) : undefined,
    });
    return c.json(response as typeof response & { surfaceBehavior: {}; componentsSkipped: boolean; componentBehaviors: {}; offers: {} }, 200);
  });
}
