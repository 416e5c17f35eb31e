import Stripe from "stripe";
import { describe, expect, it } from "vitest";
import { type NormalizedEvent, PaymentProviderError, WebhookSignatureError } from "../../workers/payments/gateway";
import { createStripeGateway } from "../../workers/payments/stripe";
import { advanceSubscriptionSchedule, completeCheckout, fakeStripe, newStripeKey, seedPrice, stripeApiBase, stripeRequests } from "../support/stripe";

const WEBHOOK_SECRET = "whsec_test_payments_gateway";
const gateway = createStripeGateway({ secretKey: "sk_test_unused", webhookSecret: WEBHOOK_SECRET });
const cryptoProvider = Stripe.createSubtleCryptoProvider();

const EVENT_TIME = 1_780_000_000;
const PERIOD_END = 1_782_592_000;

/** A Stripe event envelope around `object`, as a webhook endpoint sends it. */
function stripeEvent(type: string, object: Record<string, unknown>, previousAttributes?: Record<string, unknown>) {
  return {
    id: `evt_${type.replaceAll(".", "_")}`,
    object: "event",
    api_version: Stripe.API_VERSION,
    created: EVENT_TIME,
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type,
    data: { object, ...(previousAttributes ? { previous_attributes: previousAttributes } : {}) },
  };
}

async function signedHeaders(payload: string, options: { secret?: string; timestamp?: number } = {}) {
  const signature = await Stripe.webhooks.generateTestHeaderStringAsync({
    payload,
    secret: options.secret ?? WEBHOOK_SECRET,
    timestamp: options.timestamp ?? Math.floor(Date.now() / 1000),
    cryptoProvider,
  });
  return new Headers({ "stripe-signature": signature });
}

async function deliver(event: object): Promise<NormalizedEvent[]> {
  const payload = JSON.stringify(event);
  return gateway.verifyWebhook(payload, await signedHeaders(payload));
}

function subscription(overrides: Record<string, unknown> = {}) {
  return {
    id: "sub_1",
    object: "subscription",
    customer: "cus_1",
    status: "active",
    cancel_at_period_end: false,
    metadata: { identifier: "user-42" },
    items: {
      object: "list",
      has_more: false,
      data: [
        { id: "si_1", object: "subscription_item", current_period_end: PERIOD_END, price: { id: "price_pro", product: "prod_pro" } },
        { id: "si_2", object: "subscription_item", current_period_end: PERIOD_END + 86_400, price: { id: "price_seats", product: { id: "prod_seats", object: "product" } } },
      ],
    },
    ...overrides,
  };
}

const common = { provider: "stripe", occurredAt: new Date(EVENT_TIME * 1000).toISOString(), livemode: false };

