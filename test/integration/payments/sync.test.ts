/**
 * Customer sync against the fake Stripe: the admin route starts a backfill, the payments queue's consumer runs it one
 * page per message (driven here step by step), and the payment state it leaves is what webhooks would have written —
 * links, subscriptions, purchases — so decisions give the linked plans without any webhook.
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { CustomerSyncMessage } from "../../../workers/payments/sync";
import { storeOf } from "../../../workers/services/tenancy";
import { PAYMENT_MAX_RETRIES } from "../../../workers/workflows/paymentEvents";
import { call, createOrganization, publish, type TestOrganization } from "../../support/api";
import { expectConsoleError } from "../../support/console";
import { newsSite } from "../../support/examples";
import { type CapturedPayments, capturePayments, connectStripe, deliverPaymentMessages, type StripeAccount, payOnFakeStripe } from "../../support/payments";
import { fakeStripe, refundPayment, seedCustomers, seedPrice } from "../../support/stripe";

let payments: CapturedPayments;
beforeEach(() => {
  payments = capturePayments();
});
afterEach(() => {
  vi.restoreAllMocks();
  payments.restore();
});

interface Shop {
  org: TestOrganization;
  environmentId: string;
  account: StripeAccount;
  priceId: string;
  productId: string;
}

/** A news site in a preview environment connected to its own fake Stripe account, Premium linked to a product. */
async function shop(): Promise<Shop> {
  const org = await createOrganization("Customer sync");
  const environmentId = org.preview.id;
  const account = await connectStripe(org, environmentId);
  const { product, price } = await seedPrice(account.key, "Premium");
  const document = newsSite();
  document.plans.premium.stripeProductIds = [product.id];
  await publish(org.adminKey, document, [environmentId]);
  return { org, environmentId, account, priceId: price.id, productId: product.id };
}

const syncPath = (environmentId: string) => `/api/v1/admin/environments/${environmentId}/payments/stripe/sync`;
const startSync = (shop: Shop, body: Record<string, unknown> = {}) => call("POST", syncPath(shop.environmentId), { key: shop.org.adminKey, body });

async function progress(shop: Shop) {
  const response = await call("GET", syncPath(shop.environmentId), { key: shop.org.adminKey });
  expect(response.status).toBe(200);
  return response.body;
}

/** Customers `user-<i>` (metadata.identifier) with emails `user-<i>@example.com`. */
async function seedIdentifiedCustomers(key: string, count: number): Promise<Array<{ id: string }>> {
  const customers = Array.from({ length: count }, (_, index) => ({ email: `user-${index}@example.com`, metadata: { identifier: `user-${index}` } }));
  const { data } = await fakeStripe<{ data: Array<{ id: string }> }>("customers", { key, body: { customers } });
  return data;
}

/** A checkout opened through the platform's gateway for an existing customer, paid on the fake's hosted page. */
function buy(shop: Shop, customerId: string, identifier: string, priceId = shop.priceId, mode: "subscription" | "payment" = "subscription") {
  return payOnFakeStripe(shop.account, shop.org.id, { priceId, identifier, mode, customerId });
}

async function hasPremium(shop: Shop, identifier: string): Promise<boolean> {
  const response = await call("POST", "/api/v1/access-checks", { key: shop.org.preview.secretKey, body: { identity: { userIdentifier: identifier } } });
  expect(response.status).toBe(200);
  return response.body.features.articles.properties.premium.value;
}

async function links(shop: Shop) {
  const { results } = await env.DB.prepare("SELECT customer_id, identifier, linked_by FROM payment_customers WHERE organization_id = ? ORDER BY customer_id")
    .bind(shop.org.id)
    .all<{ customer_id: string; identifier: string; linked_by: string }>();
  return results;
}

const syncSteps = () => payments.sent.filter((body) => (body as unknown as CustomerSyncMessage).kind === "sync") as unknown as CustomerSyncMessage[];

