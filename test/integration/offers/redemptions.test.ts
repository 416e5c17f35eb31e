/**
 * POST /api/v1/offer-redemptions with checkout offers against the fake Stripe: what reaches Stripe (price or inline
 * prices, trial, metadata, URLs), the tokens refused with nothing created, offers changed since their token, one
 * session per token however often it is redeemed, a Stripe failure recorded and retried, and the completion by the
 * checkout's webhooks.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { publish, waitForBackgroundWork } from "../../support/api";
import { expectConsoleError } from "../../support/console";
import { type CapturedPayments, capturePayments, postWebhook } from "../../support/payments";
import { fakeStripe, stripeApiBase } from "../../support/stripe";
import {
  articlePage,
  checkoutPosts,
  checkoutSessions,
  mintToken,
  ORIGIN,
  offerShown,
  payCheckout,
  redeem,
  redemptionEvents,
  redemptionRows,
  redemptionShop,
  type RedemptionShop,
} from "./redemptionShop";

let payments: CapturedPayments;
beforeEach(() => {
  payments = capturePayments();
});
afterEach(() => payments.restore());

const reader = { userIdentifier: "reader@example.com" };

/** Nothing was created for a refused token: no row, no Stripe call, no event. */
async function expectNothingCreated(shop: RedemptionShop) {
  await waitForBackgroundWork();
  expect(await redemptionRows(shop)).toEqual([]);
  expect(await checkoutPosts(shop)).toEqual([]);
  expect(await redemptionEvents(shop)).toEqual([]);
}