describe("Stripe gateway: webhook normalization", () => {
  it("turns subscription lifecycle events into activated / updated / canceled with the subscription's state", async () => {
    const state = { id: "sub_1", status: "active", currentPeriodEnd: new Date(PERIOD_END * 1000).toISOString(), cancelAtPeriodEnd: false };
    expect(await deliver(stripeEvent("customer.subscription.created", subscription()))).toEqual([
      {
        ...common,
        type: "subscription.activated",
        id: "evt_customer_subscription_created",
        rawType: "customer.subscription.created",
        customerId: "cus_1",
        identifier: "user-42",
        scope: null,
        productIds: ["prod_pro", "prod_seats"],
        subscription: state,
      },
    ]);

    // A subscription created before its first payment settles is not active yet; it activates on the update.
    const [incomplete] = await deliver(stripeEvent("customer.subscription.created", subscription({ status: "incomplete" })));
    expect(incomplete).toMatchObject({ type: "subscription.updated", subscription: { status: "incomplete" } });
    const [activated] = await deliver(stripeEvent("customer.subscription.updated", subscription(), { status: "incomplete" }));
    expect(activated).toMatchObject({ type: "subscription.activated", subscription: state });

    const [scheduledCancel] = await deliver(
      stripeEvent("customer.subscription.updated", subscription({ cancel_at_period_end: true }), { cancel_at_period_end: false }),
    );
    expect(scheduledCancel).toMatchObject({
      type: "subscription.updated",
      rawType: "customer.subscription.updated",
      subscription: { ...state, cancelAtPeriodEnd: true },
    });

    const [canceled] = await deliver(
      stripeEvent("customer.subscription.deleted", subscription({ status: "canceled", customer: { id: "cus_1", object: "customer" } })),
    );
    expect(canceled).toMatchObject({ type: "subscription.canceled", customerId: "cus_1", subscription: { status: "canceled" } });

    const [future] = await deliver(stripeEvent("customer.subscription.updated", subscription({ status: "some_new_status" })));
    expect(future).toMatchObject({ type: "subscription.updated", subscription: { status: "unknown" } });
  });

  it("turns a completed checkout into checkout.completed carrying the identifier it was opened for", async () => {
    const session = {
      id: "cs_1",
      object: "checkout.session",
      mode: "payment",
      payment_status: "paid",
      status: "complete",
      customer: "cus_2",
      client_reference_id: "user-7",
      metadata: { identifier: "user-7" },
      subscription: null,
      amount_total: 1900,
      currency: "eur",
    };
    expect(await deliver(stripeEvent("checkout.session.completed", session))).toEqual([
      {
        ...common,
        type: "checkout.completed",
        id: "evt_checkout_session_completed",
        rawType: "checkout.session.completed",
        customerId: "cus_2",
        identifier: "user-7",
        scope: null,
        productIds: [],
        checkoutId: "cs_1",
        mode: "payment",
        paid: true,
        subscriptionId: null,
        amount: 1900,
        currency: "eur",
      },
    ]);
    const [pending] = await deliver(
      stripeEvent("checkout.session.completed", {
        ...session,
        mode: "subscription",
        payment_status: "unpaid",
        subscription: "sub_9",
        client_reference_id: null,
      }),
    );
    expect(pending).toMatchObject({ mode: "subscription", paid: false, subscriptionId: "sub_9", identifier: "user-7" });
  });

  it("turns paid and failed invoices into invoice events with their subscription and products", async () => {
    const invoice = {
      id: "in_1",
      object: "invoice",
      customer: "cus_3",
      currency: "usd",
      amount_paid: 2500,
      amount_due: 2500,
      metadata: {},
      parent: { type: "subscription_details", quote_details: null, subscription_details: { subscription: "sub_3", metadata: { identifier: "user-3" } } },
      lines: {
        object: "list",
        has_more: false,
        data: [
          { id: "il_1", object: "line_item", pricing: { type: "price_details", price_details: { price: "price_pro", product: "prod_pro" } } },
          { id: "il_2", object: "line_item", pricing: null },
        ],
      },
    };
    expect(await deliver(stripeEvent("invoice.paid", invoice))).toEqual([
      {
        ...common,
        type: "invoice.paid",
        id: "evt_invoice_paid",
        rawType: "invoice.paid",
        customerId: "cus_3",
        identifier: "user-3",
        scope: null,
        productIds: ["prod_pro"],
        invoiceId: "in_1",
        subscriptionId: "sub_3",
        amount: 2500,
        currency: "usd",
      },
    ]);
    const [failed] = await deliver(stripeEvent("invoice.payment_failed", { ...invoice, amount_paid: 0, amount_due: 4000 }));
    expect(failed).toMatchObject({ type: "invoice.payment_failed", rawType: "invoice.payment_failed", amount: 4000, subscriptionId: "sub_3" });
  });

  it("turns refunds and disputes into payment.refunded and dispute.opened", async () => {
    const charge = {
      id: "ch_1",
      object: "charge",
      customer: "cus_4",
      currency: "usd",
      amount: 1000,
      amount_refunded: 400,
      refunded: false,
      payment_intent: "pi_1",
      metadata: { identifier: "user-4" },
    };
    expect(await deliver(stripeEvent("charge.refunded", charge))).toEqual([
      {
        ...common,
        type: "payment.refunded",
        id: "evt_charge_refunded",
        rawType: "charge.refunded",
        customerId: "cus_4",
        identifier: "user-4",
        scope: null,
        productIds: [],
        // Purchases are known by their payment intent; the charge travels beside it.
        paymentId: "pi_1",
        chargeId: "ch_1",
        amount: 400,
        currency: "usd",
        fullyRefunded: false,
      },
    ]);

    const dispute = { id: "dp_1", object: "dispute", charge: "ch_1", amount: 1000, currency: "usd", metadata: {}, status: "needs_response" };
    expect(await deliver(stripeEvent("charge.dispute.created", dispute))).toEqual([
      {
        ...common,
        type: "dispute.opened",
        id: "evt_charge_dispute_created",
        rawType: "charge.dispute.created",
        customerId: null,
        identifier: null,
        scope: null,
        productIds: [],
        disputeId: "dp_1",
        paymentId: "ch_1",
        chargeId: "ch_1",
        amount: 1000,
        currency: "usd",
      },
    ]);
    const [expanded] = await deliver(stripeEvent("charge.dispute.created", { ...dispute, charge }));
    expect(expanded).toMatchObject({ customerId: "cus_4", identifier: "user-4", paymentId: "ch_1" });
    const [withPaymentIntent] = await deliver(stripeEvent("charge.dispute.created", { ...dispute, payment_intent: "pi_1" }));
    expect(withPaymentIntent).toMatchObject({ paymentId: "pi_1", chargeId: "ch_1" });
  });

  it("acknowledges an event type the platform does not act on with no events", async () => {
    expect(await deliver(stripeEvent("customer.created", { id: "cus_5", object: "customer" }))).toEqual([]);
  });
});

