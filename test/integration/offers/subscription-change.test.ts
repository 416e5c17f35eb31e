/**
 * The Stripe subscription methods of offers (workers/offers/subscriptionChange.ts) against the fake Stripe: which
 * subscription and price a change may use, the proration preview, a change now and a change scheduled at the end of
 * the period — and that the new plan reaches decisions through the usual webhooks (customer.subscription.updated).
 */
import { env } from "cloudflare:workers";
import type Stripe from "stripe";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { SnapshotOffer } from "../../../workers/engine/snapshot";
import { connectedPayments, type ConnectedPayments } from "../../../workers/payments/checkout";
import { redeemSubscriptionOffer, type SubscriptionChangeOptions } from "../../../workers/offers/subscriptionChange";
import { getCustomerRecord } from "../../../workers/services/customers";
import { mintOfferToken } from "../../../workers/offers/tokens";
import { isolateSnapshots } from "../../../workers/services/snapshots";
import { call, createOrganization, publish, type TestOrganization } from "../../support/api";
import { newsSite } from "../../support/examples";
import { type CapturedPayments, capturePayments, connectStripe, payOnFakeStripe, postWebhook, type StripeAccount } from "../../support/payments";
import { advanceSubscriptionSchedule, fakeStripe, seedPrice, stripeApiBase, stripeEventsOf, stripeRequests } from "../../support/stripe";

let payments: CapturedPayments;
beforeEach(() => {
  payments = capturePayments();
});
afterEach(() => payments.restore());

const READER = "reader@example.com";
const logger = { warn: () => {} };

interface Shop {
  org: TestOrganization;
  environmentId: string;
  versionId: string;
  account: StripeAccount;
  /** Basic: $10 a month, plan `basic` (premium articles off). */
  basicPrice: string;
  /** Premium: $20 a month, plan `premium` (premium articles on). */
  premiumPrice: string;
  premiumProduct: string;
  plans: { slug: string; stripeProductIds: string[] }[];
}

async function shop(options: { offers?: (prices: { basic: string; premium: string }) => Record<string, unknown> } = {}): Promise<Shop> {
  const org = await createOrganization("Subscription change");
  const environmentId = org.preview.id;
  const account = await connectStripe(org, environmentId);
  const basic = await seedPrice(account.key, "Basic", { unitAmount: 1000 });
  const premium = await seedPrice(account.key, "Premium", { unitAmount: 2000 });
  const document = newsSite();
  document.plans.premium.stripeProductIds = [premium.product.id];
  document.plans.basic = { name: "Basic", stripeProductIds: [basic.product.id], features: { articles: { enabled: "on" } } };
  if (options.offers) document.offers = options.offers({ basic: basic.price.id, premium: premium.price.id });
  const versionId = await publish(org.adminKey, document, [environmentId]);
  const plans = [
    { slug: "basic", stripeProductIds: [basic.product.id] },
    { slug: "premium", stripeProductIds: [premium.product.id] },
  ];
  return { org, environmentId, versionId, account, basicPrice: basic.price.id, premiumPrice: premium.price.id, premiumProduct: premium.product.id, plans };
}

function offerOf(method: "subscription_change" | "scheduled_change", priceId: string, proration: "create_prorations" | "always_invoice" | "none" = "create_prorations"): SnapshotOffer {
  return {
    slug: "go-premium",
    name: "Go premium",
    presentation: { title: "Go premium" },
    price: { currency: "usd", amount: 2000, interval: "month" },
    redemption: method === "subscription_change" ? { method, plan: "premium", stripePriceId: priceId, proration } : { method, plan: "premium", stripePriceId: priceId },
    targeting: {},
    variants: [],
    fingerprint: "f".repeat(64),
  };
}

async function deliverAll(shop_: Shop, events: Stripe.Event[]) {
  for (const event of events) expect((await postWebhook(shop_.environmentId, event, shop_.account.webhookSecret)).status).toBe(200);
  await payments.deliver();
}

