/**
 * The live tail of an environment: its decisions as server-sent events, from the environment's live tail object
 * (durable-objects/live-tail), while the connection stays open.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { MAX_TAILS, PING_INTERVAL_MS } from "../../../durable-objects/live-tail/LiveTailObject";
import { openLiveTail } from "../../../durable-objects/live-tail/client";
import type { AppEnv } from "../../context";
import { ApiError, errorResponses } from "../../errors";
import { forgetEnvironment } from "../../services/tenantCache";
import { EnvironmentIdParam, permit, security } from "./shared";

const tailRoute = createRoute({
  method: "get",
  path: "/api/v1/admin/environments/{environmentId}/tail",
  tags: ["Events"],
  summary: "The environment's decisions as they happen (server-sent events)",
  description:
    `A \`text/event-stream\`: first \`event: ready\`, then one \`event: decision\` per access check or surface decision ` +
    `(\`data\`: id, kind, createdAt, environmentId, identifier, surfaceSlug, outcome, plans, denials, durationMs, versionId), ` +
    `and a \`: ping\` comment every ${PING_INTERVAL_MS / 1000} s. Decisions reach the tail within about a second of being ` +
    `answered (decisions answered by other instances of the Worker: within a few seconds of the tail opening). At most ` +
    `${MAX_TAILS} tails of one environment are open at once.`,
  security,
  middleware: permit("events.read", "environment"),
  request: { params: EnvironmentIdParam },
  responses: {
    200: { description: "The stream of decisions", content: { "text/event-stream": { schema: z.string() } } },
    ...errorResponses(401, 403, 404, 429, 503),
  },
});

export function registerTailRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(tailRoute, async (c) => {
    const { organizationId, environment } = c.var.target;
    let stream: Awaited<ReturnType<typeof openLiveTail>>;
    try {
      stream = await openLiveTail(c.env.LIVE_TAIL, organizationId, environment.id);
    } catch (error) {
      console.warn(JSON.stringify({ event: "live_tail_not_opened", environmentId: environment.id, error: String(error) }));
      const unavailable = new ApiError("service_unavailable", "The live tail could not be opened; retry in a moment");
      unavailable.retryAfterSeconds = 1;
      throw unavailable;
    }
    if (stream === "full") {
      throw new ApiError("too_many_requests", `Environment ${environment.id} already has ${MAX_TAILS} open live tails: close one first`);
    }
    // The lease is set: this isolate's next lookup of the environment reads it, so its own decisions reach the tail at once.
    forgetEnvironment(environment.id);
    return new Response(stream, {
      status: 200,
      headers: { "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no" },
    });
  });
}
