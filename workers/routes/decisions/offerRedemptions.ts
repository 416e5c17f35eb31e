/**
 * Offer redemptions: the customer's server redeems an offer token of a surface decision for the identity it was shown
 * to (decision/offerRedemption.ts). Secret key only: the token is short-lived and bound to the identity, but opening
 * checkouts and changing subscriptions is the customer's server's business, as for checkout sessions.
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { connectedPayments } from "../../decision/checkout";
import { redeemOffer } from "../../decision/offerRedemption";
import { IdentityRequest } from "../../decision/request";
import { errorResponses } from "../../errors";
import { requireAuth } from "../../middleware/auth";
import { decisionBodyLimit } from "../../middleware/decisionBody";
import { json, jsonBody, security } from "../admin/shared";
import { callerOf } from "../transport";

const RedirectUrl = (description: string) =>
  z
    .string()
    .min(1)
    .max(2048)
    .optional()
    .openapi({ description: `${description} Defaults to the offer's own; an absolute URL on one of the environment's \`checkout.allowedOrigins\`.` });

export const OfferRedemptionRequest = z
  .object({
    identity: IdentityRequest.openapi({ description: "The identity the offer was shown to (anonymous identities may redeem checkout and workflow offers)" }),
    offerToken: z.string().min(1).max(4096).openapi({ description: "The `token` of an offer of a surface decision (valid 30 minutes)" }),
    successUrl: RedirectUrl("Checkout offers: where Stripe sends the buyer after paying."),
    cancelUrl: RedirectUrl("Checkout offers: where Stripe sends the buyer who goes back."),
    input: z.unknown().optional().openapi({ description: "Workflow offers: the input of the redemption workflow (validated against the offer's schema)" }),
    preview: z.boolean().optional().openapi({ description: "subscription_change offers: only compute the proration; nothing changes" }),
  })
  .openapi("OfferRedemptionRequest");

const OfferRedemptionResponse = z
  .object({
    status: z.literal("success"),
    eventId: z.string().openapi({ description: "The redemption's `started` event (kind offer_redemption)" }),
    identity: z.object({
      authType: z.string(),
      identifier: z.string(),
      isAuthenticated: z.boolean(),
      jwtClaims: z.unknown(),
    }),
    redemption: z.object({
      id: z.string().openapi({ description: "The token's id: one redemption per token" }),
      offer: z.string(),
      variant: z.string().nullable(),
      method: z.enum(["checkout", "subscription_change", "scheduled_change", "workflow"]),
      state: z.enum(["started", "completed"]).openapi({ description: "`completed` once its checkout was paid (payment webhooks) or its change made" }),
    }),
    checkout: z
      .object({ id: z.string(), url: z.string().openapi({ description: "Redirect the buyer there" }), mode: z.enum(["subscription", "payment"]) })
      .optional(),
    subscription: z.object({ id: z.string(), effectiveAt: z.string(), scheduled: z.boolean(), scheduleId: z.string().optional() }).optional(),
    preview: z
      .object({ amountDue: z.number().int(), currency: z.string(), lines: z.array(z.object({ description: z.string().nullable(), amount: z.number().int() })) })
      .optional(),
    result: z.unknown().optional().openapi({ description: "Workflow offers: what the redemption workflow returned" }),
  })
  .openapi("OfferRedemptionResponse");

const redemptionRoute = createRoute({
  method: "post",
  path: "/api/v1/offer-redemptions",
  tags: ["Offers"],
  summary: "Redeem an offer token: open its Stripe Checkout, change the subscription, or run its redemption workflow",
  description:
    "Secret key only. The token must be one of this environment's (400 `invalid_offer_token`), not expired (410 `offer_token_expired`), " +
    "and given to the identity of the request, resolved as decisions resolve it (403 `offer_token_not_yours`); its offer must be deployed " +
    "unchanged (409 `offer_changed`: ask for a new decision — also when the offer's Stripe price is gone, archived or charges another amount). " +
    "Nothing is created for a refused redemption (the method's read-only checks — workflow input, subscription, price — run first). " +
    "Idempotent per token: the same token again answers the same checkout (one Stripe session), a completed redemption its stored result; " +
    "a failed one may be tried again. A workflow offer runs once: a repeat while it runs is 409 `conflict` with Retry-After (retry shortly). " +
    "502 `upstream_error` when Stripe refuses or fails (recorded as a failed redemption); 409 when Stripe refuses the offer's configuration.",
  security,
  middleware: [decisionBodyLimit, requireAuth("secret")],
  request: { body: jsonBody(OfferRedemptionRequest) },
  responses: {
    201: json(OfferRedemptionResponse, "The redemption, and what the client does next (redirect to the checkout's url)"),
    ...errorResponses(400, 401, 403, 404, 409, 410, 413, 502, 503, 531),
  },
});

export function registerOfferRedemptionRoute(app: OpenAPIHono<AppEnv>): void {
  app.openapi(redemptionRoute, async (c) => {
    const caller = callerOf(c, c.req.valid("json"), "Offers are redeemed");
    const services = c.var.services;
    const response = await redeemOffer(services, {
      ...caller,
      secretsKey: c.env.SECRETS_KEY,
      payments: () => connectedPayments(c.env.DB, c.env.SECRETS_KEY, c.env.STRIPE_API_BASE, caller.environment.id, services.logger),
      webhooks: c.env,
    });
    return c.json(response, 201);
  });
}
