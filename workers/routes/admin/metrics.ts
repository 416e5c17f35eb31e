/** An environment's decision metrics per step (a minute to an hour, by the range), from the event store: D1's per-minute rollups or Analytics Engine (services/eventStore.ts). */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { ApiError, errorResponses } from "../../errors";
import { eventStoreOf } from "../../services/eventStore";
import { EnvironmentIdParam, json, permit, security } from "./shared";

const DEFAULT_RANGE_MS = 60 * 60 * 1000;
const MAX_RANGE_MS = 7 * 24 * 60 * 60 * 1000;

const count = z.number().int();
const MetricsSchema = z
  .object({
    from: z.string(),
    to: z.string(),
    step: z.number().int().openapi({ description: "The width of each series point in seconds: 60 up to a 6-hour range, 300 up to a day, 3600 beyond" }),
    series: z
      .array(
        z.object({
          minute: z.string(),
          decisions: count,
          accessChecks: count,
          surfaceDecisions: count,
          denied: count,
          meterFallbacks: count,
          workflowFailures: count,
          offerImpressions: count,
        }),
      )
      .openapi({
        description:
          "One point per step of the range, oldest first: `minute` is the step's start (steps are aligned on multiples of the step since the epoch), each count the sum over the step (steps without decisions are zeros)",
      }),
    denials: z
      .array(z.object({ featureSlug: z.string(), property: z.string(), reason: z.string(), count }))
      .openapi({ description: "Denied properties over the range, largest first (at most 100)" }),
    workflowFailures: z.array(z.object({ kind: z.string(), count })).openapi({ description: "Failed workflow runs by kind, largest first" }),
    stageLatency: z
      .array(z.object({ stage: z.string(), count, p50: z.number(), p95: z.number(), p99: z.number() }))
      .openapi({ description: "Per decision stage: runs and percentiles (ms), each the upper bound of the latency bucket it falls in" }),
  })
  .openapi("EnvironmentMetrics");

const metricsRoute = createRoute({
  method: "get",
  path: "/api/v1/admin/environments/{environmentId}/metrics",
  tags: ["Events"],
  summary: "Decision metrics of the environment per minute: counts, denials, workflow failures, meter fallbacks, offer impressions, stage latencies",
  security,
  middleware: permit("events.read", "environment"),
  request: {
    params: EnvironmentIdParam,
    query: z.object({
      from: z.iso.datetime().optional().openapi({ description: "ISO-8601; default: an hour before `to`. A time still to come answers zeros" }),
      to: z.iso.datetime().optional().openapi({ description: "ISO-8601; default: an hour after `from` when it is given, now otherwise. At most 7 days after `from`" }),
    }),
  },
  responses: { 200: json(MetricsSchema, "The environment's metrics over the range"), ...errorResponses(400, 401, 403, 404) },
});

export function registerMetricsRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(metricsRoute, async (c) => {
    const { environment } = c.var.target;
    const query = c.req.valid("query");
    // A `from` alone is the hour from it, even one still to come (its minutes hold no decisions yet: zeros).
    const to = query.to ? Date.parse(query.to) : query.from ? Date.parse(query.from) + DEFAULT_RANGE_MS : Date.now();
    const from = query.from ? Date.parse(query.from) : to - DEFAULT_RANGE_MS;
    if (from >= to) throw new ApiError("validation_failed", "Invalid request: query.from: must be before to", [{ path: "query.from", message: "must be before to" }]);
    if (to - from > MAX_RANGE_MS) {
      throw new ApiError("validation_failed", "Invalid request: query.to: the range is at most 7 days", [{ path: "query.to", message: "the range is at most 7 days" }]);
    }
    const metrics = await eventStoreOf(c.env).metrics({
      organizationId: environment.organizationId,
      environmentId: environment.id,
      from: new Date(from).toISOString(),
      to: new Date(to).toISOString(),
    });
    return c.json(metrics, 200);
  });
}