describe("Stripe gateway: webhook signatures", () => {
  const payload = JSON.stringify(stripeEvent("customer.subscription.created", subscription()));

  async function rejection(body: string | Uint8Array, headers: Headers) {
    const error = await gateway.verifyWebhook(body, headers).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(WebhookSignatureError);
    return error as WebhookSignatureError;
  }

  it("accepts the raw body as bytes as well as text", async () => {
    const events = await gateway.verifyWebhook(new TextEncoder().encode(payload), await signedHeaders(payload));
    expect(events.map((event) => event.type)).toEqual(["subscription.activated"]);
  });

  it("refuses an unsigned delivery", async () => {
    expect((await rejection(payload, new Headers())).reason).toBe("missing");
  });

  it("refuses a delivery signed with another secret or altered after signing", async () => {
    expect((await rejection(payload, await signedHeaders(payload, { secret: "whsec_someone_else" }))).reason).toBe("invalid");
    const altered = payload.replace("user-42", "user-43");
    expect((await rejection(altered, await signedHeaders(payload))).reason).toBe("invalid");
  });

  it("refuses a delivery signed longer ago than the tolerance, as a possible replay", async () => {
    const tenMinutesAgo = Math.floor(Date.now() / 1000) - 600;
    const stale = await rejection(payload, await signedHeaders(payload, { timestamp: tenMinutesAgo }));
    expect(stale.reason).toBe("invalid");
    expect(stale.message).toMatch(/tolerance/i);
  });
});

