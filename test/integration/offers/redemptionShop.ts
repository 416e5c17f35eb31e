/**
 * What the redemption tests share: examples/paywall.yaml with seeded prices on its own fake Stripe account, offers
 * shown without the "no articles left" condition (so a first decision shows them), and small callers.
 */
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import type { OfferTokenClaims } from "../../../workers/engine/offerTypes";
import { mintOfferToken, type OfferTokenInput } from "../../../workers/offers/tokens";
import { preparedSnapshotFor } from "../../../workers/services/snapshots";
import { call, createOrganization, publish, type TestOrganization } from "../../support/api";
import { paywall } from "../../support/examples";
import { connectStripe, postWebhook, type CapturedPayments, type StripeAccount } from "../../support/payments";
import { completeCheckout, seedPrice, stripeApiBase, stripeRequests } from "../../support/stripe";

export const ORIGIN = "https://news.example";

export interface RedemptionShop {
  org: TestOrganization;
  environmentId: string;
  account: StripeAccount;
  key: string;
  versionId: string;
  document: Record<string, any>;
  products: { premium: string; premiumYearly: string; premiumLower: string; dayPass: string };
  prices: { premium: string; premiumYearly: string; premiumLower: string; dayPass: string };
}

export async function redemptionShop(change?: (document: Record<string, any>, shop: Pick<RedemptionShop, "products" | "prices">) => void): Promise<RedemptionShop> {
  const org = await createOrganization("Offer redemptions");
  const environmentId = org.preview.id;
  const account = await connectStripe(org, environmentId, undefined, { allowedOrigins: [ORIGIN] });
  const premium = await seedPrice(account.key, "Premium", { unitAmount: 999, interval: "month" });
  const premiumYearly = await seedPrice(account.key, "Premium yearly", { unitAmount: 9900, interval: "year" });
  const premiumLower = await seedPrice(account.key, "Premium lower", { unitAmount: 799, interval: "month" });
  const dayPass = await seedPrice(account.key, "Day pass", { unitAmount: 199, interval: "day" });
  const products = { premium: premium.product.id, premiumYearly: premiumYearly.product.id, premiumLower: premiumLower.product.id, dayPass: dayPass.product.id };
  const prices = { premium: premium.price.id, premiumYearly: premiumYearly.price.id, premiumLower: premiumLower.price.id, dayPass: dayPass.price.id };
  const document = paywall();
  document.plans.premium.stripeProductIds = [products.premium, products.premiumYearly, products.premiumLower];
  document.plans["day-pass"].stripeProductIds = [products.dayPass];
  const monthly = document.offers["premium-monthly"];
  monthly.redemption.stripePriceId = prices.premium;
  monthly.redemption.successUrl = `${ORIGIN}/welcome`;
  monthly.redemption.cancelUrl = `${ORIGIN}/article`;
  monthly.variants["lower-price"].stripePriceId = prices.premiumLower;
  document.offers["premium-yearly"].redemption.stripePriceId = prices.premiumYearly;
  document.offers["day-pass"].redemption.stripePriceId = prices.dayPass;
  for (const offer of Object.values<any>(document.offers)) delete offer.targeting.featureState;
  change?.(document, { products, prices });
  const versionId = await publish(org.adminKey, document, [environmentId]);
  return { org, environmentId, account, key: org.preview.secretKey, versionId, document, products, prices };
}

/** A surface decision of the article page; `country` goes in as the customer's server forwards Cloudflare's. */
export async function articlePage(shop: RedemptionShop, identity: Record<string, unknown>, options: { country?: string } = {}) {
  const response = await call("POST", "/api/v1/surface-decisions", {
    key: shop.key,
    body: { surfaceSlug: "article-page", identity, resource: { id: `article-${crypto.randomUUID()}` }, ...(options.country ? { cloudflare: { cf: { country: options.country } } } : {}) },
  });
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body;
}

/** The offer shown in the paywall's slot (0 featured, 1 alternative). */
export async function offerShown(shop: RedemptionShop, identity: Record<string, unknown>, slot = 0, options: { country?: string } = {}) {
  const decision = await articlePage(shop, identity, options);
  const offer = decision.offers.paywall.slots[slot].offer;
  expect(offer, JSON.stringify(decision.offers)).not.toBeNull();
  return offer as { offer: string; variant: string | null; token: string; price: { amount: number; currency: string; interval?: string } };
}

export function redeem(shop: RedemptionShop, body: Record<string, unknown>, key = shop.key) {
  return call("POST", "/api/v1/offer-redemptions", { key, body });
}

/** Signs a token as a surface decision would, for cases a decision cannot produce (expired, another identity). */
export async function mintToken(shop: RedemptionShop, input: Partial<OfferTokenInput> & { offer: string }, now = Date.now()): Promise<{ token: string; claims: OfferTokenClaims }> {
  const prepared = await preparedSnapshotFor(env.DB, shop.versionId);
  const offer = prepared.snapshot.offers!.find((candidate) => candidate.slug === input.offer)!;
  return mintOfferToken(
    env.SECRETS_KEY,
    {
      env: shop.environmentId,
      variant: null,
      group: "paywall",
      slot: 0,
      sub: "reader@example.com",
      anon: false,
      amt: offer.price?.amount ?? null,
      cur: offer.price?.currency ?? null,
      int: offer.price?.interval ?? null,
      fp: offer.fingerprint,
      ...input,
    },
    now,
  );
}

export async function checkoutPosts(shop: RedemptionShop) {
  return (await stripeRequests(shop.account.key)).filter((request) => request.method === "POST" && request.path === "/v1/checkout/sessions");
}

/** Every checkout session of the shop's Stripe account. */
export async function checkoutSessions(shop: RedemptionShop): Promise<{ id: string; metadata: Record<string, string> }[]> {
  const response = await fetch(`${stripeApiBase()}/v1/checkout/sessions?limit=100`, { headers: { authorization: `Bearer ${shop.account.key}` } });
  return ((await response.json()) as { data: { id: string; metadata: Record<string, string> }[] }).data;
}

export async function redemptionRows(shop: RedemptionShop) {
  const { results } = await env.DB.prepare("SELECT * FROM offer_redemptions WHERE environment_id = ?").bind(shop.environmentId).all<Record<string, unknown>>();
  return results;
}

export async function redemptionEvents(shop: RedemptionShop) {
  const response = await call("GET", `/api/v1/admin/events?environmentId=${shop.environmentId}&kind=offer_redemption&limit=100`, { key: shop.org.adminKey });
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return (response.body.events as { id: string; outcome: string; identifier: string; createdAt: string; record: Record<string, unknown> }[]).reverse();
}

/** Pays the checkout on the fake Stripe and delivers its webhooks through the platform's route and queue consumer. */
export async function payCheckout(shop: RedemptionShop, payments: CapturedPayments, checkoutId: string, options: { status?: "active" | "trialing" } = {}) {
  const { events, session } = await completeCheckout(checkoutId, options);
  for (const event of events) expect((await postWebhook(shop.environmentId, event, shop.account.webhookSecret)).status).toBe(200);
  await payments.deliver();
  return { events, session };
}
