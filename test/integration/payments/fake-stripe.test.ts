/** The fake Stripe the payment tests run against, reached from workerd: Stripe's wire format, pagination, checkout. */
import Stripe from "stripe";
import { describe, expect, it } from "vitest";
import {
  cancelSubscription,
  completeCheckout,
  disputePayment,
  invoiceSubscription,
  newStripeKey,
  refundPayment,
  seedCustomers,
  seedPrice,
  stripeApiBase,
  stripeRequests,
  updateSubscription,
} from "../../support/stripe";

async function stripe(key: string, method: string, path: string, form?: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${stripeApiBase()}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(form === undefined ? {} : { "content-type": "application/x-www-form-urlencoded" }), ...headers },
    body: form,
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as any };
}

function sdk(key: string): Stripe {
  const base = new URL(stripeApiBase());
  return new Stripe(key, { httpClient: Stripe.createFetchHttpClient(), host: base.hostname, port: Number(base.port), protocol: "http" });
}

/** A completed checkout in the account of `key`: a subscription of `quantity` × `price` in subscription mode. */
async function subscribe(key: string, price: Stripe.Price, options: { status?: "active" | "trialing"; quantity?: number; metadata?: Record<string, string> } = {}) {
  const session = await sdk(key).checkout.sessions.create({
    mode: price.recurring ? "subscription" : "payment",
    line_items: [{ price: price.id, quantity: options.quantity ?? 1 }],
    success_url: "https://app.example/success",
    ...(price.recurring ? { subscription_data: { metadata: options.metadata ?? {} } } : {}),
  });
  const completed = await completeCheckout(session.id, { status: options.status ?? "active" });
  const subscription = completed.events.find((event) => event.type === "customer.subscription.created")?.data.object as Stripe.Subscription | undefined;
  return { session: completed.session, subscription: subscription! };
}

const previousAttributes = (event: Stripe.Event) => (event.data as { previous_attributes?: Record<string, unknown> }).previous_attributes;

