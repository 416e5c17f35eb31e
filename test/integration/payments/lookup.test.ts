/**
 * Real-time customer lookup: a decision meeting a signed-in identity without a customer record asks, in the
 * background, whether that identity paid (webhooks lost, or paid before the environment was connected); the answer
 * lands through the payments queue and the next decisions hold the linked plan. Bounded: once per identity per hour.
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { call, createOrganization, publish, waitForBackgroundWork } from "../../support/api";
import { newsSite } from "../../support/examples";
import { type CapturedPayments, capturePayments, connectStripe, payOnFakeStripe } from "../../support/payments";
import { seedPrice, stripeRequests } from "../../support/stripe";

let payments: CapturedPayments;
beforeEach(() => {
  payments = capturePayments();
});
afterEach(() => payments.restore());

async function connectedShop(oneTime = false) {
  const org = await createOrganization("Lookups");
  const environmentId = org.preview.id;
  const account = await connectStripe(org, environmentId);
  const { product, price } = await seedPrice(account.key, "Premium", { interval: oneTime ? null : "month" });
  const document = newsSite();
  document.plans.premium.stripeProductIds = [product.id];
  await publish(org.adminKey, document, [environmentId]);
  /** Pays on the fake's hosted page; its webhooks are never delivered (lost, or sent before the connection). */
  const payUnseen = (identifier: string) => payOnFakeStripe(account, org.id, { priceId: price.id, identifier, mode: oneTime ? "payment" : "subscription" });
  const premium = async (identifier: string) => {
    const decision = await call("POST", "/api/v1/access-checks", { key: org.preview.secretKey, body: { identity: { userIdentifier: identifier } } });
    expect(decision.status).toBe(200);
    return decision.body.features.articles.properties.premium.value as boolean;
  };
  return { org, environmentId, account, payUnseen, premium };
}

const lookups = () => payments.sent.filter((message) => "kind" in message && message.kind === "lookup");

describe("real-time customer lookup", () => {
  it("finds a subscriber whose webhooks never arrived: the next decision holds the plan, without waiting on the first", async () => {
    const shop = await connectedShop();
    const identifier = `lost-${crypto.randomUUID()}@example.com`;
    await shop.payUnseen(identifier);
    // The first decision does not wait for the provider: no plan yet, one lookup requested in the background.
    expect(await shop.premium(identifier)).toBe(false);
    await waitForBackgroundWork();
    expect(lookups()).toEqual([{ kind: "lookup", organizationId: shop.org.id, environmentId: shop.environmentId, identifier }]);
    await payments.deliver();
    expect(await shop.premium(identifier)).toBe(true);
    // Found through the search, linked, recorded like a webhook's transition.
    const customer = await call("GET", `/api/v1/admin/environments/${shop.environmentId}/customers/${encodeURIComponent(identifier)}`, { key: shop.org.adminKey });
    expect(customer.body).toMatchObject({ subscriptions: [{ state: "active", access: { granted: true } }] });
    const recorded = await call("GET", `/api/v1/admin/events?environmentId=${shop.environmentId}&kind=payment&identifier=${encodeURIComponent(identifier)}`, {
      key: shop.org.adminKey,
    });
    expect(recorded.body.events).toEqual([expect.objectContaining({ outcome: "active", record: expect.objectContaining({ from: null, to: "active" }) })]);
  });

  it("finds one-time purchases too", async () => {
    const shop = await connectedShop(true);
    const identifier = `buyer-${crypto.randomUUID()}@example.com`;
    await shop.payUnseen(identifier);
    expect(await shop.premium(identifier)).toBe(false);
    await waitForBackgroundWork();
    await payments.deliver();
    expect(await shop.premium(identifier)).toBe(true);
  });

  it("asks the provider at most once per identity and hour, across decisions and isolates", async () => {
    const shop = await connectedShop();
    const identifier = `nobody-${crypto.randomUUID()}@example.com`;
    for (let i = 0; i < 5; i++) expect(await shop.premium(identifier)).toBe(false);
    await waitForBackgroundWork();
    // This isolate asked once.
    expect(lookups()).toHaveLength(1);
    const message = lookups()[0]!;
    await payments.deliver();
    const searches = async () => (await stripeRequests(shop.account.key)).filter((request) => request.path.endsWith("/search")).length;
    const asked = await searches();
    expect(asked).toBe(3);
    const row = await env.DB.prepare("SELECT customers_found FROM payment_lookups WHERE identifier = ?").bind(identifier).first<{ customers_found: number }>();
    expect(row).toEqual({ customers_found: 0 });
    // Another isolate asking again within the hour: the consumer does not call the provider.
    const { deliverPaymentMessages } = await import("../../support/payments");
    await deliverPaymentMessages([message]);
    expect(await searches()).toBe(asked);
  });

  it("asks nothing for anonymous visitors, known customers, or an environment without Stripe", async () => {
    const shop = await connectedShop();
    await call("POST", "/api/v1/access-checks", { key: shop.org.preview.secretKey, body: { identity: { anonymousIdentifier: `visitor-${crypto.randomUUID()}` } } });
    await call("PUT", `/api/v1/admin/environments/${shop.environmentId}/customers/known@example.com`, { key: shop.org.adminKey, body: { stripeProductIds: [] } });
    expect(await shop.premium("known@example.com")).toBe(false);
    // The live environment has no Stripe connection.
    await publish(shop.org.adminKey, newsSite(), [shop.org.live.id]);
    await call("POST", "/api/v1/access-checks", { key: shop.org.live.secretKey, body: { identity: { userIdentifier: `live-${crypto.randomUUID()}@example.com` } } });
    await waitForBackgroundWork();
    expect(lookups()).toEqual([]);
  });
});
