/**
 * Automatic top-up: a credits property's `autoTopUp` buys its pack with the user's saved payment method when a
 * deduction leaves the balance below the threshold — once per need however many decisions or messages ask, never for a
 * replayed request, and never again within the interval after a declined card.
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type CreditTopUpMessage, forgetCreditTopUpRequests } from "../../../workers/payments/topUp";
import { call, createOrganization, publish } from "../../support/api";
import { aiTools } from "../../support/examples";
import { type CapturedPayments, capturePayments, connectStripe, deliverPaymentMessages, postWebhook, payOnFakeStripe } from "../../support/payments";
import { fakeStripe, seedPrice, stripeRequests } from "../../support/stripe";

let payments: CapturedPayments;
beforeEach(() => {
  payments = capturePayments();
  forgetCreditTopUpRequests();
});
afterEach(() => payments.restore());

const USER = "dev@example.com";
/** generate (5) × model (5) × premium (2). */
const EXPENSIVE = { action: "generate", resource: { id: "gpt-large", meta: { type: "model", tags: ["premium"] } } };
/** generate (5). */
const CHEAP = { action: "generate" };

/**
 * An environment selling a 100-token pack for $5 with `autoTopUp: { below }`, and USER, who bought the pack once (so
 * is a Stripe customer) and has `paymentMethod` saved as the default one.
 */
async function topUpShop(below: number, paymentMethod: "card" | "declining" | "none" = "card") {
  const org = await createOrganization("Auto top-up");
  const environmentId = org.preview.id;
  const account = await connectStripe(org, environmentId);
  const { product, price } = await seedPrice(account.key, "100 tokens", { interval: null, unitAmount: 500 });
  const document = aiTools();
  document.features["ai-tools"].properties.tokens.packs = [{ stripeProductId: product.id, amount: 100 }];
  document.features["ai-tools"].properties.tokens.autoTopUp = { below, pack: product.id };
  await publish(org.adminKey, document, [environmentId]);
  const exported = await call("GET", "/api/v1/admin/config", { key: org.adminKey });
  const creditId = `preview:${exported.body.features["ai-tools"].id}.tokens`;

  const bought = await payOnFakeStripe(account, org.id, { priceId: price.id, identifier: USER, mode: "payment" });
  for (const event of bought.events) expect((await postWebhook(environmentId, event as unknown as Record<string, unknown>, account.webhookSecret)).status).toBe(200);
  await payments.deliver();
  const customerId = bought.session.customer as string;
  if (paymentMethod !== "none") await fakeStripe(`customers/${customerId}/payment_method`, { key: account.key, body: { decline: paymentMethod === "declining" } });

  const balance = async () => {
    const read = await call("GET", `/api/v1/admin/environments/${environmentId}/identities/${encodeURIComponent(USER)}/credits/${encodeURIComponent(creditId)}`, {
      key: org.adminKey,
    });
    expect(read.status).toBe(200);
    return read.body.balance as number;
  };
  const decide = async (priced: Record<string, unknown>, headers: Record<string, string> = {}) => {
    const decision = await call("POST", "/api/v1/surface-decisions", {
      key: org.preview.secretKey,
      headers,
      body: { surfaceSlug: "ai-playground", ...priced, identity: { userIdentifier: USER } },
    });
    expect(decision.status).toBe(200);
    return decision.body.features["ai-tools"].properties.tokens as { balance: number; deductedInRequest: boolean };
  };
  const topUpsSent = () => payments.sent.filter((body) => (body as unknown as { kind?: string }).kind === "topup") as unknown as CreditTopUpMessage[];
  const charges = async () => (await stripeRequests(account.key)).filter((request) => request.method === "POST" && request.path === "/v1/payment_intents");
  const paymentRecords = async () => {
    const recorded = await call("GET", `/api/v1/admin/events?environmentId=${environmentId}&kind=payment`, { key: org.adminKey });
    expect(recorded.status).toBe(200);
    return recorded.body.events as { outcome: string; identifier: string; record: Record<string, any> }[];
  };
  const message: CreditTopUpMessage = { kind: "topup", organizationId: org.id, environmentId, identifier: USER, creditId, productId: product.id };
  return { org, environmentId, account, creditId, product, customerId, balance, decide, topUpsSent, charges, paymentRecords, message };
}

/**
 * Delivers a top-up message whose purchase write D1 refuses once (after Stripe charged): the message must be retried.
 * `failed` says the write was really attempted and refused.
 */
async function deliverFailingPurchaseWrite(message: CreditTopUpMessage): Promise<{ failed: boolean }> {
  const batch = env.DB.batch.bind(env.DB);
  let failed = false;
  const spy = vi.spyOn(env.DB, "batch").mockImplementation(async (statements) => {
    const writesPurchase = statements.some((statement) => String((statement as unknown as { statement?: string }).statement).includes("INSERT INTO payment_purchases"));
    if (writesPurchase && !failed) {
      failed = true;
      throw new Error("D1 unavailable");
    }
    return batch(statements);
  });
  try {
    expect((await deliverPaymentMessages([message])).retryMessages).toHaveLength(1);
  } finally {
    spy.mockRestore();
  }
  return { failed };
}

