/**
 * What POST /api/v1/offer-redemptions guards against beyond the token itself: a workflow offer runs once however often
 * it is clicked (a repeat answers the stored result or 409 "in progress"; a try whose request died is taken over once
 * its lease ran out); refused redemptions leave no trace; a subscription offer charges the price the visitor was shown
 * (the variant's Stripe price), is idempotent per token, respects subscription schedules it did not make, keeps a
 * trial when scheduling, and refuses a subscription it cannot combine with; Stripe's answers map to what a client can act on.
 */
import { env } from "cloudflare:workers";
import type Stripe from "stripe";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ApiError } from "../../../workers/errors";
import { fromProviderForOffer } from "../../../workers/offers/provider";
import { claimRedemption } from "../../../workers/offers/redemptions";
import { mintOfferToken } from "../../../workers/offers/tokens";
import { createStripeGateway } from "../../../workers/payments/stripe";
import { PaymentProviderError } from "../../../workers/payments/gateway";
import { isolateSnapshots } from "../../../workers/services/snapshots";
import { call, createOrganization, publish, type TestOrganization, waitForBackgroundWork } from "../../support/api";
import { expectConsoleError } from "../../support/console";
import { newsSite } from "../../support/examples";
import { type CapturedPayments, capturePayments, connectStripe, postWebhook, type StripeAccount } from "../../support/payments";
import { completeCheckout, fakeStripe, seedPrice, stripeApiBase, stripeRequests } from "../../support/stripe";

let payments: CapturedPayments;
beforeEach(() => {
  payments = capturePayments();
});
afterEach(() => payments.restore());

const READER = "reader@example.com";

interface Shop {
  org: TestOrganization;
  environmentId: string;
  versionId: string;
  account: StripeAccount;
  prices: { basic: string; premium: string; premiumPromo: string; premiumEuro: string };
}

/**
 * Basic ($10/month) and Premium ($20/month; also $15/month for a variant, and €20/month) on the fake Stripe; `offers`
 * gets the prices' ids. A workflow offer `gift` whose workflow waits a little and answers a nonce.
 */
async function shop(offers: (prices: Shop["prices"]) => Record<string, unknown> = () => ({})): Promise<Shop> {
  const org = await createOrganization("Redemption guards");
  const environmentId = org.preview.id;
  const account = await connectStripe(org, environmentId);
  const basic = await seedPrice(account.key, "Basic", { unitAmount: 1000 });
  const premium = await seedPrice(account.key, "Premium", { unitAmount: 2000 });
  const promo = await fakeStripe<Stripe.Price>("prices", { key: account.key, body: { product: premium.product.id, currency: "usd", unit_amount: 1500, recurring: { interval: "month" } } });
  const euro = await fakeStripe<Stripe.Price>("prices", { key: account.key, body: { product: premium.product.id, currency: "eur", unit_amount: 2000, recurring: { interval: "month" } } });
  const prices = { basic: basic.price.id, premium: premium.price.id, premiumPromo: promo.id, premiumEuro: euro.id };
  const document = newsSite();
  document.plans.premium.stripeProductIds = [premium.product.id];
  document.plans.basic = { name: "Basic", stripeProductIds: [basic.product.id], features: { articles: { enabled: "on" } } };
  document.workflows = {
    ...(document.workflows ?? {}),
    "redeem-gift": {
      type: "redemption",
      source: `export default async ({ input }: any) => { await new Promise((resolve) => setTimeout(resolve, 300)); return { result: { nonce: crypto.randomUUID(), note: input?.note ?? null } }; };`,
      deadlineMs: 2_000,
    },
  };
  document.offers = {
    gift: {
      presentation: { title: "A gift" },
      price: { currency: "usd", amount: 0 },
      redemption: { method: "workflow", workflow: "redeem-gift", schema: { type: "object", properties: { note: { type: "string", maxLength: 5 } }, additionalProperties: false } },
    },
    ...offers(prices),
  };
  const versionId = await publish(org.adminKey, document, [environmentId]);
  return { org, environmentId, versionId, account, prices };
}