async function subscribe(shop_: Shop, priceId: string, identifier = READER): Promise<string> {
  const bought = await payOnFakeStripe(shop_.account, shop_.org.id, { priceId, identifier });
  await deliverAll(shop_, bought.events);
  return bought.session.subscription as string;
}

async function hasPremium(shop_: Shop, identifier = READER): Promise<boolean> {
  const response = await call("POST", "/api/v1/access-checks", { key: shop_.org.preview.secretKey, body: { identity: { userIdentifier: identifier } } });
  expect(response.status).toBe(200);
  return response.body.features.articles.properties.premium.value;
}

async function redeem(shop_: Shop, offer: SnapshotOffer, options: Partial<SubscriptionChangeOptions> = {}, identifier = READER) {
  const connected: ConnectedPayments = await connectedPayments(env.DB, env.SECRETS_KEY, stripeApiBase(), shop_.environmentId, logger);
  const customer = await getCustomerRecord(env.DB, shop_.org.id, "preview", identifier);
  const redemption = offer.redemption as { stripePriceId: string };
  return redeemSubscriptionOffer(
    connected,
    { organizationId: shop_.org.id, store: "preview", identifier, customer, plans: shop_.plans },
    offer,
    redemption.stripePriceId,
    { preview: false, idempotencyKey: `redemption-${crypto.randomUUID()}`, metadata: { platform_offer_redemption: "jti_test" }, ...options },
  );
}

const subscriptionUpdates = async (shop_: Shop) => (await stripeEventsOf(shop_.account.key, "customer.subscription.updated")).reverse();

