/**
 * Checkout and billing-portal sessions (workers/routes/decisions/checkout.ts) against the fake Stripe: which price and
 * mode a plan's checkout uses, what reaches Stripe, which URLs and identities are refused, idempotency, and the
 * portal once a checkout was paid.
 */
import { exportSPKI, generateKeyPair, SignJWT } from "jose";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { call, createOrganization, publish, type TestOrganization } from "../../support/api";
import { expectConsoleError } from "../../support/console";
import { newsSite } from "../../support/examples";
import { type CapturedPayments, capturePayments, postWebhook, type StripeAccount } from "../../support/payments";
import { completeCheckout, fakeStripe, newStripeKey, seedPrice, stripeApiBase, stripeRequests } from "../../support/stripe";

let payments: CapturedPayments;
beforeEach(() => {
  payments = capturePayments();
});
afterEach(() => payments.restore());

const ORIGIN = "https://news.example";
// In the path too: a URL normalized by `new URL()` would have percent-encoded the braces there.
const SUCCESS_URL = `${ORIGIN}/thanks/{CHECKOUT_SESSION_ID}?session={CHECKOUT_SESSION_ID}`;
const CANCEL_URL = `${ORIGIN}/pricing`;

interface Shop {
  org: TestOrganization;
  environmentId: string;
  account: StripeAccount;
  productId: string;
  priceId: string;
}

/** PUT the environment's Stripe connection with `checkout` settings (and the account's keys). */
async function connect(org: TestOrganization, environmentId: string, account: StripeAccount, checkout?: Record<string, unknown>) {
  const put = await call("PUT", `/api/v1/admin/environments/${environmentId}/payments/stripe`, {
    key: org.adminKey,
    body: { secretKey: account.key, webhookSecret: account.webhookSecret, ...(checkout ? { checkout } : {}) },
  });
  expect(put.status, JSON.stringify(put.body)).toBe(200);
  return put.body;
}

/**
 * A news site in a preview environment connected to its own fake Stripe account that allows ORIGIN; Premium is linked
 * to one product with one price (monthly, or one-time).
 */
async function shop(options: { oneTime?: boolean; checkout?: Record<string, unknown>; document?: (document: Record<string, any>) => void } = {}): Promise<Shop> {
  const org = await createOrganization("Checkout");
  const environmentId = org.preview.id;
  const account = { key: newStripeKey(), webhookSecret: `whsec_${crypto.randomUUID().replaceAll("-", "")}` };
  await connect(org, environmentId, account, options.checkout ?? { allowedOrigins: [ORIGIN] });
  const { product, price } = await seedPrice(account.key, "Premium", { interval: options.oneTime ? null : "month" });
  const document = newsSite();
  document.plans.premium.stripeProductIds = [product.id];
  options.document?.(document);
  await publish(org.adminKey, document, [environmentId]);
  return { org, environmentId, account, productId: product.id, priceId: price.id };
}

function checkout(shop_: Shop, body: Record<string, unknown>, options: { key?: string; headers?: Record<string, string> } = {}) {
  return call("POST", "/api/v1/checkout-sessions", {
    key: options.key ?? shop_.org.preview.secretKey,
    headers: options.headers,
    body: { identity: { userIdentifier: "reader@example.com" }, plan: "premium", successUrl: SUCCESS_URL, cancelUrl: CANCEL_URL, ...body },
  });
}

function portal(shop_: Shop, body: Record<string, unknown> = {}, key = shop_.org.preview.secretKey) {
  return call("POST", "/api/v1/billing-portal-sessions", {
    key,
    body: { identity: { userIdentifier: "reader@example.com" }, returnUrl: `${ORIGIN}/account`, ...body },
  });
}

const checkoutPosts = async (account: StripeAccount) =>
  (await stripeRequests(account.key)).filter((request) => request.method === "POST" && request.path === "/v1/checkout/sessions");

async function hasPremium(shop_: Shop, identifier: string): Promise<boolean> {
  const response = await call("POST", "/api/v1/access-checks", { key: shop_.org.preview.secretKey, body: { identity: { userIdentifier: identifier } } });
  expect(response.status).toBe(200);
  return response.body.features.articles.properties.premium.value;
}