describe("Stripe gateway: checkout against the local fake Stripe", () => {
  it("opens a subscription checkout that carries the identifier onto the events it leads to", async () => {
    const key = newStripeKey();
    const fakeGateway = createStripeGateway({ secretKey: key, webhookSecret: WEBHOOK_SECRET, apiBase: stripeApiBase() });
    const { product, price } = await seedPrice(key, "Pro");

    const checkout = await fakeGateway.createCheckoutSession({
      mode: "subscription",
      priceIds: [price.id],
      identifier: "user-99",
      successUrl: "https://app.example.com/thanks",
      cancelUrl: "https://app.example.com/pricing",
      automaticTax: true,
      scope: "org_test:preview",
    });
    expect(checkout.id).toMatch(/^cs_test_/);
    expect(checkout.url).toEqual(expect.any(String));
    const [request] = await stripeRequests(key);
    expect(request).toMatchObject({
      method: "POST",
      path: "/v1/checkout/sessions",
      stripeVersion: Stripe.API_VERSION,
      body: {
        mode: "subscription",
        client_reference_id: "user-99",
        automatic_tax: { enabled: "true" },
        // The identifier and the store travel onto the subscription, so its own events say whose it is.
        subscription_data: { metadata: { identifier: "user-99", platform_store: "org_test:preview" } },
      },
    });

    const { session, events } = await completeCheckout(checkout.id);
    const normalized = (await Promise.all(events.map((event) => deliver(event)))).flat();
    expect(normalized.map(({ type, identifier, scope, productIds }) => ({ type, identifier, scope, productIds }))).toEqual([
      { type: "subscription.activated", identifier: "user-99", scope: "org_test:preview", productIds: [product.id] },
      { type: "checkout.completed", identifier: "user-99", scope: "org_test:preview", productIds: [] },
    ]);

    expect(await fakeGateway.activeProductIds(session.customer as string)).toEqual([product.id]);
  });

  it("counts a paid one-time purchase among the customer's products until it is fully refunded", async () => {
    const key = newStripeKey();
    const fakeGateway = createStripeGateway({ secretKey: key, webhookSecret: WEBHOOK_SECRET, apiBase: stripeApiBase() });
    const { product: lifetime, price } = await seedPrice(key, "Lifetime", { interval: null, unitAmount: 4900 });
    const { price: unpaidPrice } = await seedPrice(key, "Never paid", { interval: null });
    const checkoutOf = (priceId: string) =>
      fakeGateway.createCheckoutSession({
        mode: "payment",
        priceIds: [priceId],
        identifier: "user-5",
        successUrl: "https://app.example.com/thanks",
        cancelUrl: "https://app.example.com/pricing",
        automaticTax: false,
        scope: "org_test:preview",
      });

    const { session } = await completeCheckout((await checkoutOf(price.id)).id);
    expect(session).toMatchObject({ mode: "payment", status: "complete", payment_status: "paid" });
    const customerId = session.customer as string;
    // An open checkout of the same customer is no purchase.
    await fakeGateway.createCheckoutSession({
      mode: "payment",
      priceIds: [unpaidPrice.id],
      identifier: "user-5",
      customerId,
      successUrl: "https://app.example.com/thanks",
      cancelUrl: "https://app.example.com/pricing",
      automaticTax: false,
      scope: "org_test:preview",
    });
    expect(await fakeGateway.activeProductIds(customerId)).toEqual([lifetime.id]);
    const listing = (await stripeRequests(key)).find((request) => request.path === "/v1/checkout/sessions" && request.method === "GET");
    expect(listing?.query).toMatchObject({ customer: customerId, status: "complete" });

    const partly = await fakeStripe<{ charge: Stripe.Charge }>(`payment_intents/${session.payment_intent}/refund`, { body: { amount: 900 } });
    expect(partly.charge).toMatchObject({ amount_refunded: 900, refunded: false, metadata: { identifier: "user-5" } });
    expect(await fakeGateway.activeProductIds(customerId)).toEqual([lifetime.id]);

    const fully = await fakeStripe<{ charge: Stripe.Charge }>(`payment_intents/${session.payment_intent}/refund`, { body: {} });
    expect(fully.charge).toMatchObject({ amount_refunded: 4900, refunded: true });
    expect(await fakeGateway.activeProductIds(customerId)).toEqual([]);
  });
});

