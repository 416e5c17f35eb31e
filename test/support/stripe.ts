/**
 * Helpers for tests that involve Stripe: every test run has a local fake Stripe (test/fake-stripe/server.mjs) whose
 * URL the Worker sees as STRIPE_API_BASE. Its state is scoped by secret key, as Stripe scopes it by account, so a test
 * takes its own key (`newStripeKey()`) and sees only what it created.
 */
import { env } from "cloudflare:workers";
import Stripe from "stripe";

/** The fake's base URL, e.g. `http://127.0.0.1:40123` (vitest.config.ts binds it; the wrangler default is empty). */
export function stripeApiBase(): string {
  const base = (env as unknown as Record<string, unknown>).STRIPE_API_BASE;
  if (typeof base !== "string" || !base.startsWith("http://127.0.0.1:")) {
    throw new Error(`STRIPE_API_BASE is ${JSON.stringify(base)}, not the fake Stripe started by test/fake-stripe/global-setup.ts`);
  }
  return base;
}

/** A secret key of a Stripe account of its own. */
export function newStripeKey(): string {
  return `sk_test_${crypto.randomUUID().replaceAll("-", "")}`;
}

export interface FakeStripeInit {
  method?: string;
  /** The account the call is about (seeding, reading recorded requests). */
  key?: string;
  /** Sent as JSON. */
  body?: unknown;
}