describe("fake Stripe, plain fetch", () => {
  it("is what STRIPE_API_BASE points at", () => {
    expect(stripeApiBase()).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it("creates and retrieves customers in Stripe's shape, answers errors in Stripe's shape", async () => {
    const key = newStripeKey();
    const created = await stripe(key, "POST", "/v1/customers", "email=ada%40example.com&name=Ada&metadata[organization]=org_1");
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({ object: "customer", email: "ada@example.com", name: "Ada", metadata: { organization: "org_1" }, livemode: false });
    expect(created.body.id).toMatch(/^cus_/);
    expect((await stripe(key, "GET", `/v1/customers/${created.body.id}`)).body.email).toBe("ada@example.com");

    const unknown = await stripe(key, "GET", "/v1/customers/cus_unknown");
    expect(unknown.status).toBe(404);
    expect(unknown.body).toEqual({ error: { type: "invalid_request_error", code: "resource_missing", param: "id", message: "No such customer: 'cus_unknown'" } });
    // Another account does not see it, as in Stripe.
    expect((await stripe(newStripeKey(), "GET", `/v1/customers/${created.body.id}`)).status).toBe(404);

    const anonymous = await fetch(`${stripeApiBase()}/v1/customers`);
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as any).error.type).toBe("invalid_request_error");
    expect((await stripe("sk_live_123456789", "GET", "/v1/customers")).status).toBe(401);
  });

  it("replays a POST with the same Idempotency-Key and records it", async () => {
    const key = newStripeKey();
    const first = await stripe(key, "POST", "/v1/customers", "email=once%40example.com", { "idempotency-key": "create-once" });
    const again = await stripe(key, "POST", "/v1/customers", "email=once%40example.com", { "idempotency-key": "create-once" });
    expect(again.body.id).toBe(first.body.id);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    const conflicting = await stripe(key, "POST", "/v1/customers", "email=other%40example.com", { "idempotency-key": "create-once" });
    expect(conflicting.status).toBe(400);
    expect(conflicting.body.error.type).toBe("idempotency_error");

    const recorded = await stripeRequests(key);
    expect(recorded.map(({ method, path, idempotencyKey }) => ({ method, path, idempotencyKey }))).toEqual([
      { method: "POST", path: "/v1/customers", idempotencyKey: "create-once" },
      { method: "POST", path: "/v1/customers", idempotencyKey: "create-once" },
      { method: "POST", path: "/v1/customers", idempotencyKey: "create-once" },
    ]);
    expect(recorded[0]!.body).toEqual({ email: "once@example.com" });
  });

  it("pages customers with limit, starting_after and has_more, newest first", async () => {
    const key = newStripeKey();
    const seeded = await seedCustomers(key, 5);
    const newestFirst = seeded.map((customer) => customer.id).reverse();
    const first = await stripe(key, "GET", "/v1/customers?limit=2");
    expect(first.body).toMatchObject({ object: "list", has_more: true, url: "/v1/customers" });
    expect(first.body.data.map((customer: { id: string }) => customer.id)).toEqual(newestFirst.slice(0, 2));
    const last = await stripe(key, "GET", `/v1/customers?limit=2&starting_after=${newestFirst[3]}`);
    expect(last.body.data.map((customer: { id: string }) => customer.id)).toEqual(newestFirst.slice(4));
    expect(last.body.has_more).toBe(false);
  });

  it("creates a checkout session from bracket-notation line items and completes it into a subscription and its events", async () => {
    const key = newStripeKey();
    const { price } = await seedPrice(key, "Pro", { unitAmount: 2500, trialPeriodDays: 7 });
    const form = new URLSearchParams({
      mode: "subscription",
      "line_items[0][price]": price.id,
      "line_items[0][quantity]": "2",
      client_reference_id: "org_1",
      "metadata[environment]": "env_1",
      success_url: "https://app.example/success",
      cancel_url: "https://app.example/cancel",
      "automatic_tax[enabled]": "true",
    }).toString();
    const created = await stripe(key, "POST", "/v1/checkout/sessions", form);
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({
      object: "checkout.session",
      mode: "subscription",
      status: "open",
      client_reference_id: "org_1",
      metadata: { environment: "env_1" },
      automatic_tax: { enabled: true },
      amount_total: 5000,
      customer: null,
      subscription: null,
    });
    expect(created.body.url).toMatch(new RegExp(`^${stripeApiBase()}/c/pay/cs_test_`));

    const { session, events } = await completeCheckout(created.body.id, { status: "trialing", email: "buyer@example.com" });
    expect(events.map((event) => event.type)).toEqual(["customer.created", "customer.subscription.created", "checkout.session.completed"]);
    expect(session).toMatchObject({ status: "complete", customer_details: { email: "buyer@example.com" } });
    const subscription = events[1]!.data.object as Stripe.Subscription;
    expect(subscription).toMatchObject({ object: "subscription", status: "trialing", customer: session.customer, id: session.subscription });
    expect(subscription.items.data[0]).toMatchObject({ quantity: 2, price: { id: price.id } });
    expect(subscription.trial_end! - subscription.trial_start!).toBe(7 * 86_400);

    const retrieved = await stripe(key, "GET", `/v1/checkout/sessions/${created.body.id}?expand[]=subscription`);
    expect(retrieved.body).toMatchObject({ status: "complete", subscription: { id: subscription.id, status: "trialing" } });
    const trialing = await stripe(key, "GET", `/v1/subscriptions?customer=${session.customer}&status=trialing`);
    expect(trialing.body.data.map((item: { id: string }) => item.id)).toEqual([subscription.id]);
    const active = await stripe(key, "GET", `/v1/subscriptions?customer=${session.customer}&status=active`);
    expect(active.body.data).toEqual([]);

    const portal = await stripe(key, "POST", "/v1/billing_portal/sessions", `customer=${session.customer}&return_url=https%3A%2F%2Fapp.example`);
    expect(portal.body).toMatchObject({ object: "billing_portal.session", customer: session.customer, return_url: "https://app.example" });
    expect(portal.body.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/p\/session\/bps_/);
  });

  it("lists checkout sessions by customer and status, pages them and expands line items and the payment's charge", async () => {
    const key = newStripeKey();
    const { product, price } = await seedPrice(key, "Credits", { interval: null, unitAmount: 1500 });
    const [customer] = await seedCustomers(key, 1);
    const open = (mode = "payment") =>
      stripe(key, "POST", "/v1/checkout/sessions", `mode=${mode}&customer=${customer!.id}&line_items[0][price]=${price.id}&line_items[0][quantity]=2&success_url=https%3A%2F%2Fa.example`);
    const first = (await open()).body;
    const second = (await open()).body;
    await open();
    await completeCheckout(first.id);
    await completeCheckout(second.id);

    const completed = await stripe(key, "GET", `/v1/checkout/sessions?customer=${customer!.id}&status=complete&limit=1`);
    expect(completed.body).toMatchObject({ object: "list", has_more: true, url: "/v1/checkout/sessions" });
    expect(completed.body.data.map((session: { id: string }) => session.id)).toEqual([second.id]);
    const rest = await stripe(
      key,
      "GET",
      `/v1/checkout/sessions?customer=${customer!.id}&status=complete&starting_after=${second.id}&expand[]=data.line_items&expand[]=data.payment_intent.latest_charge`,
    );
    expect(rest.body.has_more).toBe(false);
    expect(rest.body.data).toHaveLength(1);
    expect(rest.body.data[0]).toMatchObject({
      id: first.id,
      mode: "payment",
      status: "complete",
      payment_status: "paid",
      line_items: { object: "list", has_more: false, data: [{ quantity: 2, amount_total: 3000, price: { id: price.id, product: product.id } }] },
      payment_intent: { object: "payment_intent", status: "succeeded", amount: 3000, latest_charge: { object: "charge", amount: 3000, amount_refunded: 0, refunded: false } },
    });
    expect((await stripe(key, "GET", `/v1/checkout/sessions?customer=${customer!.id}&status=open`)).body.data).toHaveLength(1);
    expect((await stripe(newStripeKey(), "GET", "/v1/checkout/sessions")).body.data).toEqual([]);
  });

  it("refuses a one-time price in subscription mode, as Stripe does", async () => {
    const key = newStripeKey();
    const { price } = await seedPrice(key, "Credits", { interval: null });
    const refused = await stripe(key, "POST", "/v1/checkout/sessions", `mode=subscription&line_items[0][price]=${price.id}&success_url=https%3A%2F%2Fa.example`);
    expect(refused.status).toBe(400);
    expect(refused.body.error).toMatchObject({ type: "invalid_request_error", param: "line_items[0][price]" });
  });
});

