/**
 * Stripe webhooks end to end against the fake Stripe: the signed route, the payments queue's consumer, the payment
 * state in D1 and the decisions that read it. Redeliveries, duplicates and reordering are the main cases: Stripe
 * delivers at least once and in no particular order.
 */
import { env } from "cloudflare:workers";
import type Stripe from "stripe";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { call, createOrganization, publish, type TestOrganization } from "../../support/api";
import { newsSite } from "../../support/examples";
import { type CapturedPayments, capturePayments, connectStripe, postWebhook, type StripeAccount, webhookPath, payOnFakeStripe } from "../../support/payments";
import { cancelSubscription, disputePayment, invoiceSubscription, refundPayment, seedPrice, settleCheckout, stripeSignature, updateSubscription } from "../../support/stripe";
import { captureTriggers } from "../../support/triggers";
import { recordTriggersAction } from "../../support/workflows";

let payments: CapturedPayments;
beforeEach(() => {
  payments = capturePayments();
});
afterEach(() => payments.restore());

interface Shop {
  org: TestOrganization;
  environmentId: string;
  account: StripeAccount;
  priceId: string;
  productId: string;
}

/** A news site in a preview environment connected to its own fake Stripe account, Premium linked to a real product. */
async function shop(options: { policy?: Record<string, unknown>; oneTime?: boolean; workflows?: Record<string, unknown> } = {}): Promise<Shop> {
  const org = await createOrganization("Payments");
  const environmentId = org.preview.id;
  const account = await connectStripe(org, environmentId, options.policy);
  const { product, price } = await seedPrice(account.key, "Premium", { interval: options.oneTime ? null : "month" });
  const document = newsSite();
  document.plans.premium.stripeProductIds = [product.id];
  if (options.workflows) document.workflows = options.workflows;
  await publish(org.adminKey, document, [environmentId]);
  return { org, environmentId, account, priceId: price.id, productId: product.id };
}

/** Opens a checkout for `identifier` through the platform's gateway and pays it on the fake's hosted page. */
function buy(shop: Shop, identifier: string, mode: "subscription" | "payment" = "subscription") {
  return payOnFakeStripe(shop.account, shop.org.id, { priceId: shop.priceId, identifier, mode });
}

async function deliverAll(shop: Shop, events: Stripe.Event[]) {
  for (const event of events) expect((await postWebhook(shop.environmentId, event, shop.account.webhookSecret)).status).toBe(200);
  await payments.deliver();
}

async function decisionFor(shop: Shop, identifier: string) {
  const response = await call("POST", "/api/v1/access-checks", { key: shop.org.preview.secretKey, body: { identity: { userIdentifier: identifier } } });
  expect(response.status).toBe(200);
  return response.body;
}

const hasPremium = async (shop: Shop, identifier: string): Promise<boolean> => (await decisionFor(shop, identifier)).features.articles.properties.premium.value;

async function storedSubscription(subscriptionId: string) {
  return env.DB.prepare("SELECT state, status, revoked_at FROM payment_subscriptions WHERE subscription_id = ?").bind(subscriptionId).first<{ state: string; status: string; revoked_at: string | null }>();
}

async function transitionsOf(environmentId: string) {
  const { results } = await env.DB.prepare("SELECT subject, subject_id, from_state, to_state, dispatched_at FROM payment_transitions WHERE environment_id = ? ORDER BY id")
    .bind(environmentId)
    .all<{ subject: string; subject_id: string; from_state: string | null; to_state: string; dispatched_at: string | null }>();
  return results;
}

function shuffled<T>(items: T[]): T[] {
  const copy = [...items];
  for (let index = copy.length - 1; index > 0; index--) {
    const other = Math.floor(Math.random() * (index + 1));
    [copy[index], copy[other]] = [copy[other]!, copy[index]!];
  }
  return copy;
}