describe("automatic credit top-up", () => {
  it("buys the pack with the saved card once a decision leaves the balance below the threshold", async () => {
    const shop = await topUpShop(50);
    expect(await shop.balance()).toBe(100);
    // The month's 20 from the free plan comes with the first decision: 120 − 50 = 70, not below 50.
    expect(await shop.decide(EXPENSIVE)).toMatchObject({ balance: 70, deductedInRequest: true });
    await payments.deliver();
    expect(shop.topUpsSent()).toEqual([]);

    expect(await shop.decide(EXPENSIVE)).toMatchObject({ balance: 20, deductedInRequest: true });
    await payments.deliver();
    expect(shop.topUpsSent()).toEqual([shop.message]);

    const charges = await shop.charges();
    expect(charges).toHaveLength(1);
    expect(charges[0]!.body).toMatchObject({
      amount: "500",
      currency: "usd",
      customer: shop.customerId,
      off_session: "true",
      confirm: "true",
      metadata: { identifier: USER, topUp: "true", platform_store: `${shop.org.id}:preview` },
    });
    expect(charges[0]!.body!.payment_method).toMatch(/^pm_/);
    expect(charges[0]!.idempotencyKey).toMatch(/^topup_/);
    expect(await shop.balance()).toBe(120);

    // Recorded as a paid purchase of the pack, with the credits it granted.
    const topUp = (await shop.paymentRecords()).find((event) => event.record.topUpId);
    expect(topUp).toMatchObject({
      outcome: "paid",
      identifier: USER,
      record: { subject: "purchase", productIds: [shop.product.id], credits: [{ creditId: shop.creditId, amount: 100, balance: 120 }] },
    });
    // Its customer record holds the purchase like a checkout's.
    const row = await env.DB.prepare("SELECT state, product_ids FROM payment_purchases WHERE payment_id = ?").bind(topUp!.record.subjectId).first();
    expect(row).toEqual({ state: "paid", product_ids: JSON.stringify([shop.product.id]) });
  });

  it("charges once for many decisions below the threshold at once", async () => {
    // 200: the pack does not lift the balance above it, so only the attempt's row stops a second charge.
    const shop = await topUpShop(200);
    const decisions = await Promise.all(Array.from({ length: 8 }, () => shop.decide(CHEAP)));
    expect(decisions.every((tokens) => tokens.deductedInRequest)).toBe(true);
    await payments.deliver();
    expect(shop.topUpsSent()).toHaveLength(1);
    expect(await shop.charges()).toHaveLength(1);
    // 100 bought + 20 granted − 8 × 5 + 100 topped up.
    expect(await shop.balance()).toBe(180);
  });

  it("charges once when the top-up message is duplicated or redelivered", async () => {
    // 1000: the pack does not lift the balance above it, so only the attempt's row stops a second charge.
    const shop = await topUpShop(1000);
    const results = [await deliverPaymentMessages([shop.message, shop.message]), await deliverPaymentMessages([shop.message], 2)];
    expect(results.flatMap((result) => result.retryMessages)).toEqual([]);
    expect(await shop.charges()).toHaveLength(1);
    expect(await shop.balance()).toBe(200);
  });

  it("resumes an attempt whose delivery failed after the charge under the same idempotency key: paid and granted once", async () => {
    const shop = await topUpShop(1000);
    // The purchase's write fails once, after Stripe charged.
    const { failed } = await deliverFailingPurchaseWrite(shop.message);
    expect(failed).toBe(true);
    expect(await shop.balance()).toBe(100);

    // The attempt was dropped, and the next message comes long after the top-up interval: the unfinished attempt is
    // resumed under its own key instead of being replaced by a new one (which would charge a second time).
    await env.DB.prepare("UPDATE credit_topups SET started_at = started_at - ? WHERE organization_id = ?").bind(60 * 60 * 1000, shop.org.id).run();
    await deliverPaymentMessages([shop.message], 1);
    const charges = await shop.charges();
    expect(charges).toHaveLength(2);
    expect(charges[1]!.idempotencyKey).toBe(charges[0]!.idempotencyKey);
    // Stripe answered the repeat with the first payment: one purchase, credits once.
    expect(await shop.balance()).toBe(200);
    const purchases = await env.DB.prepare("SELECT COUNT(*) AS n FROM payment_purchases WHERE organization_id = ?").bind(shop.org.id).first();
    expect(purchases).toEqual({ n: 2 }); // the checkout's and the top-up's
    const row = await env.DB.prepare("SELECT state FROM credit_topups WHERE organization_id = ?").bind(shop.org.id).first();
    expect(row).toEqual({ state: "succeeded" });
  });

  it("resumes an attempt whose card changed since it charged: finds that payment instead of charging again", async () => {
    const shop = await topUpShop(1000);
    expect((await deliverFailingPurchaseWrite(shop.message)).failed).toBe(true);
    // The customer saves another card before the attempt is resumed: the same key with other parameters.
    await fakeStripe(`customers/${shop.customerId}/payment_method`, { key: shop.account.key, body: {} });
    const resumed = await deliverPaymentMessages([shop.message], 2);
    expect(resumed.retryMessages).toEqual([]);
    expect(await shop.balance()).toBe(200);
    const row = await env.DB.prepare("SELECT state FROM credit_topups WHERE organization_id = ?").bind(shop.org.id).first();
    expect(row).toEqual({ state: "succeeded" });
    // Two requests under one key; Stripe refused the second: one payment.
    const charges = await shop.charges();
    expect(charges).toHaveLength(2);
    expect(new Set(charges.map((charge) => charge.idempotencyKey)).size).toBe(1);
  });

  it("records a declined card, grants nothing and does not try again within the interval", async () => {
    const shop = await topUpShop(50, "declining");
    await shop.decide(EXPENSIVE);
    await shop.decide(EXPENSIVE);
    await payments.deliver();
    expect(shop.topUpsSent()).toHaveLength(1);
    expect(await shop.charges()).toHaveLength(1);
    expect(await shop.balance()).toBe(20);
    const failed = (await shop.paymentRecords()).filter((event) => event.outcome === "top_up_failed");
    expect(failed).toEqual([
      expect.objectContaining({ identifier: USER, record: expect.objectContaining({ subject: "top_up", creditId: shop.creditId, reason: "card_declined", productIds: [shop.product.id] }) }),
    ]);
    expect(failed[0]!.record.paymentId).toMatch(/^pi_/);

    // Another request (another isolate, a redelivery) within the interval: no second charge, no second record.
    await deliverPaymentMessages([shop.message]);
    expect(await shop.charges()).toHaveLength(1);
    expect((await shop.paymentRecords()).filter((event) => event.outcome === "top_up_failed")).toHaveLength(1);
    const row = await env.DB.prepare("SELECT state, reason FROM credit_topups WHERE credit_id = ? AND identifier = ?").bind(shop.creditId, USER).first();
    expect(row).toEqual({ state: "failed", reason: "card_declined" });
  });

  it("charges nothing without a saved payment method, and records why", async () => {
    const shop = await topUpShop(50, "none");
    await shop.decide(EXPENSIVE);
    await shop.decide(EXPENSIVE);
    await payments.deliver();
    expect(shop.topUpsSent()).toHaveLength(1);
    expect(await shop.charges()).toEqual([]);
    expect(await shop.balance()).toBe(20);
    const failed = (await shop.paymentRecords()).filter((event) => event.outcome === "top_up_failed");
    expect(failed).toEqual([expect.objectContaining({ record: expect.objectContaining({ reason: "no_payment_method", paymentId: null }) })]);
  });

  it("asks after a counter update that charges credits below the threshold", async () => {
    const shop = await topUpShop(200);
    const update = await call("POST", "/api/v1/counter-updates", {
      key: shop.org.preview.secretKey,
      body: { counterId: shop.creditId, action: "generate", identity: { userIdentifier: USER } },
    });
    expect(update.status).toBe(200);
    expect(update.body.credit).toMatchObject({ balance: 115, deductedInRequest: true });
    await payments.deliver();
    expect(shop.topUpsSent()).toEqual([shop.message]);
    expect(await shop.charges()).toHaveLength(1);
    expect(await shop.balance()).toBe(215);
  });

  it("asks nothing more for a replayed decision", async () => {
    const shop = await topUpShop(200);
    const key = { "idempotency-key": "spend-once" };
    const first = await shop.decide(CHEAP, key);
    await payments.deliver();
    expect(shop.topUpsSent()).toHaveLength(1);
    // Only the replay guard (not this isolate's memory of the request) may keep the replay from asking again.
    forgetCreditTopUpRequests();
    expect(await shop.decide(CHEAP, key)).toEqual(first);
    await payments.deliver();
    expect(shop.topUpsSent()).toHaveLength(1);
  });

  it("refuses an autoTopUp whose pack is not one of the property's packs", async () => {
    const org = await createOrganization("Top-up pack");
    const document = aiTools();
    document.features["ai-tools"].properties.tokens.packs = [{ stripeProductId: "prod_small", amount: 10 }];
    document.features["ai-tools"].properties.tokens.autoTopUp = { below: 5, pack: "prod_large" };
    const put = await call("PUT", "/api/v1/admin/config", { key: org.adminKey, body: document });
    expect(put.status).toBe(400);
    expect(put.body.details).toEqual([expect.objectContaining({ path: "features.ai-tools.properties.tokens.autoTopUp.pack", message: "prod_large is not one of this property's packs" })]);

    document.features["ai-tools"].properties.tokens.autoTopUp = { below: 5, pack: "prod_small" };
    expect((await call("PUT", "/api/v1/admin/config", { key: org.adminKey, body: document })).status).toBe(200);
  });
});
