/**
 * Credits for money: a credits property's `packs` turn a paid one-time purchase into credits, exactly once however
 * often Stripe delivers the webhook, and take them back when a refund revokes the purchase.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { call, createOrganization, publish } from "../../support/api";
import { aiTools } from "../../support/examples";
import { type CapturedPayments, capturePayments, connectStripe, postWebhook, payOnFakeStripe } from "../../support/payments";
import { refundPayment, seedPrice, updateSubscription } from "../../support/stripe";

let payments: CapturedPayments;
beforeEach(() => {
  payments = capturePayments();
});
afterEach(() => payments.restore());

async function tokenShop() {
  const org = await createOrganization("Token packs");
  const environmentId = org.preview.id;
  const account = await connectStripe(org, environmentId);
  const { product, price } = await seedPrice(account.key, "1,000 tokens", { interval: null, unitAmount: 500 });
  const document = aiTools();
  document.features["ai-tools"].properties.tokens.packs = [{ stripeProductId: product.id, amount: 1000 }];
  await publish(org.adminKey, document, [environmentId]);
  const exported = await call("GET", "/api/v1/admin/config", { key: org.adminKey });
  const creditId = `preview:${exported.body.features["ai-tools"].id}.tokens`;
  const balance = async (identifier: string) => {
    const read = await call("GET", `/api/v1/admin/environments/${environmentId}/identities/${encodeURIComponent(identifier)}/credits/${encodeURIComponent(creditId)}`, {
      key: org.adminKey,
    });
    expect(read.status).toBe(200);
    return read.body.balance as number;
  };
  const deliverEach = async (events: unknown[], times: number) => {
    for (const event of events) for (let i = 0; i < times; i++) expect((await postWebhook(environmentId, event as Record<string, unknown>, account.webhookSecret)).status).toBe(200);
    await payments.deliver();
  };
  const buyPack = (identifier: string) => payOnFakeStripe(account, org.id, { priceId: price.id, identifier, mode: "payment" });
  return { org, environmentId, creditId, balance, deliverEach, buyPack };
}

describe("credit packs", () => {
  it("grants a pack's credits once when its purchase's webhooks arrive 10 times, and takes them back on a full refund", async () => {
    const shop = await tokenShop();
    expect(await shop.balance("dev@example.com")).toBe(0);
    const bought = await shop.buyPack("dev@example.com");
    await shop.deliverEach(bought.events, 10);
    expect(await shop.balance("dev@example.com")).toBe(1000);

    // A second purchase is another payment: another 1,000.
    const again = await shop.buyPack("dev@example.com");
    await shop.deliverEach(again.events, 3);
    expect(await shop.balance("dev@example.com")).toBe(2000);

    await shop.deliverEach((await refundPayment(bought.session.payment_intent as string)).events, 10);
    expect(await shop.balance("dev@example.com")).toBe(1000);

    // The balance is spendable in decisions; someone else got nothing.
    const decision = await call("POST", "/api/v1/surface-decisions", {
      key: shop.org.preview.secretKey,
      body: { surfaceSlug: "ai-playground", action: "generate", identity: { userIdentifier: "dev@example.com" } },
    });
    expect(decision.status).toBe(200);
    expect(decision.body.features["ai-tools"].properties.tokens).toMatchObject({ hasAccess: true, deductedInRequest: true });
    expect(await shop.balance("other@example.com")).toBe(0);

    const recorded = await call("GET", `/api/v1/admin/events?environmentId=${shop.environmentId}&kind=payment`, { key: shop.org.adminKey });
    const packCredits = recorded.body.events.map((event: { record: { credits?: unknown } }) => event.record.credits).filter(Boolean);
    expect(packCredits).toEqual(expect.arrayContaining([[{ creditId: shop.creditId, amount: -1000, balance: 1000 }]]));
  });

  it("an upgrade whose webhooks arrive in any order, again and again, keeps the usage and grants the difference once", async () => {
    const org = await createOrganization("Upgrades");
    const environmentId = org.preview.id;
    const account = await connectStripe(org, environmentId);
    const basic = await seedPrice(account.key, "Basic", { unitAmount: 500 });
    const pro = await seedPrice(account.key, "Pro", { unitAmount: 2000 });
    const document = aiTools();
    document.plans.basic = { name: "Basic", stripeProductIds: [basic.product.id], features: { "ai-tools": { enabled: "on", tokens: { credits: { amount: 100, period: "month" } } } } };
    document.plans.pro.stripeProductIds = [pro.product.id];
    await publish(org.adminKey, document, [environmentId]);
    const post = async (events: unknown[]) => {
      for (const event of events) expect((await postWebhook(environmentId, event as Record<string, unknown>, account.webhookSecret)).status).toBe(200);
      await payments.deliver();
    };
    const spend = async () => {
      const decision = await call("POST", "/api/v1/surface-decisions", {
        key: org.preview.secretKey,
        body: { surfaceSlug: "ai-playground", action: "generate", identity: { userIdentifier: "dev@example.com" } },
      });
      expect(decision.status).toBe(200);
      return decision.body.features["ai-tools"].properties.tokens as { hasAccess: boolean; balance: number };
    };

    const subscribed = await payOnFakeStripe(account, org.id, { priceId: basic.price.id, identifier: "dev@example.com" });
    await post(subscribed.events);
    // Basic's 100 a month, 5 per generate: six requests leave 70.
    for (let i = 0; i < 6; i++) await spend();
    expect((await spend()).balance).toBe(65);

    const upgraded = await updateSubscription(subscribed.session.subscription as string, { items: [{ price: pro.price.id }] });
    // The upgrade first, then every earlier event again, in reverse: the newest state (Pro) stands.
    await post([...upgraded.events, ...[...subscribed.events].reverse(), ...upgraded.events]);
    const after = await spend();
    // Pro's 1000 replaces Basic's 100 for this month: +900 once, the 35 spent stay spent, nothing negative.
    expect(after).toMatchObject({ hasAccess: true, balance: 65 + 900 - 5 });
    expect((await spend()).balance).toBe(955);
  });

  it("refuses a document with two packs of one product", async () => {
    const org = await createOrganization("Duplicate packs");
    const document = aiTools();
    document.features["ai-tools"].properties.tokens.packs = [
      { stripeProductId: "prod_x", amount: 10 },
      { stripeProductId: "prod_x", amount: 20 },
    ];
    const put = await call("PUT", "/api/v1/admin/config", { key: org.adminKey, body: document });
    expect(put.status).toBe(400);
    expect(put.body.details).toEqual([expect.objectContaining({ path: "features.ai-tools.properties.tokens.packs[1].stripeProductId", message: "prod_x already has a pack" })]);
  });
});