describe("offer redemptions: checkout", () => {
  it("opens a Checkout session for the offer's Stripe price with its trial, the redemption in the metadata and the offer's URLs", async () => {
    const shop = await redemptionShop();
    const shown = await offerShown(shop, reader);
    const redeemed = await redeem(shop, { identity: reader, offerToken: shown.token });
    expect(redeemed.status, JSON.stringify(redeemed.body)).toBe(201);
    const priceId = shown.variant === "lower-price" ? shop.prices.premiumLower : shop.prices.premium;
    const [request, ...others] = await checkoutPosts(shop);
    expect(others).toEqual([]);
    const jti = redeemed.body.redemption.id;
    expect(redeemed.body).toEqual({
      status: "success",
      eventId: expect.stringMatching(/^evt_/),
      identity: { authType: "provided", identifier: "reader@example.com", isAuthenticated: true, jwtClaims: {} },
      redemption: { id: jti, offer: "premium-monthly", variant: shown.variant, method: "checkout", state: "started" },
      checkout: { id: expect.stringMatching(/^cs_test_/), url: `${stripeApiBase()}/c/pay/${redeemed.body.checkout.id}`, mode: "subscription" },
    });
    expect(request!.body).toMatchObject({
      mode: "subscription",
      line_items: [{ price: priceId, quantity: "1" }],
      metadata: { platform_offer_redemption: jti, identifier: "reader@example.com", platform_store: `${shop.org.id}:preview` },
      subscription_data: { trial_period_days: "7", metadata: { platform_offer_redemption: jti } },
      success_url: `${ORIGIN}/welcome`,
      cancel_url: `${ORIGIN}/article`,
    });
    expect(request!.idempotencyKey).toMatch(/^offer-redemption:/);
    await waitForBackgroundWork();
    const events = await redemptionEvents(shop);
    expect(events.map((event) => [event.id, event.outcome, event.identifier])).toEqual([[redeemed.body.eventId, "started", "reader@example.com"]]);
    expect(events[0]!.record).toMatchObject({ offer: "premium-monthly", variant: shown.variant, group: "paywall", slot: 0, method: "checkout", tokenId: jti, amount: shown.price.amount, currency: "usd" });
  });

  it("charges an adjusted price inline for the Stripe price's product, and a bundle as one inline price per item", async () => {
    const shop = await redemptionShop((document, { products }) => {
      document.offers["day-pass"].price = {
        currency: "usd",
        bundle: { items: [{ name: "Day pass", stripeProductId: products.dayPass, amount: 199 }, { name: "Premium", stripeProductId: products.premium, amount: 999 }], multiplier: 0.5 },
      };
      delete document.offers["day-pass"].redemption.stripePriceId;
      delete document.offers["day-pass"].redemption.plan;
      document.offerGroups.paywall.slots = [{ name: "featured", offers: ["premium-yearly"] }, { name: "alternative", offers: ["day-pass"] }];
    });
    // India pays half for a year: 4950 instead of 9900 (an adjustment), charged inline.
    const shownYearly = await offerShown(shop, { userIdentifier: "in@example.com" }, 0, { country: "IN" });
    expect(shownYearly).toMatchObject({ offer: "premium-yearly", price: { amount: 4950 } });
    const adjusted = await redeem(shop, { identity: { userIdentifier: "in@example.com" }, offerToken: shownYearly.token, successUrl: `${ORIGIN}/thanks`, cancelUrl: `${ORIGIN}/back` });
    expect(adjusted.status, JSON.stringify(adjusted.body)).toBe(201);
    expect((await checkoutPosts(shop)).at(-1)!.body).toMatchObject({
      mode: "subscription",
      line_items: [{ price_data: { product: shop.products.premiumYearly, currency: "usd", unit_amount: "4950", recurring: { interval: "year" } }, quantity: "1" }],
      success_url: `${ORIGIN}/thanks`,
      cancel_url: `${ORIGIN}/back`,
    });

    const bundle = await offerShown(shop, reader, 1);
    expect(bundle).toMatchObject({ offer: "day-pass", price: { amount: 600 } });
    const bought = await redeem(shop, { identity: reader, offerToken: bundle.token, successUrl: `${ORIGIN}/thanks`, cancelUrl: `${ORIGIN}/back` });
    expect(bought.status, JSON.stringify(bought.body)).toBe(201);
    expect(bought.body.checkout.mode).toBe("payment");
    expect((await checkoutPosts(shop)).at(-1)!.body).toMatchObject({
      mode: "payment",
      line_items: [
        { price_data: { product: shop.products.dayPass, currency: "usd", unit_amount: "100" } },
        { price_data: { product: shop.products.premium, currency: "usd", unit_amount: "500" } },
      ],
    });
    // Paying the bundle grants both products' plans.
    await payCheckout(shop, payments, bought.body.checkout.id);
    const after = await articlePage(shop, reader);
    expect(after.features.articles.properties.premium.value).toBe(true);
  });

  it("refuses forged, foreign, expired and other identities' tokens, creating nothing", async () => {
    const shop = await redemptionShop();
    const other = await redemptionShop();
    const shown = await offerShown(shop, reader);
    const signature = shown.token.split(".")[2]!;
    const flipped = `${shown.token.slice(0, -signature.length)}${signature[0] === "A" ? "B" : "A"}${signature.slice(1)}`;

    const forged = await redeem(shop, { identity: reader, offerToken: flipped });
    expect(forged.status).toBe(400);
    expect(forged.body).toMatchObject({ status: "error", code: "invalid_offer_token" });
    expect((await redeem(shop, { identity: reader, offerToken: "not-a-token" })).body.code).toBe("invalid_offer_token");

    // Another environment's token (another organization's, and the same organization's live environment).
    const foreign = await offerShown(other, reader);
    expect((await redeem(shop, { identity: reader, offerToken: foreign.token })).body.code).toBe("invalid_offer_token");
    const live = await mintToken(shop, { offer: "premium-monthly", env: shop.org.live.id });
    expect((await redeem(shop, { identity: reader, offerToken: live.token })).body.code).toBe("invalid_offer_token");

    const expired = await mintToken(shop, { offer: "premium-monthly" }, Date.now() - 31 * 60 * 1000);
    const late = await redeem(shop, { identity: reader, offerToken: expired.token });
    expect(late.status).toBe(410);
    expect(late.body.code).toBe("offer_token_expired");

    // Shown to someone else, or to the anonymous visitor of the same name.
    const notYours = await redeem(shop, { identity: { userIdentifier: "someone@example.com" }, offerToken: shown.token });
    expect(notYours.status).toBe(403);
    expect(notYours.body.code).toBe("offer_token_not_yours");
    expect((await redeem(shop, { identity: { anonymousIdentifier: "reader@example.com" }, offerToken: shown.token })).body.code).toBe("offer_token_not_yours");

    // A publishable key cannot redeem.
    expect((await redeem(shop, { identity: reader, offerToken: shown.token }, shop.org.preview.publishableKey)).status).toBe(403);
    await expectNothingCreated(shop);
  });

  it("refuses a token whose offer changed since (409 offer_changed), and one whose Stripe price is archived or gone", async () => {
    const shop = await redemptionShop();
    const shown = await offerShown(shop, reader, 1);
    expect(shown.offer).toBe("premium-yearly");
    // A new version charges another price: the token's fingerprint no longer matches.
    shop.document.offers["premium-yearly"].price.amount = 8900;
    await publish(shop.org.adminKey, shop.document, [shop.environmentId]);
    const changed = await redeem(shop, { identity: reader, offerToken: shown.token, successUrl: `${ORIGIN}/thanks`, cancelUrl: `${ORIGIN}/back` });
    expect(changed.status).toBe(409);
    expect(changed.body).toMatchObject({ code: "offer_changed", message: expect.stringMatching(/ask for a new decision/) });
    await expectNothingCreated(shop);

    // Validly signed, but for an amount the offer cannot produce (no adjustment makes 1 cent): refused all the same.
    const cheap = await mintToken(shop, { offer: "premium-monthly", amt: 1 });
    const refused = await redeem(shop, { identity: reader, offerToken: cheap.token });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ code: "offer_changed", message: expect.stringMatching(/no longer charges the price this token was given/) });
    await expectNothingCreated(shop);

    // The Stripe price archived in the Dashboard: 409 naming it.
    const archivedShop = await redemptionShop();
    await fetch(`${stripeApiBase()}/v1/prices/${archivedShop.prices.premiumYearly}`, {
      method: "POST",
      headers: { authorization: `Bearer ${archivedShop.account.key}`, "content-type": "application/x-www-form-urlencoded" },
      body: "active=false",
    });
    const urls = { successUrl: `${ORIGIN}/thanks`, cancelUrl: `${ORIGIN}/back` };
    const archived = await redeem(archivedShop, { identity: reader, offerToken: (await offerShown(archivedShop, reader, 1)).token, ...urls });
    expect(archived.status, JSON.stringify(archived.body)).toBe(409);
    expect(archived.body).toMatchObject({ code: "offer_changed", message: expect.stringContaining(`Stripe price ${archivedShop.prices.premiumYearly} is archived`) });
    expect(await redemptionRows(archivedShop)).toEqual([]);

    // A Stripe price the account does not know (deleted, or never there).
    const goneShop = await redemptionShop((document) => {
      document.offers["premium-yearly"].redemption.stripePriceId = "price_deleted0000";
    });
    const gone = await redeem(goneShop, { identity: reader, offerToken: (await offerShown(goneShop, reader, 1)).token, ...urls });
    expect(gone.status).toBe(409);
    expect(gone.body).toMatchObject({ code: "offer_changed", message: expect.stringContaining("Stripe price price_deleted0000 no longer exists") });
    expect(await redemptionRows(goneShop)).toEqual([]);
  });

  it("opens one session per token: a double click (one after the other, or at once) answers the same checkout and records one started event", async () => {
    const shop = await redemptionShop();
    const shown = await offerShown(shop, reader);
    const body = { identity: reader, offerToken: shown.token };
    const [first, second] = await Promise.all([redeem(shop, body), redeem(shop, body)]);
    const third = await redeem(shop, body);
    for (const response of [first, second, third]) expect(response.status, JSON.stringify(response.body)).toBe(201);
    expect(new Set([first, second, third].map((response) => response.body.checkout.id)).size).toBe(1);
    expect(new Set([first, second, third].map((response) => response.body.eventId)).size).toBe(1);
    expect((await checkoutSessions(shop)).map((session) => session.id)).toEqual([first.body.checkout.id]);
    await waitForBackgroundWork();
    expect((await redemptionEvents(shop)).map((event) => event.outcome)).toEqual(["started"]);
    expect(await redemptionRows(shop)).toMatchObject([{ token_id: first.body.redemption.id, state: "started", attempt: 1, anonymous: 0 }]);
  });

  it("completes the redemption from the checkout's webhook, once however often it arrives; the token then answers completed", async () => {
    const shop = await redemptionShop();
    const shown = await offerShown(shop, reader);
    const opened = await redeem(shop, { identity: reader, offerToken: shown.token });
    expect(opened.status).toBe(201);
    const { events } = await payCheckout(shop, payments, opened.body.checkout.id);
    // The webhook again: nothing more.
    const completed = events.find((event) => event.type === "checkout.session.completed")!;
    expect((await postWebhook(shop.environmentId, { ...completed, id: `${completed.id}_again` }, shop.account.webhookSecret)).status).toBe(200);
    await payments.deliver();

    expect((await articlePage(shop, reader)).features.articles.properties.premium.value).toBe(true);
    const redeemedEvents = await redemptionEvents(shop);
    expect(redeemedEvents.map((event) => event.outcome)).toEqual(["started", "completed"]);
    expect(redeemedEvents[1]!.record).toMatchObject({ tokenId: opened.body.redemption.id, checkoutId: opened.body.checkout.id, subscriptionId: expect.stringMatching(/^sub_/) });
    expect(await redemptionRows(shop)).toMatchObject([{ state: "completed", completed_at: expect.any(String) }]);

    const again = await redeem(shop, { identity: reader, offerToken: shown.token });
    expect(again.status).toBe(201);
    expect(again.body).toMatchObject({ redemption: { state: "completed" }, checkout: { id: opened.body.checkout.id } });
    expect(await checkoutPosts(shop)).toHaveLength(1);
  });

  it("records a failed redemption when Stripe refuses (502); the token may be tried again", async () => {
    const shop = await redemptionShop((document) => {
      document.offers["day-pass"].price = {
        currency: "usd",
        bundle: { items: [{ name: "Day pass", stripeProductId: "prod_missing000", amount: 199 }, { name: "Extra", stripeProductId: "prod_missing001", amount: 100 }], multiplier: 1 },
      };
      delete document.offers["day-pass"].redemption.stripePriceId;
      delete document.offers["day-pass"].redemption.plan;
      document.offerGroups.paywall.slots[1].offers = ["day-pass"];
    });
    const shown = await offerShown(shop, reader, 1);
    const body = { identity: reader, offerToken: shown.token, successUrl: `${ORIGIN}/thanks`, cancelUrl: `${ORIGIN}/back` };
    const logged = expectConsoleError(/No such product/);
    const refused = await redeem(shop, body);
    expect(refused.status).toBe(502);
    expect(refused.body).toMatchObject({ code: "upstream_error", message: expect.stringMatching(/No such product/) });
    await waitForBackgroundWork();
    expect(await redemptionRows(shop)).toMatchObject([{ state: "failed", attempt: 1, failure_reason: expect.stringMatching(/upstream_error/) }]);
    let events = await redemptionEvents(shop);
    expect(events.map((event) => event.outcome)).toEqual(["started", "failed"]);
    expect(events[1]!.record.reason).toMatch(/No such product/);

    // Once the products exist, the same token tried again succeeds: a new attempt under its own Stripe idempotency key.
    for (const id of ["prod_missing000", "prod_missing001"]) await fakeStripe("products", { key: shop.account.key, body: { product: { id, name: id }, prices: [] } });
    const retried = await redeem(shop, body);
    expect(retried.status, JSON.stringify(retried.body)).toBe(201);
    expect(retried.body).toMatchObject({ redemption: { state: "started" }, checkout: { mode: "payment" } });
    expect(await redemptionRows(shop)).toMatchObject([{ state: "started", attempt: 2, failure_reason: null }]);
    const keys = (await checkoutPosts(shop)).map((request) => request.idempotencyKey);
    expect(keys).toHaveLength(2);
    expect(keys[0]).not.toBe(keys[1]);
    await waitForBackgroundWork();
    events = await redemptionEvents(shop);
    expect(events.map((event) => event.outcome)).toEqual(["started", "failed"]);
    expect(logged.lines.length).toBeGreaterThan(0);
  });

  it("refuses success URLs outside the allowed origins before anything is created", async () => {
    const shop = await redemptionShop();
    const shown = await offerShown(shop, reader);
    const foreign = await redeem(shop, { identity: reader, offerToken: shown.token, successUrl: "https://evil.example/" });
    expect(foreign.status).toBe(400);
    expect(foreign.body).toMatchObject({ code: "validation_failed", details: [{ path: "successUrl" }] });
    await expectNothingCreated(shop);
  });
});
