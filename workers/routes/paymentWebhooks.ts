/**
 * `POST /api/v1/envs/{environmentId}/payments/stripe/webhooks`: Stripe's webhooks for one environment. No API key —
 * the signature is the credential: the raw body is verified against the environment's webhook signing secret (with
 * Stripe's timestamp tolerance), turned into provider-neutral events and put on the payments queue; the answer comes
 * as soon as the queue has them, and the consumer applies them (workflows/paymentEvents.ts). Stripe redelivers what
 * is not answered 2xx, and the processed-event log makes every redelivery harmless.
 *
 * 400 unsigned, mis-signed or stale (nothing changes); 404 unknown environment or no Stripe connection; 200 with
 * `ignored: true` for an event type the platform does not act on; 503 when the queue did not take the events (Stripe
 * retries).
 */
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../context";
import { ApiError, errorResponses } from "../errors";
import { BodyTooLargeError, readBoundedText } from "../lib/boundedBody";
import { nowIso } from "../lib/ids";
import type { PaymentEventMessage } from "../payments/apply";
import { WebhookPayloadError, WebhookSignatureError } from "../payments/gateway";
import { createStripeGateway } from "../payments/stripe";
import { PaymentConnectionUnreadableError, stripeCredentials } from "../services/paymentConnections";
import { storeOf } from "../services/tenancy";

/** Stripe's event payloads are far smaller; anything larger is not Stripe. */
export const MAX_WEBHOOK_BODY_BYTES = 1024 * 1024;

const WebhookAnswer = z
  .object({
    received: z.literal(true),
    ignored: z.boolean().openapi({ description: "True for an event type the platform does not act on" }),
    events: z.array(z.string()).openapi({ description: "The platform's event types the delivery became, e.g. `subscription.activated`" }),
  })
  .openapi("PaymentWebhookAnswer");

const route = createRoute({
  method: "post",
  path: "/api/v1/envs/{environmentId}/payments/stripe/webhooks",
  tags: ["Payments"],
  summary: "Receive Stripe's webhooks for the environment",
  description:
    "Register this URL as a webhook endpoint in Stripe and give the endpoint's signing secret to the environment's Stripe connection. " +
    "Authenticated by the `Stripe-Signature` header, not an API key. Events are applied on a queue, exactly once and newest state first, whatever order they arrive in.",
  request: {
    params: z.object({ environmentId: z.string().min(1).max(64).openapi({ param: { name: "environmentId", in: "path" }, example: "env_0123456789abcdef" }) }),
  },
  responses: { 200: { content: { "application/json": { schema: WebhookAnswer } }, description: "Accepted" }, ...errorResponses(400, 404, 413, 503) },
});

export function registerPaymentWebhookRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(route, async (c) => {
    const { environmentId } = c.req.valid("param");
    const services = c.var.services;
    const environment = await services.lookupEnvironment(environmentId);
    const notConnected = new ApiError("not_found", `Environment ${environmentId} does not exist or is not connected to Stripe`);
    if (!environment) throw notConnected;
    let credentials;
    try {
      credentials = await stripeCredentials(c.env.DB, c.env.SECRETS_KEY, environment.id);
    } catch (error) {
      if (!(error instanceof PaymentConnectionUnreadableError)) throw error;
      services.logger.warn("payment_connection_unreadable", { environmentId: environment.id });
      throw unavailable("The environment's Stripe connection cannot be read: connect Stripe again");
    }
    if (!credentials) throw notConnected;

    let rawBody: string;
    try {
      rawBody = await readBoundedText(c.req.raw.body, MAX_WEBHOOK_BODY_BYTES, c.req.header("content-length"));
    } catch (error) {
      if (error instanceof BodyTooLargeError) throw new ApiError("payload_too_large", `Webhook body larger than ${MAX_WEBHOOK_BODY_BYTES} bytes`);
      throw error;
    }
    const gateway = createStripeGateway({ secretKey: credentials.secretKey, webhookSecret: credentials.webhookSecret, apiBase: c.env.STRIPE_API_BASE });
    let events;
    try {
      events = await gateway.verifyWebhook(rawBody, c.req.raw.headers);
    } catch (error) {
      if (error instanceof WebhookSignatureError) throw new ApiError("invalid_signature", `Webhook refused: ${error.message}`);
      // Correctly signed but not an event the SDK can read (not JSON), or not in a shape the adapter knows: no use
      // retrying it either.
      if (error instanceof SyntaxError) throw new ApiError("bad_request", "Webhook body is not a JSON event");
      if (error instanceof WebhookPayloadError) throw new ApiError("bad_request", `Webhook refused: ${error.message}`);
      throw error;
    }
    if (events.length === 0) return c.json({ received: true as const, ignored: true, events: [] }, 200);
    // A test-mode endpoint's secret pasted into a live connection (or the reverse) must not mix test data into the store.
    const live = credentials.mode === "live";
    if (events.some((event) => event.livemode !== live)) {
      throw new ApiError("bad_request", `Webhook refused: a ${live ? "test" : "live"}-mode event for an environment connected in ${credentials.mode} mode`);
    }

    const receivedAt = nowIso();
    const messages = events.map((event): { body: PaymentEventMessage } => ({
      body: { organizationId: environment.organizationId, environmentId: environment.id, store: storeOf(environment), event, receivedAt },
    }));
    try {
      await c.env.PAYMENTS.sendBatch(messages);
    } catch (error) {
      services.logger.warn("payment_event_not_enqueued", { environmentId: environment.id, eventId: events[0]!.id, error: String(error) });
      throw unavailable("The webhook could not be queued; Stripe will deliver it again");
    }
    return c.json({ received: true as const, ignored: false, events: events.map((event) => event.type) }, 200);
  });
}

function unavailable(message: string): ApiError {
  const error = new ApiError("payments_unavailable", message);
  error.retryAfterSeconds = 60;
  return error;
}