describe("fake Stripe, official SDK", () => {
  it("creates customers, pages through them and creates a checkout session", async () => {
    const key = newStripeKey();
    const client = sdk(key);
    const customer = await client.customers.create({ email: "sdk@example.com", metadata: { organization: "org_1" } });
    expect(customer).toMatchObject({ object: "customer", email: "sdk@example.com", metadata: { organization: "org_1" } });
    await seedCustomers(key, 4);

    const ids: string[] = [];
    for await (const listed of client.customers.list({ limit: 2 })) ids.push(listed.id);
    expect(ids).toHaveLength(5);
    expect(ids.at(-1)).toBe(customer.id);
    const listCalls = (await stripeRequests(key)).filter((request) => request.method === "GET");
    expect(listCalls.map((request) => request.query.starting_after ?? null)).toEqual([null, ids[1], ids[3]]);

    const { price } = await seedPrice(key, "Team");
    const session = await client.checkout.sessions.create({
      mode: "subscription",
      customer: customer.id,
      line_items: [{ price: price.id, quantity: 1 }],
      client_reference_id: "org_1",
      metadata: { environment: "env_1" },
      success_url: "https://app.example/success",
      automatic_tax: { enabled: true },
    });
    expect(session).toMatchObject({ object: "checkout.session", customer: customer.id, metadata: { environment: "env_1" }, automatic_tax: { enabled: true } });
    const posts = (await stripeRequests(key)).filter((request) => request.method === "POST");
    expect(posts.every((request) => request.idempotencyKey !== null)).toBe(true);

    const missing = await client.customers.retrieve("cus_missing").catch((error: unknown) => error);
    expect(missing).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(missing).toMatchObject({ code: "resource_missing", statusCode: 404 });
  });
});

