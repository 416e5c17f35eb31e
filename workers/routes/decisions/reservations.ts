import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { IdentityRequest, ResourceRequest } from "../../decision/request";
import { DEFAULT_RESERVATION_TTL_SECONDS, reserve, settleReservation } from "../../decision/reservations";
import { errorResponses } from "../../errors";
import { requireAuth } from "../../middleware/auth";
import { decisionBodyLimit } from "../../middleware/decisionBody";
import { json, jsonBody, security } from "../admin/shared";
import { callerOf } from "../transport";
import { CounterUpdateResponse } from "./counterUpdates";

const tags = ["Decisions"];
const CounterReading = CounterUpdateResponse.shape.counter;
const CreditReading = CounterUpdateResponse.shape.credit;

export const ReservationRequest = z
  .object({
    identity: IdentityRequest,
    counterId: z.string().min(1).max(300).openapi({ example: "default:feat_0123456789abcdef.tokens" }),
    amount: z
      .number()
      .positive()
      .max(1_000_000_000)
      .optional()
      .openapi({ description: "Units (an integer ≥ 1) of a metered counter, or credits (> 0) of a credits property — by default the price of `action`" }),
    ttlSeconds: z
      .number()
      .int()
      .min(1)
      .max(3600)
      .optional()
      .openapi({ description: `How long the reservation holds (default ${DEFAULT_RESERVATION_TTL_SECONDS}); unsettled by then, everything goes back` }),
    resourceId: z.string().min(1).max(512).optional().openapi({ description: "Kept on the reservation's record" }),
    action: z.string().min(1).max(100).optional().openapi({ description: "Credits: the action whose price is reserved when `amount` is absent (with `resource`)" }),
    resource: ResourceRequest.optional(),
  })
  .openapi("ReservationRequest");

const ReservationSchema = z
  .object({ id: z.string().openapi({ example: "rsv_0123456789abcdefghij" }), counterId: z.string(), amount: z.number(), expiresAt: z.string() })
  .openapi("Reservation");

export const ReservationResponse = z
  .object({
    status: z.literal("success"),
    eventId: z.string(),
    granted: z.boolean().openapi({ description: "false: no room for the amount; nothing was taken and no reservation exists" }),
    reservation: ReservationSchema.optional(),
    counter: CounterReading,
    credit: CreditReading,
  })
  .openapi("ReservationResponse");

export const ReservationFinalizeRequest = z
  .object({
    identity: IdentityRequest,
    amount: z.number().min(0).max(1_000_000_000).openapi({ description: "The actual usage: units (an integer) or credits" }),
  })
  .openapi("ReservationFinalizeRequest");

const ReservationReleaseRequest = z.object({ identity: IdentityRequest }).openapi("ReservationReleaseRequest");

const SettledReservationSchema = z
  .object({
    id: z.string(),
    reserved: z.number(),
    actual: z.number(),
    refunded: z.number().openapi({ description: "What went back (reserved − actual; 0 for units when the counter's period ended meanwhile)" }),
    charged: z.number().openapi({ description: "What was taken beyond the reservation" }),
    uncovered: z.number().openapi({ description: "What went beyond the reservation and could not be taken (no room under a capped limit, no balance)" }),
    status: z.enum(["finalized", "released"]),
  })
  .openapi("SettledReservation");

export const ReservationSettleResponse = z
  .object({ status: z.literal("success"), eventId: z.string(), reservation: SettledReservationSchema, counter: CounterReading, credit: CreditReading })
  .openapi("ReservationSettleResponse");

const reservationId = z.object({
  reservationId: z.string().min(1).max(64).openapi({ param: { name: "reservationId", in: "path" }, example: "rsv_0123456789abcdefghij" }),
});

const SETTLE_ERRORS =
  "409 `reservation_not_found` (unknown for this identity, or settled more than 24 hours ago), `reservation_expired` (its amount went back: nothing is charged) " +
  "or `reservation_finalized` (already settled otherwise). The reservation id makes a retry safe: the same request answers the first answer again.";

const reserveRoute = createRoute({
  method: "post",
  path: "/api/v1/reservations",
  tags,
  summary: "Reserve units or credits for usage measured afterwards",
  description:
    "Secret key only. Takes `amount` from the identity's counter (room: the limit minus this period's units) or credits balance, in one atomic " +
    "step, and holds it for `ttlSeconds`. No room: 200 with `granted: false` and nothing taken. An `overage: overflow` counter is never refused; " +
    "its units are taken when the reservation is finalized. Send an Idempotency-Key header to make retries safe.",
  security,
  middleware: [decisionBodyLimit, requireAuth("secret")],
  request: {
    headers: z.object({ "idempotency-key": z.string().min(1).max(255).optional() }),
    body: jsonBody(ReservationRequest),
  },
  responses: {
    200: json(ReservationResponse, "The reservation (or the refusal) and the counter or balance after it"),
    ...errorResponses(400, 401, 403, 404, 409, 413, 422, 503, 531),
  },
});

const finalizeRoute = createRoute({
  method: "post",
  path: "/api/v1/reservations/{reservationId}/finalize",
  tags,
  summary: "Settle a reservation on the actual usage",
  description:
    "Secret key only. Less than reserved: the difference goes back. More: the extra is taken as far as the limit (a capped counter) or the " +
    `balance allows — all of it for an overflow counter, billed as overage — and the rest is reported as \`uncovered\`. ${SETTLE_ERRORS}`,
  security,
  middleware: [decisionBodyLimit, requireAuth("secret")],
  request: { params: reservationId, body: jsonBody(ReservationFinalizeRequest) },
  responses: {
    200: json(ReservationSettleResponse, "The settlement and the counter or balance after it"),
    ...errorResponses(400, 401, 403, 404, 409, 413, 503, 531),
  },
});

const releaseRoute = createRoute({
  method: "post",
  path: "/api/v1/reservations/{reservationId}/release",
  tags,
  summary: "Give a reservation back unused",
  description: `Secret key only. Everything reserved goes back (units only within the period they were taken in). ${SETTLE_ERRORS}`,
  security,
  middleware: [decisionBodyLimit, requireAuth("secret")],
  request: { params: reservationId, body: jsonBody(ReservationReleaseRequest) },
  responses: {
    200: json(ReservationSettleResponse, "The release and the counter or balance after it"),
    ...errorResponses(400, 401, 403, 404, 409, 413, 503, 531),
  },
});

export function registerReservationRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(reserveRoute, async (c) => {
    const caller = callerOf(c, c.req.valid("json"), "Reservations are made");
    return c.json(await reserve(c.var.services, { ...caller, idempotencyKey: c.req.valid("header")["idempotency-key"] }), 200);
  });
  app.openapi(finalizeRoute, async (c) => {
    const caller = callerOf(c, c.req.valid("json"), "Reservations are finalized");
    return c.json(await settleReservation(c.var.services, { ...caller, reservationId: c.req.valid("param").reservationId, action: "finalize" }), 200);
  });
  app.openapi(releaseRoute, async (c) => {
    const caller = callerOf(c, c.req.valid("json"), "Reservations are released");
    return c.json(await settleReservation(c.var.services, { ...caller, reservationId: c.req.valid("param").reservationId, action: "release" }), 200);
  });
}