describe("subscription_change", () => {
  it("previews the proration without changing anything", async () => {
    const shop_ = await shop();
    const subscriptionId = await subscribe(shop_, shop_.basicPrice);
    const outcome = await redeem(shop_, offerOf("subscription_change", shop_.premiumPrice), { preview: true });
    // A fresh 30-day period: almost all of it remains, so the credit is ~−1000 and the charge ~+2000 (the fake's
    // proration is the remaining fraction of the period, rounded), plus the next period at the new price.
    expect(outcome).toMatchObject({ status: "preview", subscriptionId, effectiveAt: expect.any(String) });
    if (outcome.status !== "preview") throw new Error("not a preview");
    const [credit, charge, next] = outcome.proration.lines;
    expect(outcome.proration.lines).toHaveLength(3);
    expect(credit!.amount).toBeGreaterThanOrEqual(-1000);
    expect(credit!.amount).toBeLessThan(-990);
    expect(charge!.amount).toBeGreaterThan(1980);
    expect(charge!.amount).toBeLessThanOrEqual(2000);
    expect(next).toEqual({ description: "1 × Premium", amount: 2000 });
    expect(outcome.proration).toMatchObject({ currency: "usd", amountDue: credit!.amount + charge!.amount + 2000 });

    const previews = (await stripeRequests(shop_.account.key)).filter((request) => request.path === "/v1/invoices/create_preview");
    expect(previews).toHaveLength(1);
    expect(previews[0]!.body).toMatchObject({ subscription: subscriptionId, subscription_details: { items: [{ price: shop_.premiumPrice }], proration_behavior: "create_prorations" } });
    // Nothing changed: no update reached Stripe, the reader still has Basic.
    expect((await stripeRequests(shop_.account.key)).filter((request) => request.method === "POST" && request.path === `/v1/subscriptions/${subscriptionId}`)).toEqual([]);
    expect(await hasPremium(shop_)).toBe(false);
  });

  it("changes the price now; after the webhook the next decision holds the new plan", async () => {
    const shop_ = await shop();
    const subscriptionId = await subscribe(shop_, shop_.basicPrice);
    expect(await hasPremium(shop_)).toBe(false);
    const idempotencyKey = `redemption-${crypto.randomUUID()}`;
    const outcome = await redeem(shop_, offerOf("subscription_change", shop_.premiumPrice, "always_invoice"), { idempotencyKey });
    expect(outcome).toEqual({ status: "changed", subscriptionId, effectiveAt: expect.any(String) });

    const [update, ...others] = (await stripeRequests(shop_.account.key)).filter((request) => request.method === "POST" && request.path === `/v1/subscriptions/${subscriptionId}`);
    expect(others).toEqual([]);
    expect(update!.idempotencyKey).toBe(idempotencyKey);
    expect(update!.body).toMatchObject({
      items: [{ id: expect.stringMatching(/^si_/), price: shop_.premiumPrice }],
      proration_behavior: "always_invoice",
      // A failed payment of the prorated invoice leaves the subscription on its old price.
      payment_behavior: "pending_if_incomplete",
      metadata: { platform_offer_redemption: "jti_test" },
    });
    // Not yet: the platform learns of the change from Stripe's webhook.
    expect(await hasPremium(shop_)).toBe(false);
    const events = await subscriptionUpdates(shop_);
    expect(events).toHaveLength(1);
    await deliverAll(shop_, events);
    expect(await hasPremium(shop_)).toBe(true);
    // The subscription keeps the store's tags and carries the redemption.
    expect((events[0]!.data.object as Stripe.Subscription).metadata).toMatchObject({ identifier: READER, platform_offer_redemption: "jti_test" });
  });

  it("keeps the old price when the payment of the prorated invoice fails (pending_if_incomplete), and says so", async () => {
    const shop_ = await shop();
    const subscriptionId = await subscribe(shop_, shop_.basicPrice);
    const subscription = (await (await fetch(`${stripeApiBase()}/v1/subscriptions/${subscriptionId}`, { headers: { authorization: `Bearer ${shop_.account.key}` } })).json()) as Stripe.Subscription;
    await fakeStripe(`customers/${subscription.customer as string}/payment_method`, { body: { decline: true } });
    const refused = redeem(shop_, offerOf("subscription_change", shop_.premiumPrice, "always_invoice"));
    await expect(refused).rejects.toMatchObject({ code: "conflict", message: expect.stringContaining("did not go through") });
    const after = (await (await fetch(`${stripeApiBase()}/v1/subscriptions/${subscriptionId}`, { headers: { authorization: `Bearer ${shop_.account.key}` } })).json()) as Stripe.Subscription;
    expect(after.items.data.map((item) => item.price.id)).toEqual([shop_.basicPrice]);
    expect(await subscriptionUpdates(shop_)).toEqual([]);
  });

  it("refuses without a running subscription, on the same price, and for a price that is gone, archived or another plan's", async () => {
    const shop_ = await shop();
    const none = redeem(shop_, offerOf("subscription_change", shop_.premiumPrice));
    await expect(none).rejects.toMatchObject({ code: "conflict", message: expect.stringMatching(/no subscription to change: use a checkout offer/) });

    await subscribe(shop_, shop_.basicPrice);
    await expect(redeem(shop_, offerOf("subscription_change", shop_.basicPrice))).rejects.toMatchObject({
      code: "offer_changed",
      message: expect.stringContaining(`is not a price of plan premium's Stripe products`),
    });
    await expect(redeem(shop_, offerOf("subscription_change", "price_gone"))).rejects.toMatchObject({
      code: "offer_changed",
      message: expect.stringContaining("Stripe price price_gone no longer exists"),
    });
    const archived = await fakeStripe<Stripe.Price>("prices", { key: shop_.account.key, body: { product: shop_.premiumProduct, currency: "usd", unit_amount: 1500, recurring: { interval: "month" }, active: false } });
    await expect(redeem(shop_, offerOf("subscription_change", archived.id))).rejects.toMatchObject({ code: "offer_changed", message: expect.stringContaining("archived") });

    // On the offer's price already (premium bought directly).
    await subscribe(shop_, shop_.premiumPrice, "premium@example.com");
    await expect(redeem(shop_, offerOf("subscription_change", shop_.premiumPrice), {}, "premium@example.com")).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringContaining(`is already on price ${shop_.premiumPrice}`),
    });
    // Nothing reached Stripe's write endpoints.
    expect((await stripeRequests(shop_.account.key)).filter((request) => request.method === "POST" && /^\/v1\/(subscriptions|subscription_schedules)\b/.test(request.path))).toEqual([]);
  });

  it("among several subscriptions changes the one holding a plan's product, and refuses when two do", async () => {
    const shop_ = await shop();
    const other = await seedPrice(shop_.account.key, "Newsletter", { unitAmount: 300 });
    await subscribe(shop_, other.price.id);
    const basic = await subscribe(shop_, shop_.basicPrice);
    await expect(redeem(shop_, offerOf("subscription_change", shop_.premiumPrice), { preview: true })).resolves.toMatchObject({ subscriptionId: basic });
    const second = await subscribe(shop_, shop_.basicPrice);
    const refused = redeem(shop_, offerOf("subscription_change", shop_.premiumPrice));
    await expect(refused).rejects.toMatchObject({ code: "conflict", message: expect.stringMatching(new RegExp(`several subscriptions \\(.*${second}.*\\)|several subscriptions \\(.*${basic}.*\\)`)) });
  });
});