/** A token for `offer` as a surface decision would have given READER (signed in); the offer's own price unless told. */
async function tokenFor(shop_: Shop, offer: string, override: { variant?: string; amt?: number; cur?: string; int?: string | null } = {}) {
  const prepared = await isolateSnapshots.get(env.DB, shop_.versionId);
  const deployed = prepared.snapshot.offers!.find((candidate) => candidate.slug === offer)!;
  const price = (override.variant ? deployed.variants.find((variant) => variant.slug === override.variant)!.price : undefined) ?? deployed.price!;
  const input = {
    env: shop_.environmentId,
    offer,
    variant: override.variant ?? null,
    group: null,
    slot: null,
    sub: READER,
    anon: false,
    amt: override.amt ?? price.amount ?? null,
    cur: override.cur ?? price.currency,
    int: override.int === undefined ? (price.interval ?? null) : override.int,
    fp: deployed.fingerprint,
  };
  return mintOfferToken(env.SECRETS_KEY, input, Date.now());
}

const redeem = (shop_: Shop, offerToken: string, extra: Record<string, unknown> = {}) =>
  call("POST", "/api/v1/offer-redemptions", { key: shop_.org.preview.secretKey, body: { identity: { userIdentifier: READER }, offerToken, ...extra } });

async function subscribe(shop_: Shop, priceId: string, status: "active" | "trialing" = "active"): Promise<string> {
  const gateway = createStripeGateway({ secretKey: shop_.account.key, webhookSecret: shop_.account.webhookSecret, apiBase: stripeApiBase() });
  const session = await gateway.createCheckoutSession({
    mode: "subscription",
    priceIds: [priceId],
    identifier: READER,
    scope: `${shop_.org.id}:preview`,
    successUrl: "https://shop.example/thanks",
    cancelUrl: "https://shop.example/pricing",
    automaticTax: false,
  });
  const bought = await completeCheckout(session.id, { status });
  for (const event of bought.events) expect((await postWebhook(shop_.environmentId, event, shop_.account.webhookSecret)).status).toBe(200);
  await payments.deliver();
  return bought.session.subscription as string;
}

async function rows(shop_: Shop) {
  const { results } = await env.DB.prepare("SELECT * FROM offer_redemptions WHERE environment_id = ?").bind(shop_.environmentId).all<Record<string, unknown>>();
  return results;
}

async function redemptionEvents(shop_: Shop) {
  await waitForBackgroundWork();
  const { results } = await env.DB.prepare("SELECT outcome FROM events WHERE environment_id = ? AND kind = 'offer_redemption' ORDER BY created_at").bind(shop_.environmentId).all<{ outcome: string }>();
  return results.map((row) => row.outcome);
}

const subscriptionWrites = async (shop_: Shop) =>
  (await stripeRequests(shop_.account.key)).filter((request) => request.method === "POST" && /^\/v1\/(subscriptions\/|subscription_schedules)/.test(request.path));

const premiumPrice = { currency: "usd", amount: 2000, interval: "month" };
const upgrade = (method: "subscription_change" | "scheduled_change", stripePriceId: string, extra: Record<string, unknown> = {}) => ({
  presentation: { title: "Upgrade" },
  price: premiumPrice,
  redemption: { method, plan: "premium", stripePriceId },
  ...extra,
});