describe("customer sync", () => {
  it("backfills 1,000 customers page by page with progress, and decisions give their linked plans", async () => {
    const shop_ = await shop();
    const customers = await seedIdentifiedCustomers(shop_.account.key, 1000);
    // Every 50th customer subscribes (20), through the platform's checkout; no webhook is ever delivered.
    const subscribers = customers.map((customer, index) => ({ ...customer, index })).filter(({ index }) => index % 50 === 0);
    for (const { id, index } of subscribers) await buy(shop_, id, `user-${index}`);
    // Two one-time purchases of Premium: one kept, one refunded in full.
    const oneTime = await fakeStripe<{ id: string }>("prices", { key: shop_.account.key, body: { product: shop_.productId, currency: "usd", unit_amount: 5000 } });
    const kept = await buy(shop_, customers[1]!.id, "user-1", oneTime.id, "payment");
    const refunded = await buy(shop_, customers[2]!.id, "user-2", oneTime.id, "payment");
    await refundPayment(refunded.session.payment_intent as string);

    const started = await startSync(shop_);
    expect(started.status).toBe(202);
    expect(started.body).toMatchObject({ state: "running", phase: "customers", matchBy: "metadata", customersSeen: 0, finishedAt: null, lastError: null });

    await payments.deliver({ maxMessages: 1 });
    expect(await progress(shop_)).toMatchObject({ id: started.body.id, state: "running", phase: "customers", customersSeen: 100, customersLinked: 100 });
    await payments.deliver({ maxMessages: 4 });
    expect(await progress(shop_)).toMatchObject({ state: "running", phase: "customers", customersSeen: 500, customersLinked: 500, subscriptionsSeen: 0 });

    await payments.deliver();
    const done = await progress(shop_);
    expect(done).toEqual({
      id: started.body.id,
      state: "done",
      phase: "purchases",
      matchBy: "metadata",
      customersSeen: 1000,
      customersLinked: 1000,
      subscriptionsSeen: 20,
      purchasesSeen: 2,
      startedAt: started.body.startedAt,
      updatedAt: expect.any(String),
      finishedAt: expect.any(String),
      lastError: null,
    });
    // 10 pages of customers, one of subscriptions, one of purchases.
    expect(syncSteps().map((step) => step.step)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);

    const linked = await links(shop_);
    expect(linked).toHaveLength(1000);
    expect(new Set(linked.map((link) => link.linked_by))).toEqual(new Set(["sync"]));
    const byCustomer = new Map(linked.map((link) => [link.customer_id, link.identifier]));
    customers.forEach((customer, index) => expect(byCustomer.get(customer.id)).toBe(`user-${index}`));

    const { results: subscriptions } = await env.DB.prepare("SELECT customer_id, state, product_ids FROM payment_subscriptions WHERE organization_id = ?")
      .bind(shop_.org.id)
      .all<{ customer_id: string; state: string; product_ids: string }>();
    expect(subscriptions.map((row) => row.customer_id).sort()).toEqual(subscribers.map(({ id }) => id).sort());
    expect(subscriptions.every((row) => row.state === "active" && row.product_ids === JSON.stringify([shop_.productId]))).toBe(true);
    const { results: purchases } = await env.DB.prepare("SELECT payment_id, state FROM payment_purchases WHERE organization_id = ? ORDER BY state")
      .bind(shop_.org.id)
      .all<{ payment_id: string; state: string }>();
    expect(purchases).toEqual([
      { payment_id: kept.session.payment_intent, state: "paid" },
      { payment_id: refunded.session.payment_intent, state: "refunded" },
    ]);
    // Every transition the sync wrote was dispatched (recorded as payment events).
    const undispatched = await env.DB.prepare("SELECT COUNT(*) AS n FROM payment_transitions WHERE environment_id = ? AND dispatched_at IS NULL").bind(shop_.environmentId).first<{ n: number }>();
    expect(undispatched?.n).toBe(0);
    const recorded = await call("GET", `/api/v1/admin/events?environmentId=${shop_.environmentId}&kind=payment&limit=100`, { key: shop_.org.adminKey });
    expect(recorded.status).toBe(200);
    expect(recorded.body.events).toHaveLength(22);
    expect(recorded.body.events[0].record).toMatchObject({ providerEventId: null, syncId: started.body.id });

    expect(await hasPremium(shop_, "user-0")).toBe(true);
    expect(await hasPremium(shop_, "user-950")).toBe(true);
    expect(await hasPremium(shop_, "user-1")).toBe(true); // the one-time purchase
    expect(await hasPremium(shop_, "user-2")).toBe(false); // refunded in full
    expect(await hasPremium(shop_, "user-3")).toBe(false); // linked, paid for nothing
  }, 30_000);

  it("a step that fails is retried and the result is exact; a step whose page committed before it failed only carries on", async () => {
    const shop_ = await shop();
    await seedIdentifiedCustomers(shop_.account.key, 250);
    expect((await startSync(shop_)).status).toBe(202);
    await payments.deliver({ maxMessages: 1 });

    // D1 refuses the second page's batch: nothing of it is written, the step is retried.
    const batch = vi.spyOn(env.DB, "batch").mockRejectedValueOnce(new Error("D1 is unavailable"));
    const [failed] = await payments.deliver({ allowRetries: true, maxMessages: 1 });
    expect(failed!.retryMessages).toHaveLength(1);
    expect(await progress(shop_)).toMatchObject({ state: "running", customersSeen: 100 });
    batch.mockRestore();
    await deliverPaymentMessages([syncSteps().at(-1)!], 2);
    expect(await progress(shop_)).toMatchObject({ state: "running", customersSeen: 200 });

    // The third page commits but its next step cannot be enqueued: the retry enqueues it without redoing the page.
    vi.mocked(env.PAYMENTS.send).mockRejectedValueOnce(new Error("queue unavailable"));
    const [unsent] = await payments.deliver({ allowRetries: true, maxMessages: 1 });
    expect(unsent!.retryMessages).toHaveLength(1);
    expect(await progress(shop_)).toMatchObject({ state: "running", phase: "subscriptions", customersSeen: 250 });
    await deliverPaymentMessages([syncSteps().at(-1)!], 2);
    await payments.deliver();
    expect(await progress(shop_)).toMatchObject({ state: "done", customersSeen: 250, customersLinked: 250, subscriptionsSeen: 0, purchasesSeen: 0 });
    expect(await links(shop_)).toHaveLength(250);
  });

  it("POST while running resumes from where the sync is; restart starts over and the old steps stop", async () => {
    const shop_ = await shop();
    await seedIdentifiedCustomers(shop_.account.key, 250);
    const first = await startSync(shop_);
    await payments.deliver({ maxMessages: 1 });
    // The queue delivers at least once: the first step delivered again does nothing.
    await deliverPaymentMessages([syncSteps()[0]!]);
    expect(syncSteps()).toHaveLength(2);
    expect(await progress(shop_)).toMatchObject({ customersSeen: 100 });

    const resumed = await startSync(shop_);
    expect(resumed.status).toBe(202);
    expect(resumed.body).toMatchObject({ id: first.body.id, state: "running", customersSeen: 100 });
    // Both the chain's own step and the resumed one are queued: only one acts (and enqueues the next).
    await payments.deliver();
    expect(syncSteps().map((step) => step.step)).toEqual([0, 1, 1, 2, 3, 4]);
    expect(await progress(shop_)).toMatchObject({ id: first.body.id, state: "done", customersSeen: 250, customersLinked: 250 });

    // A done sync starts over.
    const again = await startSync(shop_);
    expect(again.body).toMatchObject({ state: "running", customersSeen: 0 });
    expect(again.body.id).not.toBe(first.body.id);
    await payments.deliver({ maxMessages: 1 });
    // Changing how customers match needs a restart.
    expect((await startSync(shop_, { matchBy: "email" })).status).toBe(409);
    const restarted = await startSync(shop_, { restart: true, matchBy: "email" });
    expect(restarted.status).toBe(202);
    expect(restarted.body).toMatchObject({ state: "running", phase: "customers", matchBy: "email", customersSeen: 0 });
    expect(restarted.body.id).not.toBe(again.body.id);
    await payments.deliver();
    expect(await progress(shop_)).toMatchObject({ id: restarted.body.id, state: "done", customersSeen: 250, customersLinked: 250 });
  });

  it("matchBy email links customers by their email and never overrides an operator's link", async () => {
    const shop_ = await shop();
    const seeded = await seedCustomers(shop_.account.key, 3);
    await fakeStripe("customers", { key: shop_.account.key, body: { customers: [{ name: "No email" }] } });
    const store = storeOf({ type: "preview" });
    await env.DB.prepare("INSERT INTO payment_customers (organization_id, store, provider, customer_id, identifier, linked_by, updated_at) VALUES (?, ?, 'stripe', ?, 'vip', 'admin', ?)")
      .bind(shop_.org.id, store, seeded[0]!.id, new Date().toISOString())
      .run();

    // By metadata (the default), customers without metadata.identifier are seen but not linked.
    await startSync(shop_);
    await payments.deliver();
    expect(await progress(shop_)).toMatchObject({ state: "done", customersSeen: 4, customersLinked: 0 });

    expect((await startSync(shop_, { matchBy: "email" })).status).toBe(202);
    await payments.deliver();
    expect(await progress(shop_)).toMatchObject({ state: "done", matchBy: "email", customersSeen: 4, customersLinked: 3 });
    const linked = new Map((await links(shop_)).map((link) => [link.customer_id, link]));
    expect(linked.size).toBe(3);
    expect(linked.get(seeded[0]!.id)).toMatchObject({ identifier: "vip", linked_by: "admin" });
    expect(linked.get(seeded[1]!.id)).toMatchObject({ identifier: seeded[1]!.email, linked_by: "sync" });
    expect(linked.get(seeded[2]!.id)).toMatchObject({ identifier: seeded[2]!.email, linked_by: "sync" });
  });

  it("a sync of an empty account is done with zero counts", async () => {
    const shop_ = await shop();
    await startSync(shop_);
    await payments.deliver();
    expect(await progress(shop_)).toMatchObject({ state: "done", customersSeen: 0, customersLinked: 0, subscriptionsSeen: 0, purchasesSeen: 0, lastError: null });
    expect(syncSteps()).toHaveLength(3);
  });

  it("marks the sync failed after the queue's last retry, and a new POST starts it over", async () => {
    const shop_ = await shop();
    await seedIdentifiedCustomers(shop_.account.key, 5);
    const started = await startSync(shop_);
    const logged = expectConsoleError("customer_sync_failed");
    vi.spyOn(env.DB, "batch").mockRejectedValueOnce(new Error("D1 is unavailable"));
    const result = await deliverPaymentMessages([syncSteps()[0]!], PAYMENT_MAX_RETRIES + 1);
    expect(result.retryMessages).toEqual([]);
    expect(logged.lines).toHaveLength(1);
    expect(await progress(shop_)).toMatchObject({ id: started.body.id, state: "failed", customersSeen: 0, lastError: "D1 is unavailable", finishedAt: expect.any(String) });

    const again = await startSync(shop_);
    expect(again.body).toMatchObject({ state: "running", lastError: null });
    expect(again.body.id).not.toBe(started.body.id);
    await payments.deliver();
    expect(await progress(shop_)).toMatchObject({ state: "done", customersSeen: 5, customersLinked: 5 });
  });

  it("answers 409 for an environment not connected to Stripe, 404 without a sync, and 404 for another organization's environment", async () => {
    const shop_ = await shop();
    const unconnected = await call("POST", syncPath(shop_.org.live.id), { key: shop_.org.adminKey, body: {} });
    expect(unconnected.status).toBe(409);
    expect(unconnected.body).toMatchObject({ status: "error", code: "conflict" });
    expect((await call("GET", syncPath(shop_.environmentId), { key: shop_.org.adminKey })).status).toBe(404);

    const other = await createOrganization("Someone else");
    for (const method of ["POST", "GET"]) {
      const foreign = await call(method, syncPath(shop_.environmentId), { key: other.adminKey, ...(method === "POST" ? { body: {} } : {}) });
      expect(foreign.status).toBe(404);
    }
    // A body is optional; a wrong one is a 400.
    expect((await call("POST", syncPath(shop_.environmentId), { key: shop_.org.adminKey, body: { matchBy: "phone" } })).status).toBe(400);
    expect((await call("POST", syncPath(shop_.environmentId), { key: shop_.org.adminKey })).status).toBe(202);
    expect(payments.sent).toHaveLength(1);
  });
});