describe("Stripe webhooks: what is refused", () => {
  it("refuses unsigned, mis-signed and stale deliveries with 400 and queues nothing", async () => {
    const shop_ = await shop();
    const { events } = await buy(shop_, "reader@example.com");
    const event = events.at(-1)!;
    const payload = JSON.stringify(event);
    const unsigned = await postWebhook(shop_.environmentId, event, shop_.account.webhookSecret, { headers: { "content-type": "application/json" } });
    expect(unsigned.status).toBe(400);
    expect(unsigned.body).toMatchObject({ status: "error", statusCode: 400, code: "invalid_signature" });
    const misSigned = await postWebhook(shop_.environmentId, event, "whsec_someoneElsesSecret123");
    expect(misSigned.status).toBe(400);
    expect(misSigned.body.code).toBe("invalid_signature");
    const stale = await postWebhook(shop_.environmentId, event, shop_.account.webhookSecret, { timestamp: Math.floor(Date.now() / 1000) - 3600 });
    expect(stale.status).toBe(400);
    // A valid signature over a changed body is a wrong signature.
    const signature = await stripeSignature(payload, shop_.account.webhookSecret);
    const tampered = await call("POST", webhookPath(shop_.environmentId), { rawBody: payload.replace("reader@example.com", "mallory@example.com"), headers: { "stripe-signature": signature } });
    expect(tampered.status).toBe(400);
    // Signed but not JSON.
    const notJson = "not json";
    const signedNotJson = await call("POST", webhookPath(shop_.environmentId), { rawBody: notJson, headers: { "stripe-signature": await stripeSignature(notJson, shop_.account.webhookSecret) } });
    expect(signedNotJson.status).toBe(400);
    // A live-mode event on a test-mode connection (a secret pasted into the wrong environment) changes nothing either.
    const liveEvent = await postWebhook(shop_.environmentId, { ...event, livemode: true }, shop_.account.webhookSecret);
    expect(liveEvent.status).toBe(400);
    expect(liveEvent.body.message).toMatch(/live-mode event for an environment connected in test mode/);
    expect(payments.sent).toEqual([]);
    await payments.deliver();
    expect(await hasPremium(shop_, "reader@example.com")).toBe(false);
  });

  it("answers 404 for an unknown or unconnected environment and 200 (ignored) for an event type it does not act on", async () => {
    const shop_ = await shop();
    const { events } = await buy(shop_, "reader@example.com");
    const unknown = await postWebhook("env_doesnotexist0000", events[0]!, shop_.account.webhookSecret);
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ status: "error", code: "not_found" });
    const unconnected = await postWebhook(shop_.org.live.id, events[0]!, shop_.account.webhookSecret);
    expect(unconnected.status).toBe(404);

    const customerCreated = events.find((event) => event.type === "customer.created")!;
    const ignored = await postWebhook(shop_.environmentId, customerCreated, shop_.account.webhookSecret);
    expect(ignored.status).toBe(200);
    expect(ignored.body).toEqual({ received: true, ignored: true, events: [] });
    expect(payments.sent).toEqual([]);
  });

  it("answers 503 when the queue does not take the events, so Stripe delivers them again", async () => {
    const shop_ = await shop();
    const { events } = await buy(shop_, "reader@example.com");
    payments.restore();
    const queue = env.PAYMENTS as Queue<unknown>;
    const original = queue.sendBatch.bind(queue);
    queue.sendBatch = async () => {
      throw new Error("queue unavailable");
    };
    try {
      const answer = await postWebhook(shop_.environmentId, events.at(-1)!, shop_.account.webhookSecret);
      expect(answer.status).toBe(503);
      expect(answer.body.code).toBe("payments_unavailable");
      expect(answer.headers.get("retry-after")).toBe("60");
    } finally {
      queue.sendBatch = original;
    }
  });
});