describe("workflow offers run once", () => {
  it("a double click runs the workflow once: the other request answers 409 in progress (Retry-After 1), a later one the stored result", async () => {
    const shop_ = await shop();
    const { token } = await tokenFor(shop_, "gift");
    const answers = await Promise.all([redeem(shop_, token, { input: { note: "a" } }), redeem(shop_, token, { input: { note: "a" } })]);
    const statuses = answers.map((answer) => answer.status).sort();
    expect(statuses, JSON.stringify(answers.map((answer) => answer.body))).toEqual([201, 409]);
    const [done, refused] = answers[0]!.status === 201 ? answers : [answers[1]!, answers[0]!];
    expect(refused!.body).toMatchObject({ status: "error", code: "conflict", message: "This redemption is in progress; retry shortly" });
    expect(refused!.headers.get("retry-after")).toBe("1");
    const again = await redeem(shop_, token, { input: { note: "a" } });
    expect(again.status).toBe(201);
    expect(again.body.result.nonce).toBe(done!.body.result.nonce);
    expect(await rows(shop_)).toMatchObject([{ state: "completed", attempt: 1 }]);
  });

  it("a try whose request died is taken over once its lease ran out (a new attempt), not before", async () => {
    const shop_ = await shop();
    const { token, claims } = await tokenFor(shop_, "gift");
    // A request claimed the redemption and died before answering.
    await claimRedemption(env.DB, { organizationId: shop_.org.id, environmentId: shop_.environmentId }, claims, "workflow");
    const blocked = await redeem(shop_, token, { input: {} });
    expect(blocked.status).toBe(409);
    expect(blocked.body.code).toBe("conflict");
    await env.DB.prepare("UPDATE offer_redemptions SET updated_at = ? WHERE environment_id = ? AND token_id = ?")
      .bind(new Date(Date.now() - 61_000).toISOString(), shop_.environmentId, claims.jti)
      .run();
    const taken = await redeem(shop_, token, { input: {} });
    expect(taken.status, JSON.stringify(taken.body)).toBe(201);
    expect(taken.body).toMatchObject({ redemption: { state: "completed" }, result: { nonce: expect.any(String) } });
    expect(await rows(shop_)).toMatchObject([{ state: "completed", attempt: 2 }]);
  });
});

describe("refused redemptions leave no trace", () => {
  it("a workflow input the offer's schema refuses: 400, no row, no event", async () => {
    const shop_ = await shop();
    const { token } = await tokenFor(shop_, "gift");
    const refused = await redeem(shop_, token, { input: { note: "far too long" } });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ code: "validation_failed", details: [{ path: "input.note" }] });
    expect(await rows(shop_)).toEqual([]);
    expect(await redemptionEvents(shop_)).toEqual([]);
  });

  it("a subscription offer without a subscription to change: 409, no row, no event", async () => {
    const shop_ = await shop((prices) => ({ upgrade: upgrade("subscription_change", prices.premium) }));
    const refused = await redeem(shop_, (await tokenFor(shop_, "upgrade")).token);
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ code: "conflict", message: expect.stringContaining("no subscription to change") });
    expect(await rows(shop_)).toEqual([]);
    expect(await redemptionEvents(shop_)).toEqual([]);
  });
});

