/**
 * `utils.payments`: workflows read the identity's customer record and invoices and open Checkout and billing-portal
 * sessions through the environment's connection, scoped to the request's identity — never holding the keys.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { call, createOrganization, publish } from "../../support/api";
import { newsSite } from "../../support/examples";
import { type CapturedPayments, capturePayments, connectStripe, postWebhook, payOnFakeStripe } from "../../support/payments";
import { completeCheckout, invoiceSubscription, seedPrice } from "../../support/stripe";

let payments: CapturedPayments;
beforeEach(() => {
  payments = capturePayments();
});
afterEach(() => payments.restore());

const ORIGIN = "https://news.example";

/** A surface workflow that reports what utils.payments answers, in the surface's properties. */
const REPORTER = `
export default async ({ utils }) => {
  const attempt = async (call) => {
    try { return { ok: await call() }; } catch (error) { return { error: String(error.message ?? error) }; }
  };
  return {
    properties: {
      customer: await utils.payments.customer(),
      invoices: await attempt(() => utils.payments.invoices({ limit: 5 })),
      portal: await attempt(() => utils.payments.createPortalSession({ returnUrl: "${ORIGIN}/account" })),
      checkout: await attempt(() => utils.payments.createCheckoutSession({ plan: "premium", successUrl: "${ORIGIN}/thanks", cancelUrl: "${ORIGIN}/pricing" })),
      foreign: await attempt(() => utils.payments.createCheckoutSession({ plan: "premium", successUrl: "https://evil.example/", cancelUrl: "${ORIGIN}/pricing" })),
    },
  };
};`;

async function shopWithReporter() {
  const org = await createOrganization("Workflow payments");
  const environmentId = org.preview.id;
  const account = await connectStripe(org, environmentId, undefined, { allowedOrigins: [ORIGIN], automaticTax: false });
  const { product, price } = await seedPrice(account.key, "Premium");
  const document = newsSite();
  document.plans.premium.stripeProductIds = [product.id];
  document.workflows = { reporter: { type: "surface", surface: "article-page", deadlineMs: 5000, source: REPORTER } };
  await publish(org.adminKey, document, [environmentId]);
  return { org, environmentId, account, productId: product.id, priceId: price.id };
}

async function report(key: string, identity: Record<string, string>) {
  const decision = await call("POST", "/api/v1/surface-decisions", { key, body: { surfaceSlug: "article-page", identity } });
  expect(decision.status, JSON.stringify(decision.body)).toBe(200);
  return decision.body.surfaceBehavior.properties;
}

describe("utils.payments", () => {
  it("reads the customer and invoices and opens sessions for the request's signed-in identity", async () => {
    const shop = await shopWithReporter();
    const before = await report(shop.org.preview.secretKey, { userIdentifier: "reader@example.com" });
    expect(before.customer).toEqual({ isCustomer: false, customerIds: [], productIds: [], subscriptions: [], purchases: [] });
    expect(before.invoices).toEqual({ ok: [] });
    expect(before.portal.error).toMatch(/no Stripe customer yet/);
    expect(before.checkout.ok).toEqual({ id: expect.stringMatching(/^cs_/), url: expect.any(String), mode: "subscription" });
    expect(before.foreign.error).toMatch(/not one of the environment's allowed origins/);

    // The checkout the workflow opened is paid; its webhooks arrive.
    const { events, session } = await completeCheckout(before.checkout.ok.id);
    const invoiced = await invoiceSubscription(session.subscription as string, { paid: true });
    for (const event of [...events, ...invoiced.events]) expect((await postWebhook(shop.environmentId, event, shop.account.webhookSecret)).status).toBe(200);
    await payments.deliver();

    const after = await report(shop.org.preview.secretKey, { userIdentifier: "reader@example.com" });
    expect(after.customer).toMatchObject({
      isCustomer: true,
      customerIds: [session.customer],
      productIds: [shop.productId],
      subscriptions: [{ id: session.subscription, state: "active", access: { granted: true, until: null } }],
    });
    expect(after.invoices.ok).toEqual([expect.objectContaining({ id: invoiced.invoice.id, status: "paid", subscriptionId: session.subscription })]);
    expect(after.portal.ok).toEqual({ url: expect.stringContaining("/p/session/") });
    // Nothing of the connection's secrets reaches the workflow's results.
    expect(JSON.stringify(after)).not.toContain(shop.account.key);
  });

  it("gives anonymous visitors no customer and no sessions, and another identity nothing of this one's", async () => {
    const shop = await shopWithReporter();
    const { events } = await payOnFakeStripe(shop.account, shop.org.id, { priceId: shop.priceId, identifier: "payer@example.com" });
    for (const event of events) await postWebhook(shop.environmentId, event, shop.account.webhookSecret);
    await payments.deliver();

    const anonymous = await report(shop.org.preview.secretKey, { anonymousIdentifier: "payer@example.com" });
    expect(anonymous.customer.isCustomer).toBe(false);
    expect(anonymous.invoices.error).toMatch(/signed-in identity/);
    expect(anonymous.checkout.error).toMatch(/signed-in identity/);
    const other = await report(shop.org.preview.secretKey, { userIdentifier: "other@example.com" });
    expect(other.customer.isCustomer).toBe(false);
    expect(other.portal.error).toMatch(/no Stripe customer yet/);
  });
});
