/**
 * The `checkout` method of offers: a Stripe Checkout session charging exactly the price the offer token binds.
 *
 * The price is recomputed here from the deployed offer (engine/offers.ts resolvePrice, once without an adjustment and
 * once under each adjustment): the token's amount, currency and interval must be one of them, so even a validly
 * signed token charges nothing the offer cannot produce. Then:
 * - the plain price with a Stripe price → that price, after checking at Stripe that it still exists, is active, is a
 *   price of one of the plan's products and charges the same amount, currency and interval;
 * - an adjusted price → one inline price (`price_data`) of the Stripe price's product at the token's amount;
 * - a bundle → one inline price per item, each its own product at its share.
 * Anything that no longer holds is 409 `offer_changed`: the client asks for a new decision.
 */
import { resolvePrice } from "../engine/offers";
import type { OfferTokenClaims, ResolvedPrice } from "../engine/offerTypes";
import type { PreparedSnapshot } from "../engine/prepare";
import type { SnapshotOffer } from "../engine/snapshot";
import { ApiError } from "../errors";
import { type ConnectedPayments, type OpenedCheckout, refuseForeignCheckoutUrls } from "../payments/checkout";
import type { CheckoutPriceData, PriceSummary } from "../payments/gateway";
import { storeScope } from "../payments/gateway";
import { OFFER_REDEMPTION_KEY } from "../payments/stripe";
import { fromProviderForOffer } from "./provider";

type CheckoutRedemption = Extract<SnapshotOffer["redemption"], { method: "checkout" }>;

/** What a checkout charges, checked against the deployed offer and Stripe; nothing is created yet. */
export interface PreparedOfferCheckout {
  mode: "subscription" | "payment";
  priceIds: string[];
  priceData: CheckoutPriceData[];
  trialDays?: number;
  coupon?: string;
  successUrl: string;
  cancelUrl: string;
}

const changed = (message: string) => new ApiError("offer_changed", `${message}: ask for a new decision`);

/**
 * The line items, mode and URLs of the offer's checkout for the token, or 409 `offer_changed` / 400 for URLs. Reads
 * Stripe (the prices), writes nothing.
 */
export async function prepareOfferCheckout(
  payments: ConnectedPayments,
  prepared: PreparedSnapshot,
  offer: SnapshotOffer,
  claims: OfferTokenClaims,
  urls: { successUrl?: string; cancelUrl?: string },
): Promise<PreparedOfferCheckout> {
  const redemption = offer.redemption as CheckoutRedemption;
  const successUrl = urls.successUrl ?? redemption.successUrl;
  const cancelUrl = urls.cancelUrl ?? redemption.cancelUrl;
  const missing = [...(successUrl ? [] : ["successUrl"]), ...(cancelUrl ? [] : ["cancelUrl"])];
  if (missing.length > 0) {
    const message = "required: the offer has no default for it";
    throw new ApiError("validation_failed", `Invalid request: ${missing.map((path) => `${path}: ${message}`).join("; ")}`, missing.map((path) => ({ path, message })));
  }
  refuseForeignCheckoutUrls(payments, { successUrl: successUrl!, cancelUrl: cancelUrl! });

  const variant = claims.variant === null ? undefined : offer.variants.find((candidate) => candidate.slug === claims.variant);
  if (claims.variant !== null && !variant) throw changed(`Offer ${offer.slug} has no variant ${claims.variant} any more`);
  const configured = variant?.price ?? offer.price;
  const price = configured ? priceOfToken(configured, offer, claims) : null;
  if (!price) throw changed(`Offer ${offer.slug} no longer charges the price this token was given`);
  const mode = price.interval ? "subscription" : "payment";
  // A variant with its own price is charged by its own Stripe price only (engine/offers.ts resolveOffer).
  const stripePriceId = variant?.stripePriceId ?? (variant?.price ? undefined : redemption.stripePriceId);
  const productIds = planProducts(prepared, offer, redemption);

  let priceIds: string[] = [];
  let priceData: CheckoutPriceData[] = [];
  if (price.items) {
    priceData = price.items.map((item) => inline(item.stripeProductId, item.amount, price));
  } else if (!price.adjusted && stripePriceId) {
    const stripePrice = await knownPrice(payments, offer.slug, stripePriceId, productIds);
    const problem =
      stripePrice.unitAmount !== price.amount
        ? `charges ${stripePrice.unitAmount ?? "no fixed amount"}, not ${price.amount}`
        : stripePrice.currency !== price.currency
          ? `is in ${stripePrice.currency}, not ${price.currency}`
          : stripePrice.interval !== (price.interval ?? null)
            ? `is ${stripePrice.interval ? `billed every ${stripePrice.interval}` : "one-time"}, not ${price.interval ? `every ${price.interval}` : "one-time"}`
            : null;
    if (problem) throw changed(`Stripe price ${stripePriceId} of offer ${offer.slug} ${problem}`);
    priceIds = [stripePriceId];
  } else {
    // An adjusted price (or a plain one without a Stripe price): charged inline, for the product the offer sells.
    const productId = stripePriceId ? (await knownPrice(payments, offer.slug, stripePriceId, productIds)).productId : productIds.length === 1 ? productIds[0]! : null;
    if (!productId) throw changed(`Offer ${offer.slug} has no Stripe price naming the product to charge ${price.amount} for`);
    priceData = [inline(productId, price.amount, price)];
  }
  return {
    mode,
    priceIds,
    priceData,
    ...(mode === "subscription" && redemption.trialDays ? { trialDays: redemption.trialDays } : {}),
    ...(redemption.coupon ? { coupon: redemption.coupon } : {}),
    successUrl: successUrl!,
    cancelUrl: cancelUrl!,
  };
}

