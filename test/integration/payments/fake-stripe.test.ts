/** The fake Stripe the payment tests run against, reached from workerd: Stripe's wire format, pagination, checkout. */
import Stripe from "stripe";
import { describe, expect, it } from "vitest";
import { completeCheckout, newStripeKey, seedCustomers, seedPrice, stripeApiBase, stripeRequests } from "../../support/stripe";

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