describe("subscription offers charge the price shown", () => {
  it("refuses a Stripe price that charges another amount than the token's (409 offer_changed naming it), changing nothing", async () => {
    // The offer says $25 but its Stripe price charges $20.
    const shop_ = await shop((prices) => ({ upgrade: upgrade("subscription_change", prices.premium, { price: { ...premiumPrice, amount: 2500 } }) }));
    await subscribe(shop_, shop_.prices.basic);
    const refused = await redeem(shop_, (await tokenFor(shop_, "upgrade")).token);
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ code: "offer_changed", message: expect.stringContaining(`Stripe price ${shop_.prices.premium} charges 2000, not 2500`) });
    expect(await subscriptionWrites(shop_)).toEqual([]);
    expect(await rows(shop_)).toEqual([]);
  });

  it("moves the subscription to the token's variant's own Stripe price", async () => {
    const shop_ = await shop((prices) => ({
      upgrade: upgrade("subscription_change", prices.premium, {
        variants: { promo: { testGroups: { from: 0, to: 99 }, price: { ...premiumPrice, amount: 1500 }, stripePriceId: prices.premiumPromo } },
      }),
    }));
    const subscriptionId = await subscribe(shop_, shop_.prices.basic);
    const changed = await redeem(shop_, (await tokenFor(shop_, "upgrade", { variant: "promo" })).token);
    expect(changed.status, JSON.stringify(changed.body)).toBe(201);
    const [update] = (await subscriptionWrites(shop_)).filter((request) => request.path === `/v1/subscriptions/${subscriptionId}`);
    expect(update!.body).toMatchObject({ items: [{ price: shop_.prices.premiumPromo }], payment_behavior: "pending_if_incomplete" });
  });

  it("refuses to publish adjustments on a subscription offer, and a variant price without its Stripe price", async () => {
    const org = await createOrganization("Redemption guards: config");
    const document = newsSite();
    document.offers = {
      upgrade: {
        presentation: { title: "Upgrade" },
        price: { ...premiumPrice, adjustments: [{ when: { countries: ["IN"] }, multiplier: 0.5 }] },
        redemption: { method: "scheduled_change", plan: "premium", stripePriceId: "price_premium" },
        variants: { cheaper: { testGroups: { from: 0, to: 49 }, price: { ...premiumPrice, amount: 1500 } } },
      },
    };
    const applied = await call("PUT", "/api/v1/admin/config", { key: org.adminKey, body: document });
    expect(applied.status).toBe(400);
    const paths = (applied.body.details as { path: string; message: string }[]).map((detail) => [detail.path, detail.message]);
    expect(paths).toEqual(
      expect.arrayContaining([
        [expect.stringMatching(/offers\.upgrade\.price\.adjustments$/), expect.stringContaining("adjustments (dynamic prices) need a checkout offer")],
        [expect.stringMatching(/offers\.upgrade\.variants\.cheaper\.stripePriceId$/), expect.stringContaining("needs the Stripe price charging it")],
      ]),
    );
  });

  it("refuses a subscription billed in another currency than the offer's Stripe price (409 naming the offer), before claiming", async () => {
    const shop_ = await shop((prices) => ({ upgrade: upgrade("subscription_change", prices.premiumEuro, { price: { ...premiumPrice, currency: "eur" } }) }));
    await subscribe(shop_, shop_.prices.basic);
    const refused = await redeem(shop_, (await tokenFor(shop_, "upgrade")).token);
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ code: "conflict", message: expect.stringMatching(/billed in usd: offer upgrade's Stripe price .* is in eur/) });
    expect(await subscriptionWrites(shop_)).toEqual([]);
    expect(await rows(shop_)).toEqual([]);
  });
});

describe("subscription offers are idempotent per token", () => {
  /** The redemption failed after Stripe made the change (its answer was lost): the token may be tried again. */
  const loseTheAnswer = (shop_: Shop) =>
    env.DB.prepare("UPDATE offer_redemptions SET state = 'failed', result = NULL, completed_at = NULL WHERE environment_id = ?").bind(shop_.environmentId).run();

  it("a change now tried again answers the change this token made instead of 409 'already on price'", async () => {
    const shop_ = await shop((prices) => ({ upgrade: upgrade("subscription_change", prices.premium) }));
    const subscriptionId = await subscribe(shop_, shop_.prices.basic);
    const { token } = await tokenFor(shop_, "upgrade");
    const first = await redeem(shop_, token);
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    await loseTheAnswer(shop_);
    const again = await redeem(shop_, token);
    expect(again.status, JSON.stringify(again.body)).toBe(201);
    expect(again.body).toMatchObject({ redemption: { state: "completed" }, subscription: { id: subscriptionId, scheduled: false } });
    expect(await subscriptionWrites(shop_)).toHaveLength(1);
  });

  it("a scheduled change tried again answers the schedule this token wrote, writing nothing", async () => {
    const shop_ = await shop((prices) => ({ later: upgrade("scheduled_change", prices.premium) }));
    const subscriptionId = await subscribe(shop_, shop_.prices.basic);
    const { token } = await tokenFor(shop_, "later");
    const first = await redeem(shop_, token);
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    const writes = (await subscriptionWrites(shop_)).length;
    await loseTheAnswer(shop_);
    const again = await redeem(shop_, token);
    expect(again.status, JSON.stringify(again.body)).toBe(201);
    expect(again.body.subscription).toEqual({ id: subscriptionId, scheduled: true, scheduleId: first.body.subscription.scheduleId, effectiveAt: first.body.subscription.effectiveAt });
    expect(await subscriptionWrites(shop_)).toHaveLength(writes);
  });
});