describe("Stripe webhooks: linked plans", () => {
  it("a completed checkout gives the identity it was opened for the linked plan, and the customer in decisions", async () => {
    const shop_ = await shop();
    expect(await hasPremium(shop_, "reader@example.com")).toBe(false);
    const { events, session } = await buy(shop_, "reader@example.com");
    expect(events.map((event) => event.type)).toEqual(["customer.created", "customer.subscription.created", "checkout.session.completed"]);
    await deliverAll(shop_, events);

    const decision = await decisionFor(shop_, "reader@example.com");
    expect(decision.features.articles.properties).toMatchObject({ premium: { value: true, isFallback: false }, quality: { value: "ultra" } });
    expect(decision.customer).toEqual({ isCustomer: true, hasProducts: true, customerIdentifiers: [session.customer] });
    // The admin API shows what the payments grant and why.
    const detail = await call("GET", `/api/v1/admin/environments/${shop_.environmentId}/customers/reader@example.com`, { key: shop_.org.adminKey });
    expect(detail.status).toBe(200);
    expect(detail.body).toMatchObject({
      identifier: "reader@example.com",
      stripeCustomerId: session.customer,
      stripeProductIds: [],
      paymentCustomerIds: [session.customer],
      subscriptions: [
        { id: session.subscription, customerId: session.customer, state: "active", status: "active", productIds: [shop_.productId], cancelAtPeriodEnd: false, revokedAt: null, access: { granted: true, until: null } },
      ],
      purchases: [],
      entitledProductIds: [shop_.productId],
    });
    // Someone else is no customer.
    expect((await decisionFor(shop_, "other@example.com")).customer).toEqual({ isCustomer: false, hasProducts: false, customerIdentifiers: [] });

    // One transition (none → active), dispatched, and recorded as a payment event.
    const transitions = await transitionsOf(shop_.environmentId);
    expect(transitions).toEqual([{ subject: "subscription", subject_id: session.subscription, from_state: null, to_state: "active", dispatched_at: expect.any(String) }]);
    const recorded = await call("GET", `/api/v1/admin/events?environmentId=${shop_.environmentId}&kind=payment&outcome=active`, { key: shop_.org.adminKey });
    expect(recorded.status).toBe(200);
    expect(recorded.body.events).toEqual([
      expect.objectContaining({
        kind: "payment",
        identifier: "reader@example.com",
        outcome: "active",
        record: expect.objectContaining({ subject: "subscription", subjectId: session.subscription, from: null, to: "active", productIds: [shop_.productId] }),
      }),
    ]);
  });

  it("applies every webhook once when each is delivered 10× in random order, and keeps the newest state", async () => {
    const shop_ = await shop();
    const bought = await buy(shop_, "reader@example.com");
    const subscriptionId = bought.session.subscription as string;
    const later = [
      ...(await updateSubscription(subscriptionId, { cancel_at_period_end: true })).events,
      ...(await updateSubscription(subscriptionId, { cancel_at_period_end: false })).events,
      ...(await invoiceSubscription(subscriptionId, { paid: false })).events,
      ...(await invoiceSubscription(subscriptionId, { paid: true })).events,
    ];
    const all = [...bought.events, ...later];
    const deliveries = shuffled(all.flatMap((event) => Array.from({ length: 10 }, () => event)));
    for (const event of deliveries) expect((await postWebhook(shop_.environmentId, event, shop_.account.webhookSecret)).status).toBe(200);
    // The queue too may hand them over in any order.
    const queued = shuffled([...payments.sent]);
    payments.restore();
    payments = capturePayments();
    expect(queued.length).toBe(10 * all.filter((event) => event.type !== "customer.created").length);
    const { deliverPaymentMessages } = await import("../../support/payments");
    for (let index = 0; index < queued.length; index += 10) {
      const result = await deliverPaymentMessages(queued.slice(index, index + 10));
      expect(result.retryMessages).toEqual([]);
    }

    // Each event id is logged once; the subscription is in its newest state (active: paid again, not canceling) and
    // went through exactly one transition — every event, in whatever order, read the same current state from Stripe.
    const logged = await env.DB.prepare("SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS d FROM payment_events WHERE environment_id = ?").bind(shop_.environmentId).first<{ n: number; d: number }>();
    expect(logged).toEqual({ n: all.length - 1, d: all.length - 1 });
    expect(await storedSubscription(subscriptionId)).toMatchObject({ state: "active", status: "active" });
    expect((await transitionsOf(shop_.environmentId)).map((transition) => [transition.from_state, transition.to_state])).toEqual([[null, "active"]]);
    expect(await hasPremium(shop_, "reader@example.com")).toBe(true);
  });

  it("records one transition per change when each change's webhooks arrive 10× shuffled as they happen", async () => {
    const shop_ = await shop();
    const bought = await buy(shop_, "reader@example.com");
    const subscriptionId = bought.session.subscription as string;
    const deliverShuffled10x = async (events: Stripe.Event[]) => {
      for (const event of shuffled(events.flatMap((one) => Array.from({ length: 10 }, () => one)))) {
        expect((await postWebhook(shop_.environmentId, event, shop_.account.webhookSecret)).status).toBe(200);
      }
      await payments.deliver();
    };
    await deliverShuffled10x(bought.events);
    await deliverShuffled10x((await updateSubscription(subscriptionId, { cancel_at_period_end: true })).events);
    await deliverShuffled10x((await invoiceSubscription(subscriptionId, { paid: false })).events);
    await deliverShuffled10x((await cancelSubscription(subscriptionId)).events);
    expect((await transitionsOf(shop_.environmentId)).map((transition) => [transition.from_state, transition.to_state])).toEqual([
      [null, "active"],
      ["active", "canceling"],
      ["canceling", "past_due"],
      ["past_due", "canceled"],
    ]);
    expect(await hasPremium(shop_, "reader@example.com")).toBe(false);
  });
});