/** Calls the fake's control API (`/__control/<path>`, not Stripe's); throws unless it answers 2xx. */
export async function fakeStripe<T = unknown>(path: string, init: FakeStripeInit = {}): Promise<T> {
  const headers: Record<string, string> = {};
  if (init.key) headers.authorization = `Bearer ${init.key}`;
  if (init.body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${stripeApiBase()}/__control/${path.replace(/^\//, "")}`, {
    method: init.method ?? (init.body === undefined ? "GET" : "POST"),
    headers,
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`fake Stripe ${path}: ${response.status} ${text}`);
  return JSON.parse(text) as T;
}

export interface SeedPriceOptions {
  /** In the currency's smallest unit. */
  unitAmount?: number;
  currency?: string;
  /** A recurring price by default; null for a one-time price. */
  interval?: "day" | "week" | "month" | "year" | null;
  trialPeriodDays?: number;
  lookupKey?: string;
}

/** Creates a product and one price for it in the account of `key`. */
export async function seedPrice(key: string, product: string, options: SeedPriceOptions = {}): Promise<{ product: Stripe.Product; price: Stripe.Price }> {
  const interval = options.interval === undefined ? "month" : options.interval;
  const { product: created, prices } = await fakeStripe<{ product: Stripe.Product; prices: Stripe.Price[] }>("products", {
    key,
    body: {
      name: product,
      prices: [
        {
          currency: options.currency ?? "usd",
          unit_amount: options.unitAmount ?? 1000,
          lookup_key: options.lookupKey,
          recurring: interval === null ? undefined : { interval, trial_period_days: options.trialPeriodDays },
        },
      ],
    },
  });
  return { product: created, price: prices[0]! };
}

/** Creates `count` customers (`customer-<i>@example.com`) in the account of `key`, for pagination tests. */
export async function seedCustomers(key: string, count: number): Promise<Stripe.Customer[]> {
  const { data } = await fakeStripe<{ data: Stripe.Customer[] }>("customers", { key, body: { count } });
  return data;
}

/** A delayed payment (completeCheckout with `delayed: true`) settles: returns checkout.session.async_payment_succeeded. */
export function settleCheckout(sessionId: string): Promise<{ session: Stripe.Checkout.Session; events: Stripe.Event[] }> {
  return fakeStripe(`checkout/sessions/${encodeURIComponent(sessionId)}/settle`, { body: {} });
}

export interface CompleteCheckoutOptions {
  /** One-time checkouts: paid by a delayed method, so the checkout completes unpaid until settleCheckout. */
  delayed?: boolean;
  /** Of the subscription a subscription-mode session creates. */
  status?: "active" | "trialing";
  /** Of the customer created when the session had none. */
  email?: string;
  name?: string;
}

/**
 * Does what Stripe does when the buyer pays on the hosted page: creates the customer if the session had none and, in
 * subscription mode, the subscription. Returns the events Stripe would send, in order (customer.created,
 * customer.subscription.created, checkout.session.completed), for a test to sign and post as webhooks.
 */
export function completeCheckout(sessionId: string, options: CompleteCheckoutOptions = {}): Promise<{ session: Stripe.Checkout.Session; events: Stripe.Event[] }> {
  return fakeStripe(`checkout/sessions/${encodeURIComponent(sessionId)}/complete`, { body: options });
}

export interface RecordedStripeRequest {
  method: string;
  path: string;
  query: Record<string, unknown>;
  body: Record<string, unknown> | null;
  idempotencyKey: string | null;
  stripeVersion: string | null;
}

/** The Stripe API requests made with `key`, oldest first. */
export async function stripeRequests(key: string): Promise<RecordedStripeRequest[]> {
  const { data } = await fakeStripe<{ data: RecordedStripeRequest[] }>("requests", { key });
  return data;
}

/**
 * A `Stripe-Signature` header for `payload`, as Stripe signs webhooks (HMAC-SHA256 of `<timestamp>.<payload>`), made by
 * the SDK's own test helper.
 */
export function stripeSignature(payload: string, secret: string, timestamp = Math.floor(Date.now() / 1000)): Promise<string> {
  return Stripe.webhooks.generateTestHeaderStringAsync({ payload, secret, timestamp, cryptoProvider: Stripe.createSubtleCryptoProvider() });
}

export type SettableSubscriptionStatus = "active" | "trialing" | "past_due" | "unpaid" | "paused" | "incomplete";

/** Stripe's own field names, as a Dashboard or API update would set them. */
export interface SubscriptionChanges {
  status?: SettableSubscriptionStatus;
  /** true also sets `cancel_at` to the period's end and `canceled_at` to now; false clears both. */
  cancel_at_period_end?: boolean;
  /** Unix seconds; sets every item's `current_period_end`. */
  current_period_end?: number;
  /** Replaces the items (an upgrade or downgrade); the item at the same position keeps its id. */
  items?: Array<{ price: string; quantity?: number }>;
}

/**
 * Changes a subscription as the Dashboard, the customer portal or a billing cycle would. Returns the
 * customer.subscription.updated event Stripe would send, with the changed fields' old values in
 * `data.previous_attributes`, or no event when nothing changed.
 */
export function updateSubscription(subscriptionId: string, changes: SubscriptionChanges): Promise<{ subscription: Stripe.Subscription; events: Stripe.Event[] }> {
  return fakeStripe(`subscriptions/${encodeURIComponent(subscriptionId)}/update`, { body: changes });
}

/** Cancels a subscription now (status canceled, `ended_at`); returns the customer.subscription.deleted event. */
export function cancelSubscription(subscriptionId: string): Promise<{ subscription: Stripe.Subscription; events: Stripe.Event[] }> {
  return fakeStripe(`subscriptions/${encodeURIComponent(subscriptionId)}/cancel`, { body: {} });
}

export interface InvoiceSubscriptionOptions {
  /** false: the payment fails (invoice open, an active or trialing subscription goes past_due). */
  paid: boolean;
  /** `subscription_cycle` unless told. */
  billing_reason?: Stripe.Invoice.BillingReason;
}

/**
 * Bills a subscription's current period, as its renewal would. Returns the invoice, the subscription after it and the
 * events in order: invoice.paid or invoice.payment_failed, then customer.subscription.updated (previous_attributes
 * `{ status }`) when the payment moved the subscription (past_due after a failure, active again after paying).
 */
export function invoiceSubscription(
  subscriptionId: string,
  options: InvoiceSubscriptionOptions,
): Promise<{ invoice: Stripe.Invoice; subscription: Stripe.Subscription; events: Stripe.Event[] }> {
  return fakeStripe(`subscriptions/${encodeURIComponent(subscriptionId)}/invoices`, { body: options });
}

/** The buyer's bank disputes a one-time payment: returns the dispute (needs_response) and charge.dispute.created. */
export function disputePayment(
  paymentIntentId: string,
  options: { reason?: string; amount?: number } = {},
): Promise<{ dispute: Stripe.Dispute; events: Stripe.Event[] }> {
  return fakeStripe(`payment_intents/${encodeURIComponent(paymentIntentId)}/dispute`, { body: options });
}

/** Refunds `amount` (all that is left by default) of a one-time payment; returns the charge and charge.refunded. */
export function refundPayment(paymentIntentId: string, amount?: number): Promise<{ charge: Stripe.Charge; events: Stripe.Event[] }> {
  return fakeStripe(`payment_intents/${encodeURIComponent(paymentIntentId)}/refund`, { body: amount === undefined ? {} : { amount } });
}

/** The billing meter events (usage reports) the account of `key` received, oldest first, each identifier once. */
export async function meterEventsOf(key: string): Promise<Stripe.Billing.MeterEvent[]> {
  const { data } = await fakeStripe<{ data: Stripe.Billing.MeterEvent[] }>("billing/meter_events", { key });
  return data;
}

// --- Price changes (offers' subscription_change and scheduled_change) -----------------------------------------------

/**
 * The next phase of a subscription schedule starts now, as the end of the current period would: the subscription takes
 * the phase's items and metadata. Returns the customer.subscription.updated event Stripe would send (past the last
 * phase, a `release` schedule lets the subscription go: `schedule.status` is `released`).
 */
export function advanceSubscriptionSchedule(
  scheduleId: string,
): Promise<{ schedule: Stripe.SubscriptionSchedule; subscription: Stripe.Subscription; events: Stripe.Event[] }> {
  return fakeStripe(`subscription_schedules/${encodeURIComponent(scheduleId)}/advance`, { body: {} });
}

/** The events Stripe made for the account of `key` (API calls send them too), newest first, of one type if given. */
export async function stripeEventsOf(key: string, type?: string): Promise<Stripe.Event[]> {
  const query = new URLSearchParams({ limit: "100", ...(type ? { type } : {}) });
  const response = await fetch(`${stripeApiBase()}/v1/events?${query}`, { headers: { authorization: `Bearer ${key}` } });
  if (!response.ok) throw new Error(`fake Stripe events: ${response.status} ${await response.text()}`);
  return ((await response.json()) as { data: Stripe.Event[] }).data;
}
