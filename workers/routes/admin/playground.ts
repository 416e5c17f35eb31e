/**
 * The playground: a REAL decision in one environment, as if its secret key had called the decision API with the trace
 * on — it consumes meters and is recorded like any other. What the decision answered, error or not, comes back inside
 * a 200 (`status` + `response`), so a console can show a refused JWT or a failed workflow the way a caller would see
 * it; only the playground call's own failures (body, permission, environment) are errors of this route.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import type { DecisionRequest } from "../../decision/context";
import { runDecision } from "../../decision/pipeline";
import { AccessCheckRequest, SurfaceDecisionRequest } from "../../decision/request";
import { ApiError, errorBody, errorResponses } from "../../errors";
import { decisionBodyLimit } from "../../middleware/decisionBody";
import { EnvironmentIdParam, json, jsonBody, permit, security } from "./shared";

const userAgent = z.string().max(2048).optional().openapi({ description: "The User-Agent of the simulated call (also the visitor's, for bot classification)" });

const PlaygroundRequest = z
  .discriminatedUnion("kind", [
    z.object({ kind: z.literal("access_check"), request: AccessCheckRequest, userAgent }),
    z.object({ kind: z.literal("surface_decision"), request: SurfaceDecisionRequest, userAgent }),
  ])
  .openapi("PlaygroundRequest");

const PlaygroundResponse = z
  .object({
    status: z.number().int().openapi({ description: "The status the decision API would have answered with" }),
    response: z.record(z.string(), z.unknown()).openapi({ description: "Its body: the decision with its `trace`, or the error" }),
  })
  .openapi("PlaygroundResult");

const playgroundRoute = createRoute({
  method: "post",
  path: "/api/v1/admin/environments/{environmentId}/playground",
  tags: ["Decisions"],
  summary: "Run a real decision in an environment, with its trace (it consumes meters and is recorded)",
  security,
  middleware: permit("decisions.test", "environment"),
  request: { params: EnvironmentIdParam, body: jsonBody(PlaygroundRequest) },
  responses: { 200: json(PlaygroundResponse, "What the decision API answered"), ...errorResponses(400, 401, 403, 404, 409, 413) },
});

export function registerPlaygroundRoutes(app: OpenAPIHono<AppEnv>): void {
  // The decision API's body limit, before the route reads the body: a playground call carries one decision request.
  app.use(playgroundRoute.getRoutingPath(), decisionBodyLimit);
  app.openapi(playgroundRoute, async (c) => {
    const { environment } = c.var.target;
    if (!environment.deployedVersionId) {
      throw new ApiError("conflict", `No configuration version is deployed to ${environment.id}: deploy one before trying decisions in it`);
    }
    const { kind, request, userAgent } = c.req.valid("json");
    // Through the isolate's environment cache, as a decision call's key lookup goes: the flush of the record asks that
    // cache whether a live tail is open (services/tenantCache.ts isTailedNow), so an environment read only uncached
    // here would keep its playground decisions from an open tail.
    await c.var.services.lookupEnvironment(environment.id);
    const decision: DecisionRequest = {
      environment,
      keyType: "secret",
      body: request,
      // A secret key's caller forwards the visitor's user agent (X-MOS-User-Agent): the simulated call does both.
      transport: { userAgent, forwardedUserAgent: userAgent },
      kind,
      ...(kind === "surface_decision" ? { surfaceSlug: request.surfaceSlug } : {}),
      trace: true,
    };
    try {
      return c.json({ status: 200, response: await runDecision(c.var.services, decision) }, 200);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      return c.json({ status: error.status, response: errorBody(error, c.var.requestId) }, 200);
    }
  });
}