describe("subscription schedules", () => {
  /** A schedule someone else made (the Dashboard, another integration). */
  async function foreignSchedule(shop_: Shop, subscriptionId: string): Promise<string> {
    const response = await fetch(`${stripeApiBase()}/v1/subscription_schedules`, {
      method: "POST",
      headers: { authorization: `Bearer ${shop_.account.key}`, "content-type": "application/x-www-form-urlencoded" },
      body: `from_subscription=${subscriptionId}`,
    });
    expect(response.status).toBe(200);
    return ((await response.json()) as { id: string }).id;
  }

  it("a change now on a subscription with a schedule, and a scheduled change on a schedule the platform did not make: 409 naming it", async () => {
    const shop_ = await shop((prices) => ({ now: upgrade("subscription_change", prices.premium), later: upgrade("scheduled_change", prices.premium) }));
    const subscriptionId = await subscribe(shop_, shop_.prices.basic);
    const scheduleId = await foreignSchedule(shop_, subscriptionId);
    const writes = (await subscriptionWrites(shop_)).length;
    const now = await redeem(shop_, (await tokenFor(shop_, "now")).token);
    expect(now.status).toBe(409);
    expect(now.body).toMatchObject({ code: "conflict", message: expect.stringContaining(`subscription schedule ${scheduleId}: release it or wait for the scheduled change`) });
    const later = await redeem(shop_, (await tokenFor(shop_, "later")).token);
    expect(later.status).toBe(409);
    expect(later.body).toMatchObject({ code: "conflict", message: expect.stringContaining(`${scheduleId}, which the platform did not create`) });
    expect(await subscriptionWrites(shop_)).toHaveLength(writes);
    expect(await rows(shop_)).toEqual([]);
  });

  /** The account's next Stripe request of `method` to a path starting with `pathPrefix` fails once (500, not retried). */
  const failNext = (shop_: Shop, pathPrefix: string) => fakeStripe("fail_next", { key: shop_.account.key, body: { method: "POST", pathPrefix } });
  const subscriptionOf = async (shop_: Shop, subscriptionId: string) =>
    (await (await fetch(`${stripeApiBase()}/v1/subscriptions/${subscriptionId}`, { headers: { authorization: `Bearer ${shop_.account.key}` } })).json()) as Stripe.Subscription;

  it("a schedule left unmarked by a try whose phases update failed is taken back by the same token (Stripe answers the same create); another token gets 409", async () => {
    expectConsoleError("Injected failure");
    const shop_ = await shop((prices) => ({ later: upgrade("scheduled_change", prices.premium) }));
    const subscriptionId = await subscribe(shop_, shop_.prices.basic);
    const { token } = await tokenFor(shop_, "later");
    await failNext(shop_, "/v1/subscription_schedules/");
    const first = await redeem(shop_, token);
    expect(first.status, JSON.stringify(first.body)).toBe(502);
    // Created from the subscription (Stripe takes no metadata with `from_subscription`), never marked.
    const scheduleId = (await subscriptionOf(shop_, subscriptionId)).schedule as string;
    expect(scheduleId).toMatch(/^sub_sched_/);

    // Another redemption cannot tell this schedule from someone else's: refused before anything is written.
    const other = await redeem(shop_, (await tokenFor(shop_, "later")).token);
    expect(other.status).toBe(409);
    expect(other.body).toMatchObject({ code: "conflict", message: expect.stringContaining(`${scheduleId}, which the platform did not create`) });

    const again = await redeem(shop_, token);
    expect(again.status, JSON.stringify(again.body)).toBe(201);
    expect(again.body.subscription).toEqual({ id: subscriptionId, scheduled: true, scheduleId, effectiveAt: expect.any(String) });
    const creates = (await subscriptionWrites(shop_)).filter((request) => request.path === "/v1/subscription_schedules");
    expect(creates).toHaveLength(2);
    expect(creates[1]!.idempotencyKey).toBe(creates[0]!.idempotencyKey);
    const marked = (await subscriptionWrites(shop_)).filter((request) => request.path === `/v1/subscription_schedules/${scheduleId}`).at(-1)!;
    expect(marked.body).toMatchObject({ metadata: { platform_schedule: "1" }, phases: [{}, { items: [{ price: shop_.prices.premium }] }] });
  });

  it("a schedule someone else made, found only when the change is made, is 409 `conflict` (not 502), and never rewritten", async () => {
    expectConsoleError("Injected failure");
    const shop_ = await shop((prices) => ({ later: upgrade("scheduled_change", prices.premium) }));
    const subscriptionId = await subscribe(shop_, shop_.prices.basic);
    const { token } = await tokenFor(shop_, "later");
    // The first try fails before Stripe made anything; meanwhile someone else schedules the subscription.
    await failNext(shop_, "/v1/subscription_schedules");
    expect((await redeem(shop_, token)).status).toBe(502);
    const scheduleId = await foreignSchedule(shop_, subscriptionId);
    const again = await redeem(shop_, token);
    expect(again.status, JSON.stringify(again.body)).toBe(409);
    expect(again.body).toMatchObject({ code: "conflict", message: expect.stringContaining(`${scheduleId}, which the platform did not create: release it or wait for the scheduled change`) });
    expect((await subscriptionWrites(shop_)).filter((request) => request.path === `/v1/subscription_schedules/${scheduleId}`)).toEqual([]);
  });

  it("a scheduled change keeps the current phase's trial and marks the schedule as the platform's", async () => {
    const shop_ = await shop((prices) => ({ later: upgrade("scheduled_change", prices.premium) }));
    const subscriptionId = await subscribe(shop_, shop_.prices.basic, "trialing");
    const subscription = (await (await fetch(`${stripeApiBase()}/v1/subscriptions/${subscriptionId}`, { headers: { authorization: `Bearer ${shop_.account.key}` } })).json()) as Stripe.Subscription;
    expect(subscription.trial_end).toEqual(expect.any(Number));
    const scheduled = await redeem(shop_, (await tokenFor(shop_, "later")).token);
    expect(scheduled.status, JSON.stringify(scheduled.body)).toBe(201);
    const phases = (await subscriptionWrites(shop_)).find((request) => request.path === `/v1/subscription_schedules/${scheduled.body.subscription.scheduleId}`)!;
    expect(phases.body).toMatchObject({ metadata: { platform_schedule: "1" }, phases: [{ trial_end: String(subscription.trial_end) }, { items: [{ price: shop_.prices.premium }] }] });
  });
});

