/**
 * Anonymous visitors buy through offers: their purchases live in the anonymous partition of the store
 * (`{store}~anonymous`, also in the Stripe scope tag), which the webhooks fill and their decisions read — apart from
 * signed-in identities of the same name, both ways.
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { call, waitForBackgroundWork } from "../../support/api";
import { type CapturedPayments, capturePayments, postWebhook } from "../../support/payments";
import { completeCheckout, disputePayment, fakeStripe, invoiceSubscription, stripeApiBase } from "../../support/stripe";
import { articlePage, checkoutPosts, ORIGIN, offerShown, payCheckout, redeem, redemptionEvents, redemptionRows, redemptionShop } from "./redemptionShop";

let payments: CapturedPayments;
beforeEach(() => {
  payments = capturePayments();
});
afterEach(() => payments.restore());

const hasPremium = async (shop: Awaited<ReturnType<typeof redemptionShop>>, identity: Record<string, unknown>) =>
  (await articlePage(shop, identity)).features.articles.properties.premium.value as boolean;

describe("anonymous purchases", () => {
  it("an anonymous visitor's subscription is theirs alone: not the signed-in identity's of the same name", async () => {
    const shop = await redemptionShop();
    const visitor = { anonymousIdentifier: "alice" };
    const shown = await offerShown(shop, visitor);
    const opened = await redeem(shop, { identity: visitor, offerToken: shown.token });
    expect(opened.status, JSON.stringify(opened.body)).toBe(201);
    expect(opened.body.identity).toMatchObject({ identifier: "alice", isAuthenticated: false });
    const [request] = await checkoutPosts(shop);
    // Tagged for the anonymous partition, on the session and on the subscription it creates.
    const scope = `${shop.org.id}:preview~anonymous`;
    expect(request!.body).toMatchObject({ metadata: { identifier: "alice", platform_store: scope }, subscription_data: { metadata: { platform_store: scope } } });

    await payCheckout(shop, payments, opened.body.checkout.id);
    expect(await hasPremium(shop, visitor)).toBe(true);
    expect(await hasPremium(shop, { userIdentifier: "alice" })).toBe(false);
    expect(await hasPremium(shop, { anonymousIdentifier: "carol" })).toBe(false);

    const { results: customers } = await env.DB.prepare("SELECT store, identifier FROM payment_customers WHERE organization_id = ?").bind(shop.org.id).all();
    expect(customers).toEqual([{ store: "preview~anonymous", identifier: "alice" }]);
    expect(await redemptionRows(shop)).toMatchObject([{ identifier: "alice", anonymous: 1, state: "completed" }]);
    await waitForBackgroundWork();
    const events = await redemptionEvents(shop);
    expect(events.map((event) => [event.outcome, event.identifier, event.record.anonymous])).toEqual([
      ["started", "alice", true],
      ["completed", "alice", true],
    ]);
  });

  it("a customer sync matching by email leaves an anonymous buyer's Stripe customer to the anonymous partition", async () => {
    const shop = await redemptionShop();
    const visitor = { anonymousIdentifier: `visitor-${crypto.randomUUID()}` };
    const opened = await redeem(shop, { identity: visitor, offerToken: (await offerShown(shop, visitor)).token });
    expect(opened.status, JSON.stringify(opened.body)).toBe(201);
    // The visitor types their email on Stripe's page: Checkout creates an untagged customer with it.
    const { events } = await completeCheckout(opened.body.checkout.id, { email: "reader@example.com" });
    for (const event of events) expect((await postWebhook(shop.environmentId, event, shop.account.webhookSecret)).status).toBe(200);
    await payments.deliver();
    expect(await hasPremium(shop, visitor)).toBe(true);

    const sync = await call("POST", `/api/v1/admin/environments/${shop.environmentId}/payments/stripe/sync`, { key: shop.org.adminKey, body: { matchBy: "email" } });
    expect(sync.status, JSON.stringify(sync.body)).toBe(202);
    await payments.deliver();
    const { results: links } = await env.DB.prepare("SELECT store, identifier FROM payment_customers WHERE organization_id = ? ORDER BY store").bind(shop.org.id).all();
    expect(links).toEqual([{ store: "preview~anonymous", identifier: visitor.anonymousIdentifier }]);
    expect(await hasPremium(shop, { userIdentifier: "reader@example.com" })).toBe(false);
  });

  it("a signed-in identity's purchase gives nothing to the anonymous visitor of the same name", async () => {
    const shop = await redemptionShop();
    const signedIn = { userIdentifier: "bob" };
    const opened = await redeem(shop, { identity: signedIn, offerToken: (await offerShown(shop, signedIn)).token });
    expect(opened.status).toBe(201);
    await payCheckout(shop, payments, opened.body.checkout.id);
    expect(await hasPremium(shop, signedIn)).toBe(true);
    expect(await hasPremium(shop, { anonymousIdentifier: "bob" })).toBe(false);
  });

  it("an anonymous subscription's renewal charge, disputed, revokes it: the charge names no partition, its customer does", async () => {
    const shop = await redemptionShop();
    const visitor = { anonymousIdentifier: `visitor-${crypto.randomUUID()}` };
    const opened = await redeem(shop, { identity: visitor, offerToken: (await offerShown(shop, visitor)).token });
    expect(opened.status, JSON.stringify(opened.body)).toBe(201);
    const { session } = await payCheckout(shop, payments, opened.body.checkout.id);
    const renewal = await invoiceSubscription(session.subscription as string, { paid: true });
    for (const event of renewal.events) expect((await postWebhook(shop.environmentId, event, shop.account.webhookSecret)).status).toBe(200);
    await payments.deliver();
    expect(await hasPremium(shop, visitor)).toBe(true);

    // The renewal's charge, as Stripe charges an invoice: the customer's saved card, no metadata (no scope tag).
    const customerId = session.customer as string;
    const { paymentMethod } = await fakeStripe<{ paymentMethod: { id: string } }>(`customers/${encodeURIComponent(customerId)}/payment_method`, { body: {} });
    const charged = await fetch(`${stripeApiBase()}/v1/payment_intents`, {
      method: "POST",
      headers: { authorization: `Bearer ${shop.account.key}`, "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ amount: String(renewal.invoice.amount_paid), currency: "usd", customer: customerId, payment_method: paymentMethod.id, confirm: "true" }),
    });
    const paymentIntent = (await charged.json()) as { id: string; metadata: Record<string, string> };
    expect(paymentIntent.metadata).toEqual({});
    const { events } = await disputePayment(paymentIntent.id);
    for (const event of events) expect((await postWebhook(shop.environmentId, event, shop.account.webhookSecret)).status).toBe(200);
    await payments.deliver();
    const { results: subscriptions } = await env.DB.prepare("SELECT store, state FROM payment_subscriptions WHERE organization_id = ?").bind(shop.org.id).all();
    expect(subscriptions).toEqual([{ store: "preview~anonymous", state: "revoked" }]);
    expect(await hasPremium(shop, visitor)).toBe(false);
  });

  it("an anonymous one-time purchase (a bundle) is granted from the paid checkout", async () => {
    const shop = await redemptionShop((document, { products }) => {
      document.offers["day-pass"].price = {
        currency: "usd",
        bundle: { items: [{ name: "Day pass", stripeProductId: products.dayPass, amount: 199 }, { name: "Premium", stripeProductId: products.premium, amount: 999 }], multiplier: 0.8 },
      };
      delete document.offers["day-pass"].redemption.stripePriceId;
      delete document.offers["day-pass"].redemption.plan;
      document.offerGroups.paywall.slots[1].offers = ["day-pass"];
    });
    const visitor = { anonymousIdentifier: `visitor-${crypto.randomUUID()}` };
    const shown = await offerShown(shop, visitor, 1);
    const opened = await redeem(shop, { identity: visitor, offerToken: shown.token, successUrl: `${ORIGIN}/thanks`, cancelUrl: `${ORIGIN}/back` });
    expect(opened.status, JSON.stringify(opened.body)).toBe(201);
    expect(opened.body.checkout.mode).toBe("payment");
    expect(await hasPremium(shop, visitor)).toBe(false);
    const { session } = await payCheckout(shop, payments, opened.body.checkout.id);
    expect(await hasPremium(shop, visitor)).toBe(true);
    const purchases = async () => (await env.DB.prepare("SELECT store, state FROM payment_purchases WHERE organization_id = ?").bind(shop.org.id).all()).results;
    expect(await purchases()).toEqual([{ store: "preview~anonymous", state: "paid" }]);

    // A chargeback names only its charge: it still finds the anonymous partition and takes the purchase back.
    const { events } = await disputePayment(session.payment_intent as string);
    for (const event of events) expect((await postWebhook(shop.environmentId, event, shop.account.webhookSecret)).status).toBe(200);
    await payments.deliver();
    expect(await purchases()).toEqual([{ store: "preview~anonymous", state: "disputed" }]);
    expect(await hasPremium(shop, visitor)).toBe(false);
  });
});