describe("Stripe webhooks: the lifecycle", () => {
  it("cancel at period end keeps access until the end of the paid period, then removes it", async () => {
    const shop_ = await shop();
    const bought = await buy(shop_, "reader@example.com");
    const subscriptionId = bought.session.subscription as string;
    await deliverAll(shop_, bought.events);
    await deliverAll(shop_, (await updateSubscription(subscriptionId, { cancel_at_period_end: true })).events);
    expect(await storedSubscription(subscriptionId)).toMatchObject({ state: "canceling" });
    expect(await hasPremium(shop_, "reader@example.com")).toBe(true);

    // The paid period ends (no webhook needed: the decision's clock passes the stored end).
    await deliverAll(shop_, (await updateSubscription(subscriptionId, { current_period_end: Math.floor(Date.now() / 1000) - 1 })).events);
    expect(await storedSubscription(subscriptionId)).toMatchObject({ state: "canceling" });
    expect(await hasPremium(shop_, "reader@example.com")).toBe(false);

    // Stripe then deletes it.
    await deliverAll(shop_, (await cancelSubscription(subscriptionId)).events);
    expect(await storedSubscription(subscriptionId)).toMatchObject({ state: "canceled", status: "canceled" });
    expect(await hasPremium(shop_, "reader@example.com")).toBe(false);
  });

  it("a failed renewal keeps access for the grace period, and paying restores active", async () => {
    const shop_ = await shop();
    const bought = await buy(shop_, "reader@example.com");
    const subscriptionId = bought.session.subscription as string;
    await deliverAll(shop_, bought.events);
    await deliverAll(shop_, (await invoiceSubscription(subscriptionId, { paid: false })).events);
    expect(await storedSubscription(subscriptionId)).toMatchObject({ state: "past_due" });
    expect(await hasPremium(shop_, "reader@example.com")).toBe(true);
    await deliverAll(shop_, (await invoiceSubscription(subscriptionId, { paid: true })).events);
    expect(await storedSubscription(subscriptionId)).toMatchObject({ state: "active" });
    expect(await hasPremium(shop_, "reader@example.com")).toBe(true);
  });

  it("without a grace period, past_due loses access at once; unpaid and paused never grant", async () => {
    const shop_ = await shop({ policy: { pastDueGraceHours: 0 } });
    const bought = await buy(shop_, "reader@example.com");
    const subscriptionId = bought.session.subscription as string;
    await deliverAll(shop_, bought.events);
    await deliverAll(shop_, (await invoiceSubscription(subscriptionId, { paid: false })).events);
    expect(await hasPremium(shop_, "reader@example.com")).toBe(false);
    for (const status of ["active", "unpaid", "active", "paused"] as const) {
      await deliverAll(shop_, (await updateSubscription(subscriptionId, { status })).events);
      expect(await hasPremium(shop_, "reader@example.com")).toBe(status === "active");
    }
  });

  it("a one-time purchase grants its plan until it is refunded in full", async () => {
    const shop_ = await shop({ oneTime: true });
    const bought = await buy(shop_, "buyer@example.com", "payment");
    await deliverAll(shop_, bought.events);
    expect(await hasPremium(shop_, "buyer@example.com")).toBe(true);
    const paymentIntent = bought.session.payment_intent as string;
    // A partial refund keeps it.
    await deliverAll(shop_, (await refundPayment(paymentIntent, 100)).events);
    expect(await hasPremium(shop_, "buyer@example.com")).toBe(true);
    await deliverAll(shop_, (await refundPayment(paymentIntent)).events);
    expect(await hasPremium(shop_, "buyer@example.com")).toBe(false);
    expect((await transitionsOf(shop_.environmentId)).map((transition) => [transition.subject, transition.from_state, transition.to_state])).toEqual([
      ["purchase", null, "paid"],
      ["purchase", "paid", "refunded"],
    ]);
  });

  it("a one-time purchase paid by a delayed method grants its plan once the payment settles", async () => {
    const shop_ = await shop({ oneTime: true });
    const completed = await payOnFakeStripe(shop_.account, shop_.org.id, { priceId: shop_.priceId, identifier: "slow-payer@example.com", mode: "payment", delayed: true });
    const session = completed.session;
    await deliverAll(shop_, completed.events);
    expect(await hasPremium(shop_, "slow-payer@example.com")).toBe(false);
    await deliverAll(shop_, (await settleCheckout(session.id)).events);
    expect(await hasPremium(shop_, "slow-payer@example.com")).toBe(true);
  });

  it("a refund that arrives before its checkout still wins, and a policy can keep refunded purchases", async () => {
    const early = await shop({ oneTime: true });
    const bought = await buy(early, "buyer@example.com", "payment");
    const refund = await refundPayment(bought.session.payment_intent as string);
    await deliverAll(early, [...refund.events, ...bought.events]);
    expect(await hasPremium(early, "buyer@example.com")).toBe(false);

    const lenient = await shop({ oneTime: true, policy: { revokeOnRefund: false } });
    const kept = await buy(lenient, "buyer@example.com", "payment");
    await deliverAll(lenient, [...kept.events, ...(await refundPayment(kept.session.payment_intent as string)).events]);
    expect(await hasPremium(lenient, "buyer@example.com")).toBe(true);
  });

  it("a dispute revokes the disputed purchase and suspends the customer's subscriptions", async () => {
    const shop_ = await shop();
    const subscribed = await buy(shop_, "reader@example.com");
    await deliverAll(shop_, subscribed.events);
    // The same customer also bought something once (a one-time price of another product).
    const { price } = await seedPrice(shop_.account.key, "Archive pass", { interval: null });
    const purchase = await payOnFakeStripe(shop_.account, shop_.org.id, {
      priceId: price.id,
      identifier: "reader@example.com",
      mode: "payment",
      customerId: subscribed.session.customer as string,
    });
    await deliverAll(shop_, purchase.events);
    expect(await hasPremium(shop_, "reader@example.com")).toBe(true);

    await deliverAll(shop_, (await disputePayment(purchase.session.payment_intent as string)).events);
    expect(await hasPremium(shop_, "reader@example.com")).toBe(false);
    expect(await storedSubscription(subscribed.session.subscription as string)).toMatchObject({ state: "revoked", revoked_at: expect.any(String) });
    // A later update of the subscription does not give access back.
    await deliverAll(shop_, (await updateSubscription(subscribed.session.subscription as string, { cancel_at_period_end: true })).events);
    expect(await hasPremium(shop_, "reader@example.com")).toBe(false);
  });

  it("fires plans.changed for each transition of a linked identity, and the next decision does not fire it again", async () => {
    const shop_ = await shop({ workflows: { "on-plans": recordTriggersAction(["plans.changed", "decision.made"]) } });
    const triggers = captureTriggers();
    try {
      // A first decision remembers the user's plans (registered).
      await decisionFor(shop_, "reader@example.com");
      const bought = await buy(shop_, "reader@example.com");
      await deliverAll(shop_, bought.events);
      const subscriptionId = bought.session.subscription as string;
      await deliverAll(shop_, (await invoiceSubscription(subscriptionId, { paid: false })).events);
      await decisionFor(shop_, "reader@example.com");
      await triggers.restore();
      const changes = triggers.sent.filter((message) => message.trigger === "plans.changed").map((message) => message.payload);
      expect(changes).toEqual([
        expect.objectContaining({
          identifier: "reader@example.com",
          from: ["registered"],
          to: ["premium", "registered"],
          reason: "payment",
          transitions: [expect.objectContaining({ subject: "subscription", id: subscriptionId, from: null, to: "active" })],
        }),
        expect.objectContaining({
          from: ["premium", "registered"],
          to: ["premium", "registered"],
          transitions: [expect.objectContaining({ from: "active", to: "past_due" })],
        }),
      ]);
    } finally {
      await triggers.restore();
    }
  });
});
