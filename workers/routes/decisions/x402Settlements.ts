import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { IdentityRequest } from "../../decision/request";
import { settleX402Payment } from "../../decision/x402Settlement";
import { errorResponses } from "../../errors";
import { requireAuth } from "../../middleware/auth";
import { decisionBodyLimit } from "../../middleware/decisionBody";
import { json, jsonBody, security } from "../admin/shared";
import { callerOf } from "../transport";

export const X402SettlementRequest = z
  .object({
    identity: IdentityRequest.optional().openapi({ description: "The identity the decision was made for (exactly one of `identity` and `agent`)" }),
    agent: z
      .string()
      .min(1)
      .max(2048)
      .optional()
      .openapi({ example: "https://crawler.example", description: "A verified agent's operator (its Signature-Agent origin), when the decision answered `identity.authType: \"agent\"`" }),
    amount: z.string().min(1).max(32).openapi({ example: "USD 0.004", description: "The actual cost, from `USD 0` to the payment's `maxAmount`" }),
  })
  .refine((body) => (body.identity === undefined) !== (body.agent === undefined), { message: "exactly one of identity and agent", path: ["identity"] })
  .openapi("X402SettlementRequest");

export const X402SettlementResponse = z
  .object({
    status: z.literal("success"),
    eventId: z.string(),
    payment: z.object({
      id: z.string().openapi({ example: "pay_0123456789abcdefghij" }),
      method: z.literal("x402"),
      scheme: z.literal("upto"),
      status: z.enum(["settled", "released"]).openapi({ description: "`released`: 0 was settled, nothing charged" }),
      amount: z.string().openapi({ example: "USD 0.004" }),
      maxAmount: z.string().openapi({ example: "USD 0.01" }),
      transaction: z.string().optional().openapi({ description: "The facilitator's transaction (absent when nothing was charged)" }),
      settledAt: z.string(),
    }),
  })
  .openapi("X402SettlementResponse");

const settleRoute = createRoute({
  method: "post",
  path: "/api/v1/x402-settlements/{paymentId}",
  tags: ["Decisions"],
  summary: "Settle an x402 upto payment for the actual cost",
  description:
    "Secret key only. A surface decision granted on an x402 `upto` payment names it in `payment`; settle it here once the cost is known " +
    "(0 releases it, nothing charged). The amount is settled through the environment's facilitator and booked on the identity's charges ledger. " +
    "409 `payment_not_found` (unknown for this identity or agent), `payment_expired` (released unsettled: nothing charged), `payment_settling` " +
    "(another call is settling it), `payment_settled` (settled for another amount), `payment_settlement_failed` (the facilitator refused; nothing " +
    "charged); 422 `payment_above_authorization`; 503 when the facilitator could not be used (nothing charged; retry). The payment id makes a " +
    "retry safe: the same amount answers the first answer again.",
  security,
  middleware: [decisionBodyLimit, requireAuth("secret")],
  request: {
    params: z.object({ paymentId: z.string().min(1).max(64).openapi({ param: { name: "paymentId", in: "path" }, example: "pay_0123456789abcdefghij" }) }),
    body: jsonBody(X402SettlementRequest),
  },
  responses: {
    200: json(X402SettlementResponse, "The settlement"),
    ...errorResponses(400, 401, 403, 404, 409, 413, 422, 503, 531),
  },
});

export function registerX402SettlementRoute(app: OpenAPIHono<AppEnv>): void {
  app.openapi(settleRoute, async (c) => {
    const body = c.req.valid("json");
    const caller = callerOf(c, { ...body, identity: body.identity }, "x402 payments are settled");
    return c.json(await settleX402Payment(c.var.services, { ...caller, paymentId: c.req.valid("param").paymentId }), 200);
  });
}
