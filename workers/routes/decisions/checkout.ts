/**
 * Stripe Checkout and billing-portal sessions for an identity, opened by the customer's server with the environment's
 * secret key (a browser holding the publishable key could otherwise open checkouts for anyone).
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { connectedPayments, openCheckoutSession, openPortalSession } from "../../decision/checkout";
import { IdentityRequest } from "../../decision/request";
import { errorResponses } from "../../errors";
import { requireAuth } from "../../middleware/auth";
import { decisionBodyLimit } from "../../middleware/decisionBody";
import { json, jsonBody, security } from "../admin/shared";
import { callerOf } from "../transport";

const tags = ["Payments"];

const RedirectUrl = (description: string, example: string) =>
  z.string().min(1).max(2048).openapi({
    example,
    description: `${description} An absolute URL whose origin is one of the environment's \`checkout.allowedOrigins\` (its Stripe connection).`,
  });

export const CheckoutSessionRequest = z
  .object({
    identity: IdentityRequest.openapi({ description: "The signed-in user buying (userIdentifier or userJwt); anonymous identities are refused (403)" }),
    plan: z.string().min(1).max(100).openapi({ example: "premium", description: "Slug of a plan of the deployed version linked to Stripe products (stripeProductIds)" }),
    price: z
      .string()
      .min(1)
      .max(255)
      .regex(/^[A-Za-z0-9_-]+$/, "must be a Stripe price id (price_…)")
      .optional()
      .openapi({
        example: "price_1PqXyZ2eZvKYlo2C",
        description: "An active Stripe price of one of the plan's products. Optional when the plan's products have exactly one active price in total.",
      }),
    successUrl: RedirectUrl(
      "Where Stripe sends the buyer after paying. Stripe's `{CHECKOUT_SESSION_ID}` placeholder is kept as is and filled in by Stripe.",
      "https://shop.example/thanks?session={CHECKOUT_SESSION_ID}",
    ),
    cancelUrl: RedirectUrl("Where Stripe sends the buyer who goes back without paying.", "https://shop.example/pricing"),
  })
  .openapi("CheckoutSessionRequest");

const CheckoutSessionResponse = z
  .object({
    status: z.literal("success"),
    id: z.string().openapi({ example: "cs_test_a1b2c3", description: "The Stripe Checkout Session id" }),
    url: z.string().openapi({ description: "The hosted checkout page: redirect the buyer there" }),
    mode: z.enum(["subscription", "payment"]).openapi({ description: "`subscription` for a recurring price, `payment` for a one-time price" }),
  })
  .openapi("CheckoutSessionResponse");

export const BillingPortalSessionRequest = z
  .object({
    identity: IdentityRequest.openapi({ description: "The signed-in user (userIdentifier or userJwt); anonymous identities are refused (403)" }),
    returnUrl: RedirectUrl("Where the portal's back link leads.", "https://shop.example/account"),
  })
  .openapi("BillingPortalSessionRequest");

const BillingPortalSessionResponse = z
  .object({
    status: z.literal("success"),
    url: z.string().openapi({ description: "The customer's Stripe billing portal (short-lived): redirect the user there" }),
  })
  .openapi("BillingPortalSessionResponse");

const ERRORS_DESCRIPTION =
  "409 when the environment is not connected to Stripe; 502 `upstream_error` when Stripe refuses or fails the request; 503 when the environment's Stripe connection cannot be read.";

const checkoutRoute = createRoute({
  method: "post",
  path: "/api/v1/checkout-sessions",
  tags,
  summary: "Open a Stripe Checkout Session for an identity to buy a plan",
  description:
    "Secret key only. The identity is resolved as decisions resolve it (JWT included) and must be signed in. The price is the given one " +
    "(an active price of one of the plan's Stripe products) or the plan's only active price; its type gives the mode (recurring → " +
    "subscription, one-time → payment). The identity's Stripe customer is reused when it has one; Stripe Tax follows the connection's " +
    "`checkout.automaticTax`. The completed checkout grants the plan through the environment's webhooks. Send an Idempotency-Key header to make " +
    "a double click open one session: the same key (same environment and identity) returns the same session for 24 hours; reusing it with " +
    `another body is a 422. ${ERRORS_DESCRIPTION}`,
  security,
  middleware: [decisionBodyLimit, requireAuth("secret")],
  request: {
    headers: z.object({ "idempotency-key": z.string().min(1).max(255).optional() }),
    body: jsonBody(CheckoutSessionRequest),
  },
  responses: {
    201: json(CheckoutSessionResponse, "The session: redirect the buyer to its url"),
    ...errorResponses(400, 401, 403, 404, 409, 413, 422, 502, 503, 531),
  },
});

const portalRoute = createRoute({
  method: "post",
  path: "/api/v1/billing-portal-sessions",
  tags,
  summary: "Open the Stripe billing portal for an identity",
  description:
    "Secret key only. The identity is resolved as decisions resolve it (JWT included) and must be signed in and have a Stripe customer " +
    `(after a completed checkout, or one set through the admin customers API); otherwise 409. ${ERRORS_DESCRIPTION}`,
  security,
  middleware: [decisionBodyLimit, requireAuth("secret")],
  request: { body: jsonBody(BillingPortalSessionRequest) },
  responses: {
    201: json(BillingPortalSessionResponse, "The portal session: redirect the user to its url"),
    ...errorResponses(400, 401, 403, 404, 409, 413, 502, 503, 531),
  },
});

export function registerCheckoutRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(checkoutRoute, async (c) => {
    const caller = callerOf(c, c.req.valid("json"), "Checkouts are opened");
    const payments = await connectedPayments(c.env.DB, c.env.SECRETS_KEY, c.env.STRIPE_API_BASE, caller.environment.id, c.var.services.logger);
    const idempotencyKey = c.req.valid("header")["idempotency-key"];
    return c.json(await openCheckoutSession(c.var.services, { ...caller, payments, idempotencyKey }), 201);
  });
  app.openapi(portalRoute, async (c) => {
    const caller = callerOf(c, c.req.valid("json"), "Billing portals are opened");
    const payments = await connectedPayments(c.env.DB, c.env.SECRETS_KEY, c.env.STRIPE_API_BASE, caller.environment.id, c.var.services.logger);
    return c.json(await openPortalSession(c.var.services, { ...caller, payments }), 201);
  });
}
