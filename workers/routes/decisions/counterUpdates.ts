import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { IdentityRequest, ResourceRequest } from "../../decision/request";
import { ApiError, errorResponses } from "../../errors";
import { sha256Hex } from "../../lib/crypto";
import { requireAuth } from "../../middleware/auth";
import { decisionBodyLimit } from "../../middleware/decisionBody";
import { eventIdFor, insertEvent, meterIdempotencyKey } from "../../services/events";
import { counterKind, counterSettingsFor, creditRequestFor, meterCaller, meterRequestFor } from "../../services/meterCaller";
import { enqueueTriggers } from "../../workflows/triggers";
import { json, jsonBody, security } from "../admin/shared";

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
    ...errorResponses(400, 401, 403, 404, 409, 413, 422),
  },
});

export function registerCounterUpdateRoute(app: OpenAPIHono<AppEnv>): void {
  app.openapi(counterUpdateRoute, async (c) => {
    const body = c.req.valid("json");
    const idempotencyKey = c.req.valid("header")["idempotency-key"];
    // A browser holds the publishable key: it may spend units but not give them back (that would reset its own quota).
    const auth = c.get("auth");
    if (auth.kind === "key" && auth.key.type === "publishable" && (body.update ?? 1) < 1) {
      throw new ApiError("forbidden", "Publishable keys may only add units (update ≥ 1); give units back with a secret key");
    }
    const caller = await meterCaller(c, body);
    const requestHash = idempotencyKey ? await sha256Hex(JSON.stringify(body)) : undefined;
    // A retry with the same key gets the same event id: one entry per update, and a response identical to the first.
    const eventId = await eventIdFor(caller.environment.id, { identifier: caller.identity.identifier, authenticated: caller.identity.isAuthenticated }, "counter_update", idempotencyKey);
    const recordUpdate = (outcome: "granted" | "denied", record: Record<string, unknown>) =>
      c.executionCtx.waitUntil(
        insertEvent(c.env.DB, {
          id: eventId,
          organizationId: caller.environment.organizationId,
          environmentId: caller.environment.id,
          kind: "counter_update",
          identifier: caller.identity.identifier,
          outcome,
          record: {
            ...record,
            idempotencyKey: idempotencyKey ?? null,
            identity: { authType: caller.identity.authType, identifier: caller.identity.identifier },
            versionId: caller.prepared.versionId,
          },
        }).catch((error) => {
          if (!(idempotencyKey && String(error).includes("UNIQUE"))) console.error("counter_update event not written", error);
        }),
      );

    if (counterKind(caller, body.counterId) === "credits") {
      // Charging credits: priced by the action, deducted atomically (with the plan's periodic grant), never below 0.
      const credit = creditRequestFor(caller, body.counterId, body.action, body.resource);
      const evaluated = await caller.stubFor(caller.identity.identifier, caller.identity.isAuthenticated).evaluate({
        counters: [],
        credits: [credit],
        timeZone: caller.prepared.snapshot.timeZone,
        idempotencyKey: meterIdempotencyKey(caller.environment.id, "counter_update", idempotencyKey),
        requestHash,
      });
      if ("conflict" in evaluated) throw new ApiError("idempotency_key_reused", "This Idempotency-Key was used with a different request body");
      const reading = evaluated.credits?.[0];
      if (!reading) throw new ApiError("not_found", `Credits ${body.counterId} not found`);
      if (!reading.deductedInRequest && reading.cost > 0) {
        throw new ApiError("insufficient_credits", `Insufficient credits: ${body.action ?? "this action"} costs ${reading.cost}, the balance is ${reading.balance}`);
      }
      recordUpdate("granted", { creditId: body.counterId, action: body.action ?? null, credit: reading });
      return c.json({ status: "success" as const, eventId, credit: reading }, 200);
    }

    const request = meterRequestFor(caller, body.counterId);
    const result = await caller.stubFor(caller.identity.identifier, caller.identity.isAuthenticated).updateCounter({
      counterId: request.counterId,
      period: request.period,
      limit: request.limit,
      uniqueResources: request.uniqueResources,
      timeZone: caller.prepared.snapshot.timeZone,
      update: body.update ?? 1,
      resourceId: body.resourceId,
      idempotencyKey: meterIdempotencyKey(caller.environment.id, "counter_update", idempotencyKey),
      requestHash,
    });
    if ("conflict" in result) throw new ApiError("idempotency_key_reused", "This Idempotency-Key was used with a different request body");
    const reading = result.reading;
    // Like a decision that consumes: counters.updated (plus what middleware fired) reaches action workflows, once per
    // logical request — a replayed retry's triggers are already queued.
    if (!result.replayed) {
      const triggers = [{ name: "counters.updated", payload: { eventId, identifier: caller.identity.identifier, counters: [reading] } }, ...(caller.subject.workflows?.triggers ?? [])];
      // Every counter the caller's plans meter, so the actions' utils.counters work on any of them.
      const limits = counterSettingsFor(caller.prepared, caller.store, caller.subject);
      c.executionCtx.waitUntil(enqueueTriggers(c.env, caller.prepared, caller.environment, caller.identity, triggers, 0, limits));
    }
    recordUpdate(reading.hasAccess ? "granted" : "denied", {
      counterId: request.counterId,
      update: body.update ?? 1,
      resourceId: body.resourceId ?? null,
      counter: reading,
    });
    return c.json({ status: "success" as const, eventId, counter: reading }, 200);
  });
}
