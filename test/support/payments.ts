/**
 * Payments end to end without the local queue's timing: an environment connected to its own account of the fake
 * Stripe, webhooks signed as Stripe signs them and posted to the platform's route, and the payments queue held here
 * so `deliver()` runs its consumer within the test (no waiting on Miniflare's batch timer).
 */
import type { QueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type Stripe from "stripe";
import type { PaymentEventMessage } from "../../workers/payments/apply";
import { PAYMENT_QUEUE, type PaymentQueueMessage } from "../../workers/workflows/paymentEvents";
import { call, type CallResult, type TestOrganization } from "./api";
import { waitForBackgroundWork } from "./background";
import { holdQueue, queuedMessage, runQueueBatch } from "./queues";
import { createStripeGateway } from "../../workers/payments/stripe";
import { completeCheckout, newStripeKey, stripeApiBase, stripeSignature } from "./stripe";

export interface StripeAccount {
  key: string;
  webhookSecret: string;
}

/** Connects the environment to a fresh account of the fake Stripe (with an optional lifecycle policy and checkout settings). */
export async function connectStripe(
  org: TestOrganization,
  environmentId: string,
  policy?: Record<string, unknown>,
  checkout?: Record<string, unknown>,
): Promise<StripeAccount> {
  const account = { key: newStripeKey(), webhookSecret: `whsec_${crypto.randomUUID().replaceAll("-", "")}` };
  const put = await call("PUT", `/api/v1/admin/environments/${environmentId}/payments/stripe`, {
    key: org.adminKey,
    body: { secretKey: account.key, webhookSecret: account.webhookSecret, ...(policy ? { policy } : {}), ...(checkout ? { checkout } : {}) },
  });
  if (put.status !== 200) throw new Error(`connecting Stripe failed: ${put.status} ${JSON.stringify(put.body)}`);
  return account;
}

export interface TestPurchase {
  priceId: string;
  identifier: string;
  /** Subscription (default) or a one-time payment. */
  mode?: "subscription" | "payment";
  /** An existing Stripe customer to charge. */
  customerId?: string;
  /** A one-time payment by a delayed method: the checkout completes unpaid (settleCheckout pays it). */
  delayed?: boolean;
}

/**
 * Opens a checkout through the platform's Stripe adapter, as the checkout route does for `identifier` in the
 * organization's preview store, and pays it on the fake's hosted page. Returns the completed session and the events
 * Stripe would send.
 */
export async function payOnFakeStripe(account: StripeAccount, organizationId: string, purchase: TestPurchase) {
  const gateway = createStripeGateway({ secretKey: account.key, webhookSecret: account.webhookSecret, apiBase: stripeApiBase() });
  const session = await gateway.createCheckoutSession({
    mode: purchase.mode ?? "subscription",
    priceIds: [purchase.priceId],
    ...(purchase.customerId ? { customerId: purchase.customerId } : {}),
    identifier: purchase.identifier,
    scope: `${organizationId}:preview`,
    successUrl: "https://shop.example/thanks",
    cancelUrl: "https://shop.example/pricing",
    automaticTax: false,
  });
  return completeCheckout(session.id, purchase.delayed ? { delayed: true } : {});
}

export const webhookPath = (environmentId: string) => `/api/v1/envs/${environmentId}/payments/stripe/webhooks`;

/** Posts an event to the environment's webhook route, signed with `secret` as Stripe would (or with the headers given). */
export async function postWebhook(
  environmentId: string,
  event: Stripe.Event | Record<string, unknown>,
  secret: string,
  options: { timestamp?: number; headers?: Record<string, string> } = {},
): Promise<CallResult> {
  const payload = JSON.stringify(event);
  const headers = options.headers ?? { "stripe-signature": await stripeSignature(payload, secret, options.timestamp), "content-type": "application/json" };
  return call("POST", webhookPath(environmentId), { rawBody: payload, headers });
}

export interface CapturedPayments {
  /** Every message the webhook route queued since capture began. */
  readonly sent: PaymentEventMessage[];
  /**
   * Runs the consumer on every message not delivered yet (in batches of 10) — including those it sends meanwhile — or
   * on the next `maxMessages` only; fails when one was retried.
   */
  deliver(options?: { allowRetries?: boolean; maxMessages?: number }): Promise<QueueResult[]>;
  restore(): void;
}

/** Holds what the Worker sends to env.PAYMENTS from now on. */
export function capturePayments(): CapturedPayments {
  const held = holdQueue(env.PAYMENTS as Queue<PaymentEventMessage>);
  return {
    sent: held.sent,
    async deliver({ allowRetries = false, maxMessages = Infinity } = {}) {
      const results: QueueResult[] = [];
      let left = maxMessages;
      while (held.pending > 0 && left > 0) {
        const bodies = held.take(Math.min(10, left));
        left -= bodies.length;
        results.push(await deliverPaymentMessages(bodies));
      }
      await waitForBackgroundWork();
      const retried = results.flatMap((result) => result.retryMessages);
      if (!allowRetries && retried.length > 0) throw new Error(`payment messages were retried: ${JSON.stringify(retried)}`);
      return results;
    },
    restore: () => held.release(),
  };
}

/** Runs the payments consumer on one batch, as the queue would deliver it (`attempts` for retries). */
export function deliverPaymentMessages(bodies: PaymentQueueMessage[], attempts = 1): Promise<QueueResult> {
  return runQueueBatch(PAYMENT_QUEUE, bodies.map((body) => queuedMessage(body, attempts)));
}