describe("scheduled_change", () => {
  it("schedules the new price at the end of the period: nothing changes now, the next phase gives the plan", async () => {
    const shop_ = await shop();
    const subscriptionId = await subscribe(shop_, shop_.basicPrice);
    const idempotencyKey = `redemption-${crypto.randomUUID()}`;
    const outcome = await redeem(shop_, offerOf("scheduled_change", shop_.premiumPrice), { idempotencyKey });
    expect(outcome).toEqual({ status: "scheduled", subscriptionId, scheduleId: expect.stringMatching(/^sub_sched_/), effectiveAt: expect.any(String) });
    if (outcome.status !== "scheduled") throw new Error("not scheduled");

    const posts = (await stripeRequests(shop_.account.key)).filter((request) => request.method === "POST" && request.path.startsWith("/v1/subscription_schedules"));
    expect(posts.map((request) => [request.path, request.idempotencyKey])).toEqual([
      ["/v1/subscription_schedules", `${idempotencyKey}:schedule`],
      [`/v1/subscription_schedules/${outcome.scheduleId}`, `${idempotencyKey}:phases`],
    ]);
    expect(posts[0]!.body).toEqual({ from_subscription: subscriptionId });
    expect(posts[1]!.body).toMatchObject({
      end_behavior: "release",
      phases: [
        { items: [{ price: shop_.basicPrice, quantity: "1" }], end_date: String(Date.parse(outcome.effectiveAt) / 1000) },
        { items: [{ price: shop_.premiumPrice, quantity: "1" }], metadata: { identifier: READER, platform_offer_redemption: "jti_test" } },
      ],
    });
    // Nothing changes now, even after the webhooks of the schedule's attachment.
    await deliverAll(shop_, await subscriptionUpdates(shop_));
    expect(await hasPremium(shop_)).toBe(false);

    const advanced = await advanceSubscriptionSchedule(outcome.scheduleId);
    expect(advanced.schedule.status).toBe("released");
    expect(advanced.subscription.items.data.map((item) => item.price.id)).toEqual([shop_.premiumPrice]);
    await deliverAll(shop_, advanced.events);
    expect(await hasPremium(shop_)).toBe(true);
  });

  it("previews the first invoice at the new price (no proration)", async () => {
    const shop_ = await shop();
    await subscribe(shop_, shop_.basicPrice);
    const outcome = await redeem(shop_, offerOf("scheduled_change", shop_.premiumPrice), { preview: true });
    expect(outcome).toMatchObject({ status: "preview", proration: { amountDue: 2000, currency: "usd", lines: [{ description: "1 × Premium", amount: 2000 }] } });
    expect((await stripeRequests(shop_.account.key)).filter((request) => request.path.startsWith("/v1/subscription_schedules"))).toEqual([]);
  });
});