describe("Stripe gateway: price changes of a subscription against the local fake Stripe", () => {
  /** A customer subscribed to Basic ($10 a month) through a completed checkout; Premium ($20) exists too. */
  async function subscribed() {
    const key = newStripeKey();
    const fakeGateway = createStripeGateway({ secretKey: key, webhookSecret: WEBHOOK_SECRET, apiBase: stripeApiBase() });
    const basic = await seedPrice(key, "Basic", { unitAmount: 1000 });
    const premium = await seedPrice(key, "Premium", { unitAmount: 2000 });
    const checkout = await fakeGateway.createCheckoutSession({
      mode: "subscription",
      priceIds: [basic.price.id],
      identifier: "user-7",
      successUrl: "https://app.example.com/thanks",
      cancelUrl: "https://app.example.com/pricing",
      automaticTax: false,
      scope: "org_test:preview",
    });
    const { session } = await completeCheckout(checkout.id);
    const subscriptionId = session.subscription as string;
    const items = (await fakeGateway.getSubscriptionItems(subscriptionId))!;
    return { key, fakeGateway, basic, premium, subscriptionId, items };
  }

  it("reads a subscription's items, scope and schedule; null for an unknown one", async () => {
    const { fakeGateway, basic, subscriptionId, items } = await subscribed();
    expect(items).toMatchObject({
      subscription: { id: subscriptionId, status: "active", cancelAtPeriodEnd: false },
      scope: "org_test:preview",
      items: [{ id: expect.stringMatching(/^si_/), priceId: basic.price.id, productId: basic.product.id, quantity: 1 }],
      scheduleId: null,
    });
    expect(await fakeGateway.getSubscriptionItems("sub_unknown")).toBeNull();
  });

  it("previews a prorated change at a given date without changing the subscription", async () => {
    const { key, fakeGateway, premium, subscriptionId, items } = await subscribed();
    const [item] = items.items;
    // Half of the 30-day period left: −500 for the unused Basic, +1000 for Premium, then the next period at $20.
    const halfway = Math.floor(Date.parse(items.subscription.currentPeriodEnd!) / 1000) - 15 * 86_400;
    const preview = await fakeGateway.previewSubscriptionPriceChange({ subscriptionId, itemId: item!.id, priceId: premium.price.id, prorationBehavior: "create_prorations", prorationDate: halfway, metadata: {} });
    expect(preview).toEqual({
      amountDue: 2500,
      currency: "usd",
      lines: [
        { description: "Unused time on 1 × Basic", amount: -500 },
        { description: "Remaining time on 1 × Premium", amount: 1000 },
        { description: "1 × Premium", amount: 2000 },
      ],
    });
    const request = (await stripeRequests(key)).find((entry) => entry.path === "/v1/invoices/create_preview");
    expect(request?.body).toMatchObject({ subscription: subscriptionId, subscription_details: { items: [{ id: item!.id, price: premium.price.id }], proration_behavior: "create_prorations", proration_date: String(halfway) } });
    expect((await fakeGateway.getSubscriptionItems(subscriptionId))!.items[0]!.priceId).not.toBe(premium.price.id);
  });

  it("changes the price once per idempotency key, and reports Stripe's refusals as PaymentProviderError", async () => {
    const { key, fakeGateway, premium, subscriptionId, items } = await subscribed();
    const change = { subscriptionId, itemId: items.items[0]!.id, priceId: premium.price.id, prorationBehavior: "none" as const, metadata: { platform_offer_redemption: "jti_1" } };
    const state = await fakeGateway.changeSubscriptionPrice(change, { idempotencyKey: "change-1" });
    expect(state).toMatchObject({ id: subscriptionId, status: "active" });
    await fakeGateway.changeSubscriptionPrice(change, { idempotencyKey: "change-1" });
    const after = (await fakeGateway.getSubscriptionItems(subscriptionId))!;
    expect(after.items.map((item) => item.priceId)).toEqual([premium.price.id]);
    const updates = (await stripeRequests(key)).filter((entry) => entry.method === "POST" && entry.path === `/v1/subscriptions/${subscriptionId}`);
    expect(updates.map((entry) => entry.idempotencyKey)).toEqual(["change-1", "change-1"]);

    await expect(fakeGateway.changeSubscriptionPrice({ ...change, priceId: "price_missing" }, { idempotencyKey: "change-2" })).rejects.toMatchObject({ name: "PaymentProviderError", reason: "failed" });
    await expect(fakeGateway.changeSubscriptionPrice({ ...change, prorationBehavior: "always_invoice" }, { idempotencyKey: "change-1" })).rejects.toBeInstanceOf(PaymentProviderError);
    await expect(fakeGateway.changeSubscriptionPrice({ ...change, prorationBehavior: "always_invoice" }, { idempotencyKey: "change-1" })).rejects.toMatchObject({ reason: "idempotency_conflict" });
  });

  it("schedules a change at the period's end, and replaces the phases of a schedule the subscription already has", async () => {
    const { fakeGateway, basic, premium, subscriptionId, items } = await subscribed();
    const request = { subscriptionId, itemId: items.items[0]!.id, priceId: premium.price.id, metadata: { platform_offer_redemption: "jti_2" } };
    const scheduled = await fakeGateway.scheduleSubscriptionPriceChange(request, { idempotencyKey: "schedule-1" });
    expect(scheduled).toEqual({ scheduleId: expect.stringMatching(/^sub_sched_/), effectiveAt: items.subscription.currentPeriodEnd });
    expect((await fakeGateway.getSubscriptionItems(subscriptionId))!).toMatchObject({ scheduleId: scheduled.scheduleId, items: [{ priceId: basic.price.id }] });

    // A second change (back to Basic, say) reuses the schedule instead of failing to create another.
    const again = await fakeGateway.scheduleSubscriptionPriceChange({ ...request, priceId: basic.price.id }, { idempotencyKey: "schedule-2" });
    expect(again.scheduleId).toBe(scheduled.scheduleId);
    const advanced = await advanceSubscriptionSchedule(scheduled.scheduleId);
    // The old price stays (it was the last change asked for), the redemption's metadata arrives, the identifier stays.
    expect(advanced.subscription.items.data.map((item) => item.price.id)).toEqual([basic.price.id]);
    expect(advanced.subscription.metadata).toMatchObject({ identifier: "user-7", platform_offer_redemption: "jti_2" });
  });
});
