import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { ApiError, errorResponses } from "../../errors";
import { olderThanCursorParts } from "../../lib/keysetPage";
import { eventStoreOf } from "../../services/eventStore";
import { json, permit, security } from "./shared";

const EventSchema = z
  .object({
    id: z.string(),
    environmentId: z.string(),
    kind: z.enum(["access_check", "surface_decision", "counter_update", "admin", "endpoint", "action_failed", "payment", "usage", "offer_redemption"]),
    createdAt: z.string(),
    identifier: z.string().nullable(),
    surfaceSlug: z.string().nullable(),
    outcome: z.string().nullable(),
    record: z.record(z.string(), z.unknown()),
  })
  .openapi("Event");

const listEventsRoute = createRoute({
  method: "get",
  path: "/api/v1/admin/events",
  tags: ["Events"],
  summary: "Decision records and audit entries, newest first, with filters (an environment's key reads its own environment's)",
  security,
  middleware: permit("events.read", "environmentFilter"),
  request: {
    query: z.object({
      environmentId: z.string().optional(),
      kind: z.enum(["access_check", "surface_decision", "counter_update", "admin", "endpoint", "action_failed", "payment", "usage", "offer_redemption"]).optional(),
      identifier: z.string().max(512).optional(),
      surface: z.string().max(100).optional(),
      outcome: z
        .string()
        .regex(/^[a-z_]{1,40}$/, "must be an outcome such as granted, denied, failed, or a payment state (active, past_due, reported, top_up_failed, …)")
        .optional()
        .openapi({ description: "granted, denied or failed for decisions; the new state for payment events; reported / no_customer for usage" }),
      from: z.iso.datetime().optional().openapi({ description: "ISO-8601, inclusive" }),
      to: z.iso.datetime().optional().openapi({ description: "ISO-8601, inclusive" }),
      cursor: z.string().max(200).optional(),
      limit: z.coerce.number().int().min(1).max(500).default(50),
    }),
  },
  responses: {
    200: json(z.object({ events: z.array(EventSchema), nextCursor: z.string().nullable() }), "A page of events"),
    ...errorResponses(400, 401, 403, 404),
  },
});

/** A page cursor (`createdAt|id`, as a previous page answered it) with its instant normalized, or a 400. */
function cursorOf(cursor: string): string {
  const { createdAt, id } = olderThanCursorParts(cursor);
  const at = Date.parse(createdAt);
  if (!cursor.includes("|") || !Number.isFinite(at) || id === "") {
    throw new ApiError("validation_failed", "Invalid request: query.cursor: not a cursor this list answered", [{ path: "query.cursor", message: "not a cursor this list answered" }]);
  }
  return `${new Date(at).toISOString()}|${id}`;
}

export function registerEventRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(listEventsRoute, async (c) => {
    const { organizationId, environmentId } = c.var.target;
    const query = c.req.valid("query");
    const page = await eventStoreOf(c.env).events({
      organizationId,
      environmentId,
      kind: query.kind,
      identifier: query.identifier,
      surfaceSlug: query.surface,
      outcome: query.outcome,
      // As stored (milliseconds, UTC), so bounds and cursors compare as instants in every store, not as strings.
      from: query.from && new Date(query.from).toISOString(),
      to: query.to && new Date(query.to).toISOString(),
      before: query.cursor === undefined ? undefined : cursorOf(query.cursor),
      limit: query.limit,
    });
    return c.json(page, 200);
  });
}