describe("subscription offers through POST /api/v1/offer-redemptions", () => {
  const premiumPrice = { currency: "usd", amount: 2000, interval: "month" };
  const offers = ({ premium }: { premium: string }) => ({
    upgrade: { presentation: { title: "Upgrade now" }, price: premiumPrice, redemption: { method: "subscription_change", plan: "premium", stripePriceId: premium } },
    "upgrade-later": { presentation: { title: "Upgrade next month" }, price: premiumPrice, redemption: { method: "scheduled_change", plan: "premium", stripePriceId: premium } },
  });

  /** A token for `offer`, as a surface decision would have given READER (signed in). */
  async function tokenFor(shop_: Shop, offer: string): Promise<string> {
    const prepared = await isolateSnapshots.get(env.DB, shop_.versionId);
    const fingerprint = prepared.snapshot.offers!.find((candidate) => candidate.slug === offer)!.fingerprint;
    const input = { env: shop_.environmentId, offer, variant: null, group: null, slot: null, sub: READER, anon: false, amt: 2000, cur: "usd", int: "month", fp: fingerprint };
    return (await mintOfferToken(env.SECRETS_KEY, input, Date.now())).token;
  }

  const redeemThroughRoute = (shop_: Shop, offerToken: string, extra: Record<string, unknown> = {}) =>
    call("POST", "/api/v1/offer-redemptions", { key: shop_.org.preview.secretKey, body: { identity: { userIdentifier: READER }, offerToken, ...extra } });

  it("previews, then changes the subscription now; the webhook gives the plan", async () => {
    const shop_ = await shop({ offers });
    const subscriptionId = await subscribe(shop_, shop_.basicPrice);
    const token = await tokenFor(shop_, "upgrade");
    const preview = await redeemThroughRoute(shop_, token, { preview: true });
    expect(preview.status, JSON.stringify(preview.body)).toBe(201);
    expect(preview.body.preview).toMatchObject({ currency: "usd", amountDue: expect.any(Number), lines: expect.arrayContaining([{ description: "1 × Premium", amount: 2000 }]) });
    expect(await subscriptionUpdates(shop_)).toEqual([]);

    const changed = await redeemThroughRoute(shop_, token);
    expect(changed.status, JSON.stringify(changed.body)).toBe(201);
    expect(changed.body).toMatchObject({ redemption: { offer: "upgrade", method: "subscription_change", state: "completed" }, subscription: { id: subscriptionId, scheduled: false } });
    const events = await subscriptionUpdates(shop_);
    expect((events[0]!.data.object as Stripe.Subscription).metadata.platform_offer_redemption).toBe(changed.body.redemption.id);
    await deliverAll(shop_, events);
    expect(await hasPremium(shop_)).toBe(true);
  });

  it("schedules the change at the period's end", async () => {
    const shop_ = await shop({ offers });
    const subscriptionId = await subscribe(shop_, shop_.basicPrice);
    const scheduled = await redeemThroughRoute(shop_, await tokenFor(shop_, "upgrade-later"));
    expect(scheduled.status, JSON.stringify(scheduled.body)).toBe(201);
    expect(scheduled.body.subscription).toEqual({ id: subscriptionId, scheduled: true, scheduleId: expect.stringMatching(/^sub_sched_/), effectiveAt: expect.any(String) });
    await deliverAll(shop_, await subscriptionUpdates(shop_));
    expect(await hasPremium(shop_)).toBe(false);
    await deliverAll(shop_, (await advanceSubscriptionSchedule(scheduled.body.subscription.scheduleId)).events);
    expect(await hasPremium(shop_)).toBe(true);
  });

  it("answers 409 when the identity has no subscription to change, and changes nothing at Stripe", async () => {
    const shop_ = await shop({ offers });
    const refused = await redeemThroughRoute(shop_, await tokenFor(shop_, "upgrade"));
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ status: "error", code: "conflict", message: expect.stringContaining("no subscription to change: use a checkout offer") });
    expect((await stripeRequests(shop_.account.key)).filter((request) => request.method === "POST")).toEqual([]);
  });
});
