import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { IdentityRequest, ResourceRequest } from "../../decision/request";
import { updateCounter } from "../../decision/counterUpdate";
import { errorResponses } from "../../errors";
import { requireAuth } from "../../middleware/auth";
import { decisionBodyLimit } from "../../middleware/decisionBody";
import { json, jsonBody, security } from "../admin/shared";
import { callerOf } from "../transport";

export const CounterUpdateRequest = z
  .object({
    identity: IdentityRequest,
    counterId: z.string().min(1).max(300).openapi({ example: "default:feat_0123456789abcdef.enabled" }),
    update: z
      .number()
      .int()
      .min(-1_000_000)
      .max(1_000_000)
      .optional()
      .openapi({ description: "Units to add (default 1); negative gives units back. The counter never goes below 0." }),
    resourceId: z.string().min(1).max(512).optional().openapi({ description: "Under a unique-resources meter a resource counts once per period" }),
    action: z
      .string()
      .min(1)
      .max(100)
      .optional()
      .openapi({ description: "Credits counters: the action to charge, priced by the property's cost rules (with `resource`)" }),
    resource: ResourceRequest.optional(),
  })
  .openapi("CounterUpdateRequest");

const CounterReading = z
  .object({
    counterId: z.string(),
    hasAccess: z.boolean(),
    consumedUnits: z.number(),
    remainingUnits: z.number(),
    totalUnits: z.number(),
    periodStart: z.string(),
    uniqueResources: z.boolean(),
    resourceIdUsed: z.boolean(),
    consumedInRequest: z.boolean(),
    consumedUnitsInRequest: z.number(),
    excessUnitsInRequest: z.number(),
  })
  .openapi("CounterReading");

const CreditReadingSchema = z
  .object({
    creditId: z.string(),
    hasAccess: z.boolean(),
    balance: z.number(),
    cost: z.number(),
    deductedInRequest: z.boolean(),
    reason: z.literal("insufficient_credits").optional(),
  })
  .openapi("CreditReading");

export const CounterUpdateResponse = z
  .object({ status: z.literal("success"), eventId: z.string(), counter: CounterReading.optional(), credit: CreditReadingSchema.optional() })
  .openapi("CounterUpdateResponse");

const counterUpdateRoute = createRoute({
  method: "post",
  path: "/api/v1/counter-updates",
  tags: ["Decisions"],
  summary: "Add units to (or give units back from) one of the identity's metered counters",
  description:
    "The counter must be a metered property of the identity's plans in the deployed version. An update is never refused " +
    "for being over the limit (the reading says so); the counter never goes below 0. Send an Idempotency-Key header to " +
    "make retries safe: a retry with the same key and body returns the first result and changes nothing.",
  security,
  middleware: [decisionBodyLimit, requireAuth("secret", "publishable")],
  request: {
    headers: z.object({ "idempotency-key": z.string().min(1).max(255).optional() }),
    body: jsonBody(CounterUpdateRequest),
  },
  responses: {
    200: json(CounterUpdateResponse, "The counter after the update"),
    ...errorResponses(400, 401, 403, 404, 409, 413, 422, 503, 531),
  },
});

export function registerCounterUpdateRoute(app: OpenAPIHono<AppEnv>): void {
  app.openapi(counterUpdateRoute, async (c) => {
    const caller = callerOf(c, c.req.valid("json"), "Counters are changed");
    return c.json(await updateCounter(c.var.services, { ...caller, idempotencyKey: c.req.valid("header")["idempotency-key"] }), 200);
  });
}
