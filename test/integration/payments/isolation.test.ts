/**
 * What a store takes from the payment provider is its own: two organizations on one Stripe account never see each
 * other's purchases, an operator's link of a customer stands against later webhooks, and a moved customer leaves its
 * former identity. Also the webhook route's answer to signed payloads it cannot read, and a lookup whose dispatch failed.
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { call, createOrganization, publish, type TestOrganization, waitForBackgroundWork } from "../../support/api";
import { newsSite } from "../../support/examples";
import { type CapturedPayments, capturePayments, postWebhook, payOnFakeStripe } from "../../support/payments";
import { invoiceSubscription, newStripeKey, seedPrice } from "../../support/stripe";
import { expectConsoleError } from "../../support/console";
import { recordTriggersAction } from "../../support/workflows";

let payments: CapturedPayments;
beforeEach(() => {
  payments = capturePayments();
});
afterEach(() => payments.restore());

interface Tenant {
  org: TestOrganization;
  environmentId: string;
  webhookSecret: string;
}

/** An organization whose preview environment is connected to the Stripe account `key`, Premium linked to `productId`. */
async function tenantOn(key: string, productId: string, workflows?: Record<string, unknown>): Promise<Tenant> {
  const org = await createOrganization("Shared account");
  const webhookSecret = `whsec_${crypto.randomUUID().replaceAll("-", "")}`;
  const put = await call("PUT", `/api/v1/admin/environments/${org.preview.id}/payments/stripe`, { key: org.adminKey, body: { secretKey: key, webhookSecret } });
  expect(put.status).toBe(200);
  const document = newsSite();
  document.plans.premium.stripeProductIds = [productId];
  if (workflows) document.workflows = workflows;
  await publish(org.adminKey, document, [org.preview.id]);
  return { org, environmentId: org.preview.id, webhookSecret };
}

async function premium(tenant: Tenant, identifier: string): Promise<boolean> {
  const decision = await call("POST", "/api/v1/access-checks", { key: tenant.org.preview.secretKey, body: { identity: { userIdentifier: identifier } } });
  expect(decision.status).toBe(200);
  return decision.body.features.articles.properties.premium.value;
}

function subscribe(key: string, tenant: Tenant, priceId: string, identifier: string) {
  return payOnFakeStripe({ key, webhookSecret: tenant.webhookSecret }, tenant.org.id, { priceId, identifier });
}

async function deliver(tenant: Tenant, events: unknown[]) {
  for (const event of events) expect((await postWebhook(tenant.environmentId, event as Record<string, unknown>, tenant.webhookSecret)).status).toBe(200);
  await payments.deliver();
}

describe("two organizations on one Stripe account", () => {
  it("never take each other's purchases: not from webhooks, not from a lookup", async () => {
    const key = newStripeKey();
    const { product, price } = await seedPrice(key, "Premium");
    const a = await tenantOn(key, product.id);
    const b = await tenantOn(key, product.id);
    const identifier = `alice-${crypto.randomUUID()}@example.com`;
    const bought = await subscribe(key, b, price.id, identifier);
    // Both organizations registered a webhook endpoint on the account: both receive B's events.
    await deliver(b, bought.events);
    await deliver(a, bought.events);
    expect(await premium(b, identifier)).toBe(true);
    expect(await premium(a, identifier)).toBe(false);
    // A's decision for that identifier looks it up at Stripe, and finds nothing of A's.
    await waitForBackgroundWork();
    await payments.deliver();
    expect(await premium(a, identifier)).toBe(false);
    const aCustomer = await call("GET", `/api/v1/admin/environments/${a.environmentId}/customers/${encodeURIComponent(identifier)}`, { key: a.org.adminKey });
    expect(aCustomer.status).toBe(404);
    // A renewal of B's subscription reaches A too, and still changes nothing there.
    await deliver(a, (await invoiceSubscription(bought.session.subscription as string, { paid: true })).events);
    expect(await premium(a, identifier)).toBe(false);
    const rows = await env.DB.prepare("SELECT COUNT(*) AS n FROM payment_subscriptions WHERE organization_id = ?").bind(a.org.id).first<{ n: number }>();
    expect(rows).toEqual({ n: 0 });
  });
});