describe("fake Stripe, lifecycle control", () => {
  it("updates a subscription's status, cancellation at period end, period and items, with previous_attributes", async () => {
    const key = newStripeKey();
    const { product: basic, price } = await seedPrice(key, "Basic", { unitAmount: 1000 });
    const { product: pro, price: upgrade } = await seedPrice(key, "Pro", { unitAmount: 3000 });
    const { subscription } = await subscribe(key, price, { status: "trialing" });
    const item = subscription.items.data[0]!;

    const activated = await updateSubscription(subscription.id, { status: "active" });
    expect(activated.subscription.status).toBe("active");
    expect(activated.events.map((event) => event.type)).toEqual(["customer.subscription.updated"]);
    expect(activated.events[0]!.data.object).toMatchObject({ id: subscription.id, status: "active" });
    expect(previousAttributes(activated.events[0]!)).toEqual({ status: "trialing" });

    const periodEnd = item.current_period_end + 86_400;
    const cancelling = await updateSubscription(subscription.id, { cancel_at_period_end: true, current_period_end: periodEnd });
    expect(cancelling.subscription).toMatchObject({ status: "active", cancel_at_period_end: true, cancel_at: periodEnd });
    expect(cancelling.subscription.canceled_at).toBeGreaterThanOrEqual(subscription.created);
    expect(cancelling.subscription.items.data[0]!.current_period_end).toBe(periodEnd);
    const cancellingPrevious = previousAttributes(cancelling.events[0]!)!;
    expect(Object.keys(cancellingPrevious).sort()).toEqual(["cancel_at", "cancel_at_period_end", "canceled_at", "items"]);
    expect(cancellingPrevious).toMatchObject({ cancel_at: null, cancel_at_period_end: false, canceled_at: null });
    expect((cancellingPrevious.items as Stripe.ApiList<Stripe.SubscriptionItem>).data[0]!.current_period_end).toBe(item.current_period_end);

    const kept = await updateSubscription(subscription.id, { cancel_at_period_end: false });
    expect(kept.subscription).toMatchObject({ cancel_at_period_end: false, cancel_at: null, canceled_at: null });
    expect(previousAttributes(kept.events[0]!)).toEqual({ cancel_at: periodEnd, cancel_at_period_end: true, canceled_at: cancelling.subscription.canceled_at });

    const upgraded = await updateSubscription(subscription.id, { items: [{ price: upgrade.id }] });
    expect(upgraded.subscription.items.data).toHaveLength(1);
    expect(upgraded.subscription.items.data[0]).toMatchObject({ id: item.id, price: { id: upgrade.id, product: pro.id }, current_period_end: periodEnd });
    const upgradedPrevious = previousAttributes(upgraded.events[0]!)!;
    expect(Object.keys(upgradedPrevious)).toEqual(["items"]);
    expect((upgradedPrevious.items as Stripe.ApiList<Stripe.SubscriptionItem>).data[0]!.price).toMatchObject({ id: price.id, product: basic.id });

    for (const status of ["past_due", "unpaid", "paused", "incomplete"] as const) {
      const { events } = await updateSubscription(subscription.id, { status });
      expect(events[0]!.data.object).toMatchObject({ status });
    }
    expect((await updateSubscription(subscription.id, { status: "incomplete" })).events).toEqual([]);
    // Stripe's own API shows the stored change.
    expect(await sdk(key).subscriptions.retrieve(subscription.id)).toMatchObject({ status: "incomplete", items: { data: [{ price: { id: upgrade.id } }] } });
    await expect(updateSubscription(subscription.id, { status: "canceled" as never })).rejects.toThrow(/400/);
  });

  it("cancels a subscription now with customer.subscription.deleted", async () => {
    const key = newStripeKey();
    const { price } = await seedPrice(key, "Basic");
    const { subscription } = await subscribe(key, price);
    const { subscription: canceled, events } = await cancelSubscription(subscription.id);
    expect(canceled).toMatchObject({ id: subscription.id, status: "canceled" });
    expect(canceled.ended_at).toBeGreaterThanOrEqual(subscription.created);
    expect(canceled.canceled_at).toBe(canceled.ended_at);
    expect(events.map((event) => event.type)).toEqual(["customer.subscription.deleted"]);
    expect(events[0]!.data.object).toMatchObject({ id: subscription.id, status: "canceled", ended_at: canceled.ended_at });
    expect((await sdk(key).subscriptions.retrieve(subscription.id)).status).toBe("canceled");
    // As in Stripe, the default list leaves canceled subscriptions out.
    expect((await sdk(key).subscriptions.list({ customer: subscription.customer as string })).data).toEqual([]);
    await expect(cancelSubscription(subscription.id)).rejects.toThrow(/400/);
  });

  it("invoices a subscription: a failed payment makes it past_due, paying makes it active again", async () => {
    const key = newStripeKey();
    const { product, price } = await seedPrice(key, "Team", { unitAmount: 1200 });
    const { subscription } = await subscribe(key, price, { quantity: 3, metadata: { organization: "org_1" } });
    const item = subscription.items.data[0]!;

    const failed = await invoiceSubscription(subscription.id, { paid: false });
    expect(failed.invoice).toMatchObject({
      object: "invoice",
      customer: subscription.customer,
      currency: "usd",
      amount_due: 3600,
      amount_paid: 0,
      amount_remaining: 3600,
      status: "open",
      billing_reason: "subscription_cycle",
      metadata: {},
      period_start: item.current_period_start,
      period_end: item.current_period_end,
      parent: {
        type: "subscription_details",
        subscription_details: { subscription: subscription.id, metadata: { organization: "org_1" } },
        quote_details: null,
      },
      lines: {
        object: "list",
        has_more: false,
        data: [
          {
            object: "line_item",
            amount: 3600,
            currency: "usd",
            quantity: 3,
            pricing: { type: "price_details", price_details: { price: price.id, product: product.id }, unit_amount_decimal: "1200" },
          },
        ],
      },
    });
    expect(failed.invoice.id).toMatch(/^in_/);
    expect(failed.subscription).toMatchObject({ status: "past_due", latest_invoice: failed.invoice.id });
    expect(failed.events.map((event) => event.type)).toEqual(["invoice.payment_failed", "customer.subscription.updated"]);
    expect(failed.events[0]!.data.object).toMatchObject({ id: failed.invoice.id, status: "open" });
    expect(previousAttributes(failed.events[1]!)).toEqual({ status: "active" });

    const paid = await invoiceSubscription(subscription.id, { paid: true });
    expect(paid.invoice).toMatchObject({ status: "paid", amount_due: 3600, amount_paid: 3600, amount_remaining: 0 });
    expect(paid.events.map((event) => event.type)).toEqual(["invoice.paid", "customer.subscription.updated"]);
    expect(paid.events[1]!.data.object).toMatchObject({ status: "active", latest_invoice: paid.invoice.id });
    expect(previousAttributes(paid.events[1]!)).toEqual({ status: "past_due" });

    const renewed = await invoiceSubscription(subscription.id, { paid: true });
    expect(renewed.events.map((event) => event.type)).toEqual(["invoice.paid"]);

    const retrieved = await sdk(key).invoices.retrieve(failed.invoice.id);
    expect(retrieved).toMatchObject({ id: failed.invoice.id, status: "open", parent: { subscription_details: { subscription: subscription.id } } });
    expect(retrieved.lines.data[0]!.pricing?.price_details?.price).toBe(price.id);
    expect((await sdk(newStripeKey()).invoices.retrieve(failed.invoice.id).catch((error: unknown) => error))).toMatchObject({ statusCode: 404 });
  });

  it("disputes a payment's charge with charge.dispute.created", async () => {
    const key = newStripeKey();
    const { price } = await seedPrice(key, "Credits", { interval: null, unitAmount: 4200 });
    const { session } = await subscribe(key, price);
    const paymentIntent = await sdk(key).paymentIntents.retrieve(session.payment_intent as string);
    const { dispute, events } = await disputePayment(paymentIntent.id);
    expect(dispute).toMatchObject({
      object: "dispute",
      amount: 4200,
      currency: "usd",
      charge: paymentIntent.latest_charge,
      payment_intent: paymentIntent.id,
      reason: "fraudulent",
      status: "needs_response",
      metadata: {},
    });
    expect(dispute.id).toMatch(/^dp_/);
    expect(dispute.created).toBeGreaterThan(0);
    expect(events.map((event) => event.type)).toEqual(["charge.dispute.created"]);
    expect(events[0]!.data.object).toEqual(dispute);
    expect((await sdk(key).charges.retrieve(paymentIntent.latest_charge as string)).disputed).toBe(true);
    expect(await sdk(key).disputes.retrieve(dispute.id)).toMatchObject({ id: dispute.id, status: "needs_response" });
    await expect(disputePayment(paymentIntent.id)).rejects.toThrow(/400/);
  });

  it("refunds a payment in part, then the rest, with charge.refunded", async () => {
    const key = newStripeKey();
    const { price } = await seedPrice(key, "Credits", { interval: null, unitAmount: 1000 });
    const { session } = await subscribe(key, price);
    const partly = await refundPayment(session.payment_intent as string, 400);
    expect(partly.charge).toMatchObject({ object: "charge", amount_refunded: 400, refunded: false });
    expect(partly.events.map((event) => event.type)).toEqual(["charge.refunded"]);
    const fully = await refundPayment(session.payment_intent as string);
    expect(fully.charge).toMatchObject({ amount_refunded: 1000, refunded: true });
  });
});