describe("Stripe's answers to a redemption", () => {
  const refusal = (param: string | null, message: string) => new PaymentProviderError("failed", message, { cause: null, refusal: { status: 400, code: "parameter_invalid", param } });

  it("in progress → 409 conflict (Retry-After 1); a key reused → 409 conflict; the offer's currency or interval → 409 offer_changed; the rest 502", async () => {
    const mapped = async (error: PaymentProviderError) => {
      try {
        await fromProviderForOffer("upgrade", () => Promise.reject(error));
      } catch (caught) {
        return caught as ApiError;
      }
      throw new Error("not refused");
    };
    const inProgress = await mapped(new PaymentProviderError("in_progress", "another request is in progress"));
    expect(inProgress).toMatchObject({ code: "conflict", message: "This redemption is in progress; retry shortly", retryAfterSeconds: 1 });
    expect(await mapped(new PaymentProviderError("idempotency_conflict", "Keys for idempotent requests…"))).toMatchObject({ code: "conflict", message: expect.stringContaining("offer upgrade") });
    expect(await mapped(refusal("line_items[1][price_data][currency]", "Currencies must match"))).toMatchObject({ code: "offer_changed", message: expect.stringContaining("Offer upgrade cannot be redeemed") });
    expect(await mapped(refusal(null, "Checkout does not support multiple prices with different billing intervals."))).toMatchObject({ code: "offer_changed" });
    expect(await mapped(refusal("line_items[0][price_data][product]", "No such product: 'prod_x'"))).toMatchObject({ code: "upstream_error" });
    expect(await mapped(new PaymentProviderError("failed", "Stripe is down"))).toMatchObject({ code: "upstream_error" });
    expect(inProgress).toBeInstanceOf(ApiError);
  });
});