describe("checkout sessions", () => {
  it("opens a subscription checkout for a recurring price: the plan's price, the identity, tax and the URLs as given", async () => {
    const shop_ = await shop();
    const opened = await checkout(shop_, {});
    expect(opened.status, JSON.stringify(opened.body)).toBe(201);
    expect(opened.body).toEqual({ status: "success", id: expect.stringMatching(/^cs_test_/), url: `${stripeApiBase()}/c/pay/${opened.body.id}`, mode: "subscription" });

    const [request, ...others] = await checkoutPosts(shop_.account);
    expect(others).toEqual([]);
    expect(request!.body).toMatchObject({
      mode: "subscription",
      line_items: [{ price: shop_.priceId, quantity: "1" }],
      client_reference_id: "reader@example.com",
      metadata: { identifier: "reader@example.com" },
      subscription_data: { metadata: { identifier: "reader@example.com" } },
      automatic_tax: { enabled: "true" },
      // Stripe's placeholder arrives as written, for Stripe to fill in.
      success_url: SUCCESS_URL,
      cancel_url: CANCEL_URL,
    });
    expect(request!.body).not.toHaveProperty("customer");
  });

  it("opens a one-time checkout; paying it grants the plan, reuses the customer and opens the billing portal", async () => {
    const shop_ = await shop({ oneTime: true, checkout: { allowedOrigins: [ORIGIN], automaticTax: false } });
    // No customer yet: no portal.
    const early = await portal(shop_);
    expect(early.status).toBe(409);
    expect(early.body).toMatchObject({ status: "error", code: "conflict", message: expect.stringMatching(/reader@example.com has no Stripe customer yet/) });

    const opened = await checkout(shop_, { price: shop_.priceId });
    expect(opened.status, JSON.stringify(opened.body)).toBe(201);
    expect(opened.body.mode).toBe("payment");
    const [first] = await checkoutPosts(shop_.account);
    expect(first!.body).toMatchObject({
      mode: "payment",
      line_items: [{ price: shop_.priceId, quantity: "1" }],
      automatic_tax: { enabled: "false" },
      customer_creation: "always",
      payment_intent_data: { metadata: { identifier: "reader@example.com" } },
    });

    expect(await hasPremium(shop_, "reader@example.com")).toBe(false);
    const { events, session } = await completeCheckout(opened.body.id);
    for (const event of events) expect((await postWebhook(shop_.environmentId, event, shop_.account.webhookSecret)).status).toBe(200);
    await payments.deliver();
    expect(await hasPremium(shop_, "reader@example.com")).toBe(true);

    // The next checkout is the same Stripe customer's.
    const again = await checkout(shop_, {});
    expect(again.status).toBe(201);
    expect((await checkoutPosts(shop_.account)).at(-1)!.body).toMatchObject({ customer: session.customer });

    const opened2 = await portal(shop_);
    expect(opened2.status, JSON.stringify(opened2.body)).toBe(201);
    expect(opened2.body).toEqual({ status: "success", url: expect.stringMatching(new RegExp(`^${stripeApiBase()}/p/session/bps_`)) });
    const portalRequest = (await stripeRequests(shop_.account.key)).find((request) => request.path === "/v1/billing_portal/sessions");
    expect(portalRequest!.body).toEqual({ customer: session.customer, return_url: `${ORIGIN}/account` });
  });

  it("resolves a JWT identity as decisions do, and refuses anonymous ones with 403", async () => {
    const keys = await generateKeyPair("RS256");
    const publicKey = await exportSPKI(keys.publicKey);
    const shop_ = await shop({
      document: (document) => {
        document.authMethods = { "test-jwt": { publicKey, algorithms: ["RS256"], identifierClaim: "email" } };
      },
    });

    const jwt = await new SignJWT({ email: "jwt-reader@example.com" }).setProtectedHeader({ alg: "RS256" }).setExpirationTime("5m").sign(keys.privateKey);
    const opened = await checkout(shop_, { identity: { userJwt: jwt } });
    expect(opened.status, JSON.stringify(opened.body)).toBe(201);
    expect((await checkoutPosts(shop_.account))[0]!.body).toMatchObject({ client_reference_id: "jwt-reader@example.com" });

    for (const identity of [
      { anonymousIdentifier: "anon-device-1" },
      { createAnonymousIdentifier: true },
      { userJwt: "not.a.jwt", createAnonymousIdentifierFallback: true },
    ]) {
      const refused = await checkout(shop_, { identity });
      expect(refused.status, JSON.stringify(identity)).toBe(403);
      expect(refused.body).toMatchObject({ status: "error", code: "forbidden_identity_form", message: expect.stringMatching(/signed-in user/) });
      const refusedPortal = await portal(shop_, { identity });
      expect(refusedPortal.status).toBe(403);
      expect(refusedPortal.body.code).toBe("forbidden_identity_form");
    }
    expect(await checkoutPosts(shop_.account)).toHaveLength(1);
  });

  it("takes a price of the plan's products and refuses others; without one, the plan must have exactly one active price", async () => {
    const shop_ = await shop();
    const yearly = await fakeStripe<{ id: string }>("prices", { key: shop_.account.key, body: { product: shop_.productId, currency: "usd", unit_amount: 9000, recurring: { interval: "year" } } });
    const lifetime = await fakeStripe<{ id: string }>("prices", { key: shop_.account.key, body: { product: shop_.productId, currency: "usd", unit_amount: 30000 } });
    const archived = await fakeStripe<{ id: string }>("prices", { key: shop_.account.key, body: { product: shop_.productId, currency: "usd", unit_amount: 500, active: false } });
    const { price: otherProductPrice } = await seedPrice(shop_.account.key, "Something else");

    const ambiguous = await checkout(shop_, {});
    expect(ambiguous.status).toBe(400);
    expect(ambiguous.body).toMatchObject({ code: "validation_failed", details: [{ path: "price", message: expect.stringMatching(/3 active prices.*choose one/) }] });
    for (const id of [shop_.priceId, yearly.id, lifetime.id]) expect(ambiguous.body.message).toContain(id);
    expect(ambiguous.body.message).not.toContain(archived.id);

    const yearlyCheckout = await checkout(shop_, { price: yearly.id });
    expect(yearlyCheckout.status).toBe(201);
    expect(yearlyCheckout.body.mode).toBe("subscription");
    const lifetimeCheckout = await checkout(shop_, { price: lifetime.id });
    expect(lifetimeCheckout.status).toBe(201);
    expect(lifetimeCheckout.body.mode).toBe("payment");
    expect((await checkoutPosts(shop_.account)).map((request) => [request.body!.mode, (request.body!.line_items as { price: string }[])[0]!.price])).toEqual([
      ["subscription", yearly.id],
      ["payment", lifetime.id],
    ]);

    for (const [price, message] of [
      [otherProductPrice.id, /is not a price of plan premium's Stripe products/],
      [archived.id, /archived/],
      ["price_doesNotExist123", /No price price_doesNotExist123/],
    ] as const) {
      const refused = await checkout(shop_, { price });
      expect(refused.status, price).toBe(400);
      expect(refused.body).toMatchObject({ code: "validation_failed", details: [{ path: "price", message: expect.stringMatching(message) }] });
    }
    expect(await checkoutPosts(shop_.account)).toHaveLength(2);
  });

  it("refuses an unknown plan (404), a plan linked to no product and one whose products have no active price (400)", async () => {
    const shop_ = await shop();
    const unknown = await checkout(shop_, { plan: "platinum" });
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ code: "not_found", message: expect.stringMatching(/Plan platinum not found/) });
    const noProducts = await checkout(shop_, { plan: "registered" });
    expect(noProducts.status).toBe(400);
    expect(noProducts.body).toMatchObject({ code: "bad_request", message: expect.stringMatching(/Plan registered cannot be bought: it is linked to no Stripe product/) });

    const { product } = await fakeStripe<{ product: { id: string } }>("products", { key: shop_.account.key, body: { name: "Unpriced" } });
    const document = newsSite();
    document.plans.premium.stripeProductIds = [product.id];
    await publish(shop_.org.adminKey, document, [shop_.environmentId]);
    const noPrice = await checkout(shop_, {});
    expect(noPrice.status).toBe(400);
    expect(noPrice.body).toMatchObject({ code: "bad_request", message: expect.stringMatching(/have no active price/) });
    expect(await checkoutPosts(shop_.account)).toEqual([]);
  });

  it("refuses URLs outside the allowed origins, relative ones and other schemes, and every URL when none is allowed", async () => {
    const shop_ = await shop({ checkout: { allowedOrigins: [ORIGIN, "http://localhost:5173"] } });
    // Another allowed origin, and a path-only difference, are fine.
    expect((await checkout(shop_, { successUrl: "http://localhost:5173/done", cancelUrl: `${ORIGIN}/other/page#top` })).status).toBe(201);

    for (const [body, path, message] of [
      [{ successUrl: "https://evil.example/thanks" }, "successUrl", /origin https:\/\/evil.example is not one of the environment's allowed origins/],
      [{ cancelUrl: "https://news.example.evil.example/" }, "cancelUrl", /is not one of the environment's allowed origins/],
      [{ successUrl: "http://news.example/thanks" }, "successUrl", /origin http:\/\/news.example is not one/],
      [{ successUrl: "http://localhost:3000/thanks" }, "successUrl", /is not one/],
      [{ successUrl: "/thanks" }, "successUrl", /must be an absolute URL/],
      [{ cancelUrl: "javascript:alert(1)" }, "cancelUrl", /must be an https:\/\/ URL/],
      [{ successUrl: "https://user:pw@news.example/" }, "successUrl", /credentials/],
    ] as const) {
      const refused = await checkout(shop_, body);
      expect(refused.status, JSON.stringify(body)).toBe(400);
      expect(refused.body).toMatchObject({ code: "validation_failed", details: [{ path, message: expect.stringMatching(message) }] });
    }
    const empty = await checkout(shop_, { successUrl: "" });
    expect(empty.status).toBe(400);
    expect(empty.body.details).toEqual([expect.objectContaining({ path: "successUrl" })]);
    const portalRefused = await portal(shop_, { returnUrl: "https://evil.example/account" });
    expect(portalRefused.status).toBe(400);
    expect(portalRefused.body).toMatchObject({ code: "validation_failed", details: [{ path: "returnUrl", message: expect.stringMatching(/not one of/) }] });
    expect(await checkoutPosts(shop_.account)).toHaveLength(1);

    // Nothing allowed: every URL is refused, saying what to set.
    await connect(shop_.org, shop_.environmentId, shop_.account, { allowedOrigins: [] });
    const closed = await checkout(shop_, {});
    expect(closed.status).toBe(400);
    expect(closed.body.details).toEqual([
      { path: "successUrl", message: expect.stringMatching(/set checkout.allowedOrigins/) },
      { path: "cancelUrl", message: expect.stringMatching(/set checkout.allowedOrigins/) },
    ]);
    expect(await checkoutPosts(shop_.account)).toHaveLength(1);
  });

  it("is refused to publishable keys (403) and in an environment not connected to Stripe (409)", async () => {
    const shop_ = await shop();
    const publishable = await checkout(shop_, {}, { key: shop_.org.preview.publishableKey });
    expect(publishable.status).toBe(403);
    expect(publishable.body).toMatchObject({ code: "forbidden", message: expect.stringMatching(/secret key/) });
    expect((await portal(shop_, {}, shop_.org.preview.publishableKey)).status).toBe(403);

    await publish(shop_.org.adminKey, newsSite(), [shop_.org.live.id]);
    const unconnected = await checkout(shop_, {}, { key: shop_.org.live.secretKey });
    expect(unconnected.status).toBe(409);
    expect(unconnected.body).toMatchObject({ code: "conflict", message: expect.stringMatching(new RegExp(`Environment ${shop_.org.live.id} is not connected to Stripe`)) });
    expect((await portal(shop_, {}, shop_.org.live.secretKey)).status).toBe(409);
    expect(await checkoutPosts(shop_.account)).toEqual([]);
  });

  it("opens one session per Idempotency-Key (per identity), and refuses a key reused for another checkout", async () => {
    const shop_ = await shop();
    const first = await checkout(shop_, {}, { headers: { "idempotency-key": "click-1" } });
    const second = await checkout(shop_, {}, { headers: { "idempotency-key": "click-1" } });
    expect(first.status).toBe(201);
    expect(second.status).toBe(201);
    expect(second.body).toEqual(first.body);
    const stripeKeys = (await checkoutPosts(shop_.account)).map((request) => request.idempotencyKey);
    expect(stripeKeys).toHaveLength(2);
    expect(stripeKeys[1]).toBe(stripeKeys[0]);
    // The key at Stripe is derived (scoped to the environment and identity), not the caller's.
    expect(stripeKeys[0]).toMatch(/^checkout-session:[0-9a-f]{64}$/);
    expect(await sessionsAtStripe(shop_.account)).toHaveLength(1);

    const otherKey = await checkout(shop_, {}, { headers: { "idempotency-key": "click-2" } });
    expect(otherKey.status).toBe(201);
    expect(otherKey.body.id).not.toBe(first.body.id);
    const otherIdentity = await checkout(shop_, { identity: { userIdentifier: "someone@example.com" } }, { headers: { "idempotency-key": "click-1" } });
    expect(otherIdentity.status).toBe(201);
    expect(otherIdentity.body.id).not.toBe(first.body.id);
    const noKey = await checkout(shop_, {});
    expect(noKey.body.id).not.toBe(first.body.id);
    expect(await sessionsAtStripe(shop_.account)).toHaveLength(4);

    const reused = await checkout(shop_, { cancelUrl: `${ORIGIN}/elsewhere` }, { headers: { "idempotency-key": "click-1" } });
    expect(reused.status).toBe(422);
    expect(reused.body.code).toBe("idempotency_key_reused");
  });

  it("answers Stripe's failures with 502 upstream_error, never the secret key", async () => {
    const shop_ = await shop();
    const setCustomer = await call("PUT", `/api/v1/admin/environments/${shop_.environmentId}/customers/reader@example.com`, {
      key: shop_.org.adminKey,
      body: { stripeCustomerId: "cus_notInThisAccount", stripeProductIds: [] },
    });
    expect(setCustomer.status).toBe(200);
    const logged = expectConsoleError("Stripe refused or failed the request");
    for (const answer of [await checkout(shop_, {}), await portal(shop_)]) {
      expect(answer.status).toBe(502);
      expect(answer.body).toMatchObject({ status: "error", code: "upstream_error", message: expect.stringMatching(/No such customer: 'cus_notInThisAccount'/) });
      expect(JSON.stringify(answer.body)).not.toContain(shop_.account.key.slice(8));
    }
    expect(logged.lines).toHaveLength(2);
    for (const line of logged.lines) expect(line).not.toContain(shop_.account.key.slice(8));
  });

  it("cannot use another tenant's prices or customers", async () => {
    const a = await shop({ oneTime: true });
    const opened = await checkout(a, {});
    const { events } = await completeCheckout(opened.body.id);
    for (const event of events) expect((await postWebhook(a.environmentId, event, a.account.webhookSecret)).status).toBe(200);
    await payments.deliver();
    expect((await portal(a)).status).toBe(201);

    const b = await shop();
    // B's key works in B's environment and Stripe account only: A's price is no price of B's plan, A's buyer no customer of B.
    const foreignPrice = await checkout(b, { price: a.priceId });
    expect(foreignPrice.status).toBe(400);
    expect(foreignPrice.body.details).toEqual([{ path: "price", message: expect.stringMatching(/No price/) }]);
    expect((await portal(b)).status).toBe(409);
    expect(await checkoutPosts(b.account)).toEqual([]);
    // An admin key of B cannot open checkouts at all (an environment's secret key is needed).
    expect((await checkout(a, {}, { key: b.org.adminKey })).status).toBe(403);
  });
});

/** Checkout sessions the account has at Stripe (the fake lists them newest first). */
async function sessionsAtStripe(account: StripeAccount): Promise<unknown[]> {
  const response = await fetch(`${stripeApiBase()}/v1/checkout/sessions?limit=100`, { headers: { authorization: `Bearer ${account.key}` } });
  return ((await response.json()) as { data: unknown[] }).data;
}