/** Opens the session under the redemption's idempotency key; the webhooks find the redemption by its metadata. */
export async function openOfferCheckout(
  payments: ConnectedPayments,
  checkout: PreparedOfferCheckout,
  buyer: { organizationId: string; store: string; identifier: string; customerId: string | null },
  redemption: { id: string; offer: string },
  idempotencyKey: string,
): Promise<OpenedCheckout> {
  const metadata = { [OFFER_REDEMPTION_KEY]: redemption.id };
  const session = await fromProviderForOffer(redemption.offer, () =>
    payments.gateway.createCheckoutSession(
      {
        mode: checkout.mode,
        priceIds: checkout.priceIds,
        priceData: checkout.priceData,
        ...(checkout.trialDays ? { trialDays: checkout.trialDays } : {}),
        ...(checkout.coupon ? { coupon: checkout.coupon } : {}),
        metadata,
        ...(buyer.customerId ? { customerId: buyer.customerId } : {}),
        identifier: buyer.identifier,
        scope: storeScope(buyer.organizationId, buyer.store),
        successUrl: checkout.successUrl,
        cancelUrl: checkout.cancelUrl,
        automaticTax: payments.checkout.automaticTax,
      },
      { idempotencyKey },
    ),
  );
  return { id: session.id, url: session.url, mode: checkout.mode };
}

/**
 * The price the offer produces that the token names (amount, currency, interval): the configured price, or the price
 * under one of its adjustments; null when none matches. The plain price wins a tie, so its Stripe price is used.
 */
export function priceOfToken(configured: NonNullable<SnapshotOffer["price"]>, offer: SnapshotOffer, claims: OfferTokenClaims): ResolvedPrice | null {
  // Conditions decide which adjustment a visitor got, from facts of the decision that minted the token; here every
  // candidate is computed with its conditions lifted, and the signed token says which one was shown.
  const facts = { identity: { isAuthenticated: !claims.anon, testGroup100: 0 }, bot: undefined, country: undefined, planSlugs: [], features: {}, now: 0 };
  const candidates = [
    resolvePrice({ ...configured, adjustments: undefined }, offer.presentation, facts),
    ...(configured.adjustments ?? []).map((adjustment) => ({
      ...resolvePrice({ ...configured, adjustments: [{ ...adjustment, when: {} }] }, offer.presentation, facts),
      adjusted: true,
    })),
  ];
  return (
    candidates.find((candidate) => candidate.amount === claims.amt && candidate.currency === claims.cur && (candidate.interval ?? null) === claims.int) ?? null
  );
}

function planProducts(prepared: PreparedSnapshot, offer: SnapshotOffer, redemption: CheckoutRedemption): string[] {
  if (!redemption.plan) return [];
  const plan = prepared.planBySlug.get(redemption.plan);
  if (!plan) throw changed(`Plan ${redemption.plan} of offer ${offer.slug} is not in the deployed version`);
  return [...new Set(plan.plan.stripeProductIds)];
}

/** The Stripe price, when it exists, is active and belongs to one of the plan's products; 409 otherwise. */
async function knownPrice(payments: ConnectedPayments, offerSlug: string, priceId: string, productIds: string[]): Promise<PriceSummary> {
  const price = await fromProviderForOffer(offerSlug, () => payments.gateway.getPrice(priceId));
  if (!price) throw changed(`Stripe price ${priceId} no longer exists in the environment's Stripe account`);
  if (!price.active) throw changed(`Stripe price ${priceId} is archived (inactive) in Stripe`);
  if (productIds.length > 0 && !productIds.includes(price.productId)) {
    throw changed(`Stripe price ${priceId} is not a price of the offer's plan's Stripe products (${productIds.join(", ")})`);
  }
  return price;
}

function inline(productId: string, amount: number, price: ResolvedPrice): CheckoutPriceData {
  return { productId, currency: price.currency, unitAmount: amount, ...(price.interval ? { interval: price.interval } : {}) };
}