describe("fake Stripe, official SDK retrievals", () => {
  it("retrieves a subscription, a checkout session with its line items and a charge", async () => {
    const key = newStripeKey();
    const client = sdk(key);
    const { product, price } = await seedPrice(key, "Pro", { unitAmount: 2000 });
    const { session, subscription } = await subscribe(key, price, { quantity: 2 });
    expect(await client.subscriptions.retrieve(subscription.id)).toMatchObject({
      object: "subscription",
      id: subscription.id,
      status: "active",
      customer: session.customer,
      items: { data: [{ quantity: 2, price: { id: price.id } }] },
    });

    const expanded = await client.checkout.sessions.retrieve(session.id, { expand: ["line_items"] });
    expect(expanded.line_items).toMatchObject({ object: "list", data: [{ quantity: 2, amount_total: 4000, price: { id: price.id, product: product.id } }] });

    const { price: oneTime } = await seedPrice(key, "Credits", { interval: null, unitAmount: 700 });
    const { session: payment } = await subscribe(key, oneTime);
    const paymentIntent = await client.paymentIntents.retrieve(payment.payment_intent as string);
    expect(await client.charges.retrieve(paymentIntent.latest_charge as string)).toMatchObject({
      object: "charge",
      amount: 700,
      payment_intent: paymentIntent.id,
      disputed: false,
      refunded: false,
    });
  });
});
