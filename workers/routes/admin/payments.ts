/** An environment's Stripe connection: its keys go in encrypted and never come back out. */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context";
import { ApiError, errorResponses } from "../../errors";
import { MAX_PAST_DUE_GRACE_HOURS } from "../../payments/lifecycle";
import { forgetPaymentConnection } from "../../payments/lookup";
import {
  checkoutOriginProblem,
  deletePaymentConnection,
  getPaymentConnection,
  MAX_ALLOWED_ORIGINS,
  putStripeConnection,
  STRIPE_SECRET_KEY_PATTERN,
  STRIPE_WEBHOOK_SECRET_PATTERN,
} from "../../services/paymentConnections";
import { EnvironmentIdParam, json, jsonBody, permit, security } from "./shared";

const tags = ["Payments"];
const path = "/api/v1/admin/environments/{environmentId}/payments/stripe";

const PaymentConnectionSchema = z
  .object({
    provider: z.literal("stripe"),
    mode: z.enum(["test", "live"]).openapi({ description: "`test` for a preview environment, `live` for a production one" }),
    keyHint: z.string().openapi({ example: "sk_test_…abcd", description: "The key's type, mode and last four characters" }),
    webhookSecretSet: z.literal(true),
    webhookUrl: z.string().openapi({
      example: "/api/v1/envs/env_0123456789abcdef/payments/stripe/webhooks",
      description:
        "Path, below the platform's base URL, to register as the environment's webhook endpoint in Stripe (events: customer.subscription.*, checkout.session.completed, checkout.session.async_payment_succeeded, invoice.paid, invoice.payment_failed, charge.refunded, charge.dispute.created).",
    }),
    policy: z.lazy(() => PolicySchema),
    checkout: z.lazy(() => CheckoutSettingsSchema),
    connectedAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("PaymentConnection", { description: "An environment's Stripe connection. Its secret key and webhook secret are never returned." });

const PolicySchema = z
  .object({
    pastDueGraceHours: z.number().int().min(0).max(MAX_PAST_DUE_GRACE_HOURS).openapi({
      example: 72,
      description: "How long a past_due subscription keeps its plans after its payment failed (hours; default 72)",
    }),
    revokeOnRefund: z.boolean().openapi({ description: "A one-time purchase refunded in full loses its plans (default true)" }),
    revokeOnDispute: z.boolean().openapi({
      description: "A dispute (chargeback) takes away what the disputed payment bought and suspends the customer's subscriptions (default true)",
    }),
  })
  .openapi("PaymentPolicy", { description: "What past_due, refunds and disputes do to access" });

const CheckoutOrigin = z
  .string()
  .max(300)
  .superRefine((value, ctx) => {
    const problem = checkoutOriginProblem(value);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  })
  .openapi({ example: "https://shop.example" });

const CheckoutSettingsSchema = z
  .object({
    allowedOrigins: z
      .array(CheckoutOrigin)
      .max(MAX_ALLOWED_ORIGINS)
      .openapi({
        example: ["https://shop.example", "http://localhost:5173"],
        description:
          `Origins that checkout success/cancel URLs and billing-portal return URLs must belong to (at most ${MAX_ALLOWED_ORIGINS}): ` +
          "exact `https://host[:port]` origins, or `http://localhost[:port]` / `http://127.0.0.1[:port]` for development. " +
          "Stored as browsers write them (lowercase host, no default port). Empty (the default) refuses every URL, so no checkout can be opened.",
      }),
    automaticTax: z.boolean().openapi({
      description: "Stripe Tax on every Checkout Session (default true; Stripe Tax must be set up in the Stripe account)",
    }),
  })
  .openapi("CheckoutSettings", { description: "How the environment opens Checkout and billing-portal sessions" });

const ConnectStripeBody = z.object({
  secretKey: z
    .string()
    .regex(STRIPE_SECRET_KEY_PATTERN, "must be a Stripe secret or restricted key: sk_test_… or rk_test_… (preview), sk_live_… or rk_live_… (production)")
    .openapi({ example: "sk_test_…", description: "Test-mode for a preview environment, live-mode for a production one. Stored encrypted." }),
  webhookSecret: z
    .string()
    .regex(STRIPE_WEBHOOK_SECRET_PATTERN, "must be a Stripe webhook signing secret (whsec_…)")
    .openapi({ example: "whsec_…", description: "The signing secret of the webhook endpoint registered at `webhookUrl`. Stored encrypted." }),
  policy: PolicySchema.partial().optional().openapi({ description: "Fields left out keep their current value (the defaults on a first connection)" }),
  checkout: CheckoutSettingsSchema.partial()
    .optional()
    .openapi({ description: "Fields left out keep their current value (the defaults on a first connection: no allowed origin, automatic tax on)" }),
});

const routes = {
  put: createRoute({
    method: "put",
    path,
    tags,
    summary: "Connect the environment to Stripe, or replace its keys",
    description:
      "A preview environment takes test-mode keys and a production environment live-mode keys; a mismatch is a 400. The keys are encrypted at rest and never returned. Register `webhookUrl` as a webhook endpoint in Stripe.",
    security,
    middleware: permit("payments.write", "environment"),
    request: { params: EnvironmentIdParam, body: jsonBody(ConnectStripeBody) },
    responses: { 200: json(PaymentConnectionSchema, "The connection, without its secrets"), ...errorResponses(400, 401, 403, 404) },
  }),
  get: createRoute({
    method: "get",
    path,
    tags,
    summary: "The environment's Stripe connection (never its secrets); 404 when it has none",
    security,
    middleware: permit("payments.read", "environment"),
    request: { params: EnvironmentIdParam },
    responses: { 200: json(PaymentConnectionSchema, "The connection, without its secrets"), ...errorResponses(401, 403, 404) },
  }),
  remove: createRoute({
    method: "delete",
    path,
    tags,
    summary: "Disconnect the environment from Stripe (its stored keys are deleted)",
    security,
    middleware: permit("payments.write", "environment"),
    request: { params: EnvironmentIdParam },
    responses: { 204: { description: "Disconnected" }, ...errorResponses(401, 403, 404) },
  }),
};

const notConnected = (environmentId: string) => new ApiError("not_found", `Environment ${environmentId} is not connected to Stripe`);

export function registerPaymentRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(routes.put, async (c) => {
    const connection = await putStripeConnection(c.env.DB, c.env.SECRETS_KEY, c.var.target.environment, c.req.valid("json"));
    // This isolate's real-time lookups start at once; other isolates learn of it within a minute.
    forgetPaymentConnection(c.var.target.environment.id);
    return c.json(connection, 200);
  });
  app.openapi(routes.get, async (c) => {
    const environmentId = c.var.target.environment.id;
    const connection = await getPaymentConnection(c.env.DB, environmentId);
    if (!connection) throw notConnected(environmentId);
    return c.json(connection, 200);
  });
  app.openapi(routes.remove, async (c) => {
    const environmentId = c.var.target.environment.id;
    if (!(await deletePaymentConnection(c.env.DB, environmentId))) throw notConnected(environmentId);
    forgetPaymentConnection(environmentId);
    return c.body(null, 204);
  });
}
