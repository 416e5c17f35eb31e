/**
 * Outbound webhooks from payments (workers/workflows/paymentEvents.ts): a paid checkout changes the buyer's plans, and
 * the environment's endpoint hears plan.changed once — whether or not a workflow listens to plans.changed — even when
 * the payment event is dispatched twice.
 */
import { Webhook } from "standardwebhooks";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createOrganization, publish } from "../../support/api";
import { newsSite } from "../../support/examples";
import { type CapturedPayments, capturePayments, connectStripe, payOnFakeStripe, postWebhook } from "../../support/payments";
import { seedPrice } from "../../support/stripe";
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
});

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
});