describe("customer links", () => {
  it("an operator's move of a customer leaves the former identity without it, and later webhooks do not move it back", async () => {
    const key = newStripeKey();
    const { product, price } = await seedPrice(key, "Premium");
    const tenant = await tenantOn(key, product.id);
    const bought = await subscribe(key, tenant, price.id, "alice@example.com");
    await deliver(tenant, bought.events);
    const customerId = bought.session.customer as string;
    const base = `/api/v1/admin/environments/${tenant.environmentId}/customers`;
    expect((await call("PUT", `${base}/bob@example.com`, { key: tenant.org.adminKey, body: { stripeCustomerId: customerId, stripeProductIds: [] } })).status).toBe(200);
    const alice = await call("GET", `${base}/alice@example.com`, { key: tenant.org.adminKey });
    expect(alice.body).toMatchObject({ stripeCustomerId: null, paymentCustomerIds: [], entitledProductIds: [] });
    expect(await premium(tenant, "alice@example.com")).toBe(false);
    expect(await premium(tenant, "bob@example.com")).toBe(true);

    // A renewal still carries metadata.identifier = alice: the operator's link stands.
    await deliver(tenant, (await invoiceSubscription(bought.session.subscription as string, { paid: true })).events);
    expect((await call("GET", `${base}/alice@example.com`, { key: tenant.org.adminKey })).body).toMatchObject({ stripeCustomerId: null, paymentCustomerIds: [] });
    expect(await premium(tenant, "alice@example.com")).toBe(false);
    expect(await premium(tenant, "bob@example.com")).toBe(true);
  });
});

describe("robustness", () => {
  it("answers 400, never a 500, to a correctly signed payload it cannot read", async () => {
    const key = newStripeKey();
    const { product } = await seedPrice(key, "Premium");
    const tenant = await tenantOn(key, product.id);
    for (const event of [
      { id: "evt_weird", object: "event", type: "customer.subscription.updated", created: 1 },
      { id: "evt_no_object", object: "event", type: "checkout.session.completed", created: 1, data: {} },
      { id: "evt_no_created", object: "event", type: "charge.refunded", data: { object: { id: "ch_1", object: "charge", metadata: {} } } },
    ]) {
      const answer = await postWebhook(tenant.environmentId, event, tenant.webhookSecret);
      expect(answer.status, JSON.stringify(event)).toBe(400);
      expect(answer.body).toMatchObject({ status: "error", code: "bad_request" });
    }
    const nullEvent = await postWebhook(tenant.environmentId, null as unknown as Record<string, unknown>, tenant.webhookSecret);
    expect(nullEvent.status).toBe(400);
    expect(payments.sent).toEqual([]);
  });

  it("a lookup whose dispatch failed dispatches what it found when it is retried", async () => {
    const key = newStripeKey();
    const { product, price } = await seedPrice(key, "Premium");
    const tenant = await tenantOn(key, product.id, { "on-plans": recordTriggersAction(["plans.changed"]) });
    const identifier = `lost-${crypto.randomUUID()}@example.com`;
    await subscribe(key, tenant, price.id, identifier);
    expect(await premium(tenant, identifier)).toBe(false);
    await waitForBackgroundWork();
    const lookup = payments.sent.find((message) => "kind" in message && message.kind === "lookup")!;
    payments.restore();
    payments = capturePayments();
    // The trigger queue refuses plans.changed on the first attempt (logged as an error): the lookup's message is retried.
    expectConsoleError("triggers_not_enqueued");
    const triggers = env.TRIGGERS as Queue<unknown>;
    const refuse = vi.spyOn(triggers, "sendBatch").mockRejectedValue(new Error("queue down"));
    const { deliverPaymentMessages } = await import("../../support/payments");
    const first = await deliverPaymentMessages([lookup]);
    expect(first.retryMessages).toHaveLength(1);
    refuse.mockRestore();
    const sent = vi.spyOn(triggers, "sendBatch").mockResolvedValue({ metadata: { metrics: { backlogCount: 0, backlogBytes: 0 } } } as never);
    try {
      const retried = await deliverPaymentMessages([lookup], 2);
      expect(retried.retryMessages).toEqual([]);
      const messages = sent.mock.calls.flatMap(([batch]) => [...batch].map((message) => message.body as { trigger: string; payload: { reason?: string } }));
      expect(messages.filter((message) => message.trigger === "plans.changed")).toEqual([expect.objectContaining({ payload: expect.objectContaining({ reason: "payment" }) })]);
    } finally {
      sent.mockRestore();
    }
    const undispatched = await env.DB.prepare("SELECT COUNT(*) AS n FROM payment_transitions WHERE environment_id = ? AND dispatched_at IS NULL").bind(tenant.environmentId).first<{ n: number }>();
    expect(undispatched).toEqual({ n: 0 });
    expect(await premium(tenant, identifier)).toBe(true);
  });
});
