import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { runDecision } from "../../decision/pipeline";
import { AccessCheckRequest, AccessCheckResponse } from "../../decision/request";
import { DecisionTraceSchema, TRACE_PARAMETER, tracing } from "../../decision/trace";
import { errorResponses } from "../../errors";
import { requireAuth } from "../../middleware/auth";
import { decisionBodyLimit } from "../../middleware/decisionBody";
import { json, jsonBody, security } from "../admin/shared";
import { callerOf } from "../transport";

const accessCheckRoute = createRoute({
  method: "post",
  path: "/api/v1/access-checks",
  tags: ["Decisions"],
  summary: "Who is this, which plans do they hold, and what may they access (consumes nothing)",
  security,
  middleware: [decisionBodyLimit, requireAuth("secret", "publishable")],
  parameters: [TRACE_PARAMETER],
  request: { body: jsonBody(AccessCheckRequest) },
  responses: {
    200: json(AccessCheckResponse.extend({ trace: DecisionTraceSchema.optional() }), "Identity, customer and every feature's state"),
    ...errorResponses(400, 401, 403, 404, 413),
  },
});

export function registerAccessCheckRoute(app: OpenAPIHono<AppEnv>): void {
  app.openapi(accessCheckRoute, async (c) => {
    const caller = callerOf(c, c.req.valid("json"), "Decisions are made");
    return c.json(await runDecision(c.var.services, { ...caller, kind: "access_check", ...tracing(caller, c.req.query("trace")) }), 200);
  });
}
