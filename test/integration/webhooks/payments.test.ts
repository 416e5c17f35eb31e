/**
 * Outbound webhooks from payments (workers/workflows/paymentEvents.ts): a paid checkout changes the buyer's plans, and
 * the environment's endpoint hears plan.changed once — whether or not a workflow listens to plans.changed — even when
 * the payment event is dispatched twice.
 */
import { env } from "cloudflare:workers";
import { Webhook } from "standardwebhooks";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createOrganization, publish } from "../../support/api";
import { newsSite } from "../../support/examples";
import { type CapturedPayments, capturePayments, connectStripe, deliverPaymentMessages, payOnFakeStripe, postWebhook } from "../../support/payments";
import { completeCheckout, seedPrice } from "../../support/stripe";
import { offerShown, redeem, redemptionShop } from "../offers/redemptionShop";
import { type CapturedWebhooks, captureWebhooks, received, receiverEndpoint, subscribe } from "./helpers";

let payments: CapturedPayments;
let webhooks: CapturedWebhooks;
beforeEach(() => {
  payments = capturePayments();
  webhooks = captureWebhooks();
});
afterEach(() => {
  payments.restore();
  webhooks.restore();
  vi.restoreAllMocks();
});

/** An organization whose preview environment sells Premium (linked to a Stripe product) and a Sticker (linked to none). */
async function shop(name: string) {
  const org = await createOrganization(name);
  const environmentId = org.preview.id;
  const account = await connectStripe(org, environmentId);
  const premium = await seedPrice(account.key, "Premium", { interval: "month" });
  const sticker = await seedPrice(account.key, "Sticker", { interval: "month" });
  const document = newsSite();
  document.plans.premium.stripeProductIds = [premium.product.id];
  await publish(org.adminKey, document, [environmentId]);
  return { org, environmentId, account, premium, sticker };
}

describe("plan.changed from payments", () => {
  it("a paid checkout tells the endpoint the buyer's new plans, once", async () => {
    const org = await createOrganization("Webhook payments");
    const environmentId = org.preview.id;
    const account = await connectStripe(org, environmentId);
    const { product, price } = await seedPrice(account.key, "Premium", { interval: "month" });
    const document = newsSite();
    document.plans.premium.stripeProductIds = [product.id];
    await publish(org.adminKey, document, [environmentId]);
    const { url, path } = receiverEndpoint("payments");
    const { secret } = await subscribe(org, environmentId, { url, eventTypes: ["plan.changed"] });

    const paid = await payOnFakeStripe(account, org.id, { priceId: price.id, identifier: "buyer@example.com" });
    for (const event of paid.events) expect((await postWebhook(environmentId, event, account.webhookSecret)).status).toBe(200);
    await payments.deliver();
    // The same Stripe events again (Stripe retries webhooks): no second plan.changed.
    for (const event of paid.events) expect((await postWebhook(environmentId, event, account.webhookSecret)).status).toBe(200);
    await payments.deliver();
    await webhooks.deliver();

    const requests = await received(path);
    expect(requests).toHaveLength(1);
    const body = new Webhook(secret).verify(requests[0]!.body, requests[0]!.headers) as Record<string, any>;
    expect(body).toMatchObject({ type: "plan.changed", data: { identifier: "buyer@example.com", to: ["premium"], reason: "payment" } });
    expect(body.data.paymentEventId).toMatch(/^evt_/);
  });

  it("a publication that fails once is published when the payments queue retries the message", async () => {
    const { org, environmentId, account, premium } = await shop("Webhook payments retry");
    const { url, path } = receiverEndpoint("payments-retry");
    const { secret } = await subscribe(org, environmentId, { url, eventTypes: ["plan.changed"] });
    const paid = await payOnFakeStripe(account, org.id, { priceId: premium.price.id, identifier: "retried-buyer@example.com" });
    for (const event of paid.events) expect((await postWebhook(environmentId, event, account.webhookSecret)).status).toBe(200);
    vi.spyOn(env.WEBHOOKS as Queue, "sendBatch").mockRejectedValueOnce(new Error("queue unavailable"));
    const first = await payments.deliver({ allowRetries: true });
    expect(first.flatMap((result) => result.retryMessages).length).toBeGreaterThan(0);
    expect(webhooks.sent).toEqual([]);
    // The queue's retry: the same messages again.
    await deliverPaymentMessages(payments.sent, 2);
    await webhooks.deliver();

    const requests = await received(path);
    expect(requests).toHaveLength(1);
    const body = new Webhook(secret).verify(requests[0]!.body, requests[0]!.headers) as Record<string, any>;
    expect(body).toMatchObject({ type: "plan.changed", data: { identifier: "retried-buyer@example.com", from: [], to: ["premium"], reason: "payment" } });
  });

  it("a payment that changes no plan publishes no plan.changed", async () => {
    const { org, environmentId, account, sticker } = await shop("Webhook payments same plans");
    const { url, path } = receiverEndpoint("payments-same");
    await subscribe(org, environmentId, { url, eventTypes: ["plan.changed"] });
    const paid = await payOnFakeStripe(account, org.id, { priceId: sticker.price.id, identifier: "sticker-buyer@example.com" });
    for (const event of paid.events) expect((await postWebhook(environmentId, event, account.webhookSecret)).status).toBe(200);
    await payments.deliver();
    await webhooks.deliver();
    expect(await received(path)).toEqual([]);
  });

  it("offer.redemption.completed whose publication fails once is published when the payments queue retries", async () => {
    const shop = await redemptionShop();
    const { url, path } = receiverEndpoint("redemption-retry");
    const { secret } = await subscribe(shop.org, shop.environmentId, { url, eventTypes: ["offer.redemption.completed"] });
    const reader = { userIdentifier: "redeemer@example.com" };
    const shown = await offerShown(shop, reader);
    const opened = await redeem(shop, { identity: reader, offerToken: shown.token });
    expect(opened.status).toBe(201);
    const { events } = await completeCheckout(opened.body.checkout.id);
    for (const event of events) expect((await postWebhook(shop.environmentId, event, shop.account.webhookSecret)).status).toBe(200);
    vi.spyOn(env.WEBHOOKS as Queue, "sendBatch").mockRejectedValueOnce(new Error("queue unavailable"));
    const first = await payments.deliver({ allowRetries: true });
    expect(first.flatMap((result) => result.retryMessages).length).toBeGreaterThan(0);
    await deliverPaymentMessages(payments.sent, 2);
    await webhooks.deliver();

    const requests = await received(path);
    expect(requests).toHaveLength(1);
    const body = new Webhook(secret).verify(requests[0]!.body, requests[0]!.headers) as Record<string, any>;
    expect(body).toMatchObject({ type: "offer.redemption.completed", data: { tokenId: opened.body.redemption.id, checkoutId: opened.body.checkout.id } });
  });
});
