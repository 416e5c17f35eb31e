/**
 * The Stripe subscription methods of offers: `subscription_change` (the customer's current subscription moves to the
 * offer's price now, prorated, with a preview of the proration) and `scheduled_change` (it moves at the end of the
 * current period, through a subscription schedule). Nothing here grants anything: the subscription's new state reaches
 * the platform through the provider's webhooks (customer.subscription.updated → payments/apply.ts), as any other
 * change of a subscription does.
 */
import type { OfferTokenClaims } from "../engine/offerTypes";
import type { SnapshotOffer } from "../engine/snapshot";
import { ApiError } from "../errors";
import type { ConnectedPayments } from "../payments/checkout";
import { belongsToStore, type PriceSummary, type SubscriptionItems, storeScope } from "../payments/gateway";
import { OFFER_REDEMPTION_KEY } from "../payments/stripe";
import type { CustomerRecord, CustomerSubscription } from "../services/customers";
import { priceOfToken } from "./checkout";
import { fromProviderForOffer } from "./provider";

export interface SubscriptionChangeTarget {
  organizationId: string;
  store: string;
  /** A signed-in identity (the orchestration refuses anonymous ones before calling). */
  identifier: string;
  customer: CustomerRecord | null;
  /**
   * The deployed version's plans (`prepared.snapshot.plans`): the price must be one of the offer's plan's products,
   * and among several subscriptions the one holding a plan's product is the one that changes.
   */
  plans: readonly { slug: string; stripeProductIds: readonly string[] }[];
}

export type SubscriptionChangeOutcome =
  | {
      status: "preview";
      subscriptionId: string;
      effectiveAt: string;
      proration: { amountDue: number; currency: string; lines: { description: string | null; amount: number }[] };
    }
  | { status: "changed"; subscriptionId: string; effectiveAt: string }
  | { status: "scheduled"; subscriptionId: string; scheduleId: string; effectiveAt: string };

export interface SubscriptionChangeOptions {
  /** Only compute what the change would cost now (subscription_change); nothing changes. */
  preview: boolean;
  /** Stripe idempotency key: the same redemption changes the subscription once. */
  idempotencyKey: string;
  /** Set on the Stripe objects (the redemption id travels to the webhooks). */
  metadata: Record<string, string>;
}

/** The price the offer token was given (its `amt`, `cur`, `int`): the Stripe price must charge exactly that. */
export interface TokenPrice {
  amount: number | null;
  currency: string | null;
  interval: string | null;
}

/** A change checked against the deployed offer and Stripe, ready to be made; nothing was written. */
export interface PreparedSubscriptionChange {
  offer: string;
  method: "subscription_change" | "scheduled_change";
  subscriptionId: string;
  itemId: string;
  priceId: string;
  prorationBehavior: "create_prorations" | "always_invoice" | "none";
  /** Now for a change now, the period's end for a scheduled one. */
  effectiveAt: string;
  /** This redemption already made the change (an earlier try whose answer was lost): answered as is, nothing is sent. */
  done: Exclude<SubscriptionChangeOutcome, { status: "preview" }> | null;
}

/** Lifecycle states of a subscription that is still running (payments/lifecycle.ts): the ones a change can move. */
const CHANGEABLE_STATES: ReadonlySet<string> = new Set(["active", "trialing", "canceling"]);

/**
 * Moves (or previews moving) the identity's one running subscription to `stripePriceId`: prepareSubscriptionChange,
 * then previewSubscriptionChange or applySubscriptionChange.
 */
export async function redeemSubscriptionOffer(
  payments: ConnectedPayments,
  target: SubscriptionChangeTarget,
  offer: SnapshotOffer,
  stripePriceId: string,
  options: SubscriptionChangeOptions,
): Promise<SubscriptionChangeOutcome> {
  const prepared = await prepareSubscriptionChange(payments, target, offer, stripePriceId, { redemptionId: options.metadata[OFFER_REDEMPTION_KEY] ?? null });
  if (options.preview) return previewSubscriptionChange(payments, prepared);
  return applySubscriptionChange(payments, prepared, options);
}

/**
 * Checks the change against the deployed offer, the token's price and Stripe, reading only. 409 `conflict` when there
 * is no subscription to change (a checkout offer is what sells a first one), when several could be meant, when it is
 * already on that price, when a subscription schedule someone else made controls it (or any schedule, for a change
 * now), or when its currency or billing interval cannot take the price; 409 `offer_changed` when the price is gone,
 * archived, not recurring, not one of the offer's plan's products or not the token's price; 502 when Stripe fails.
 * A subscription this redemption (`redemptionId`) already moved answers `done`.
 */
export async function prepareSubscriptionChange(
  payments: ConnectedPayments,
  target: SubscriptionChangeTarget,
  offer: SnapshotOffer,
  stripePriceId: string,
  check: {
    redemptionId: string | null;
    price?: TokenPrice;
    /** The redemption was tried before (a failed try, or one still running): a schedule left unmarked may be its own. */
    retried?: boolean;
  },
): Promise<PreparedSubscriptionChange> {
  const redemption = offer.redemption;
  if (redemption.method !== "subscription_change" && redemption.method !== "scheduled_change") {
    throw new ApiError("bad_request", `Offer ${offer.slug} is redeemed by ${redemption.method}, not by a subscription change`);
  }
  const method = redemption.method;
  const gateway = payments.gateway;
  const provider = <T>(call: () => Promise<T>) => fromProviderForOffer(offer.slug, call);
  const planProducts = productsOfPlan(target, offer.slug, redemption.plan);
  const subscription = subscriptionToChange(target);

  const price = await provider(() => gateway.getPrice(stripePriceId));
  const priceProblem = !price
    ? `Stripe price ${stripePriceId} no longer exists`
    : !price.active
      ? `Stripe price ${stripePriceId} is archived (inactive)`
      : price.type !== "recurring"
        ? `Stripe price ${stripePriceId} is not recurring: a subscription cannot move to it`
        : !planProducts.includes(price.productId)
          ? `Stripe price ${stripePriceId} is not a price of plan ${redemption.plan}'s Stripe products (${planProducts.join(", ") || "none"})`
          : check.price
            ? tokenPriceProblem(stripePriceId, price, check.price)
            : null;
  if (priceProblem || !price) throw new ApiError("offer_changed", `Offer ${offer.slug} cannot be redeemed: ${priceProblem}: ask for a new decision`);

  const current = await provider(() => gateway.getSubscriptionItems(subscription.id));
  if (!current || !CHANGEABLE_STATES.has(stateOf(current))) {
    throw new ApiError("conflict", `Subscription ${subscription.id} is no longer running at Stripe: no subscription to change`);
  }
  if (!belongsToStore(current.scope, storeScope(target.organizationId, target.store))) {
    throw new ApiError("conflict", `Subscription ${subscription.id} was bought in another store: no subscription to change`);
  }
  const scheduled = method === "scheduled_change";
  const now = Math.floor(Date.now() / 1000);
  const periodEnd = current.subscription.currentPeriodEnd;
  const base = { offer: offer.slug, method, subscriptionId: subscription.id, priceId: stripePriceId };
  const mine = check.redemptionId !== null;

  // Made already by this redemption (its answer was lost, or a repeat raced it): the same answer, nothing sent again.
  if (!scheduled && mine && current.redemption === check.redemptionId && current.items.some((item) => item.priceId === stripePriceId)) {
    const item = current.items.find((candidate) => candidate.priceId === stripePriceId)!;
    const effectiveAt = new Date(now * 1000).toISOString();
    return { ...base, itemId: item.id, prorationBehavior: "none", effectiveAt, done: { status: "changed", subscriptionId: subscription.id, effectiveAt } };
  }
  if (current.scheduleId) {
    if (!scheduled) {
      throw new ApiError(
        "conflict",
        `Subscription ${subscription.id} is controlled by subscription schedule ${current.scheduleId}: release it or wait for the scheduled change before changing the price now`,
      );
    }
    const schedule = await provider(() => gateway.getSubscriptionSchedule(current.scheduleId!));
    // Unmarked, but this token tried before: its try may have created the schedule and failed before marking it. The
    // change itself tells (the provider answers the same create again), and refuses it with 409 when it is not.
    if (schedule && !schedule.platformCreated && !(mine && check.retried)) {
      throw new ApiError("conflict", `Subscription ${subscription.id} is controlled by subscription schedule ${schedule.id}, which the platform did not create: release it or wait for the scheduled change`);
    }
    if (schedule && mine && schedule.redemption === check.redemptionId && schedule.nextPhasePriceIds?.includes(stripePriceId) && periodEnd) {
      const item = itemToChange(target, current);
      return { ...base, itemId: item.id, prorationBehavior: "none", effectiveAt: periodEnd, done: { status: "scheduled", subscriptionId: subscription.id, scheduleId: schedule.id, effectiveAt: periodEnd } };
    }
  }
  if (current.items.some((item) => item.priceId === stripePriceId)) {
    throw new ApiError("conflict", `Subscription ${subscription.id} is already on price ${stripePriceId}`);
  }
  const item = itemToChange(target, current);
  // Stripe bills a subscription in one currency and, across its items, one interval.
  if (item.currency !== price.currency) {
    throw new ApiError("conflict", `Subscription ${subscription.id} is billed in ${item.currency}: offer ${offer.slug}'s Stripe price ${stripePriceId} is in ${price.currency}`);
  }
  const others = current.items.filter((candidate) => candidate.id !== item.id && candidate.interval !== price.interval);
  if (others.length > 0) {
    throw new ApiError("conflict", `Subscription ${subscription.id} has items billed every ${others[0]!.interval}: offer ${offer.slug}'s Stripe price ${stripePriceId} is billed every ${price.interval} (mixed intervals)`);
  }
  if (scheduled && current.subscription.cancelAtPeriodEnd) {
    throw new ApiError("conflict", `Subscription ${subscription.id} ends at the end of its period: there is no next period to change`);
  }
  if (scheduled && !periodEnd) throw new ApiError("conflict", `Subscription ${subscription.id} has no current period end to schedule the change at`);
  return {
    ...base,
    itemId: item.id,
    // A scheduled change prorates nothing: the preview is the first invoice at the new price.
    prorationBehavior: redemption.method === "subscription_change" ? redemption.proration : "none",
    effectiveAt: scheduled ? periodEnd! : new Date(now * 1000).toISOString(),
    done: null,
  };
}

/** What the prepared change would invoice now; nothing changes. */
export async function previewSubscriptionChange(payments: ConnectedPayments, prepared: PreparedSubscriptionChange): Promise<Extract<SubscriptionChangeOutcome, { status: "preview" }>> {
  const { subscriptionId, itemId, priceId, prorationBehavior } = prepared;
  const proration = await fromProviderForOffer(prepared.offer, () =>
    payments.gateway.previewSubscriptionPriceChange({ subscriptionId, itemId, priceId, prorationBehavior, prorationDate: Math.floor(Date.now() / 1000), metadata: {} }),
  );
  return { status: "preview", subscriptionId, effectiveAt: prepared.effectiveAt, proration };
}

/** Makes the prepared change at Stripe (once per idempotency key), or answers the change this redemption made. */
export async function applySubscriptionChange(
  payments: ConnectedPayments,
  prepared: PreparedSubscriptionChange,
  options: Pick<SubscriptionChangeOptions, "idempotencyKey" | "metadata">,
): Promise<Exclude<SubscriptionChangeOutcome, { status: "preview" }>> {
  if (prepared.done) return prepared.done;
  const gateway = payments.gateway;
  const { subscriptionId, itemId, priceId, prorationBehavior, metadata } = { ...prepared, metadata: options.metadata };
  if (prepared.method === "scheduled_change") {
    const { scheduleId, effectiveAt } = await fromProviderForOffer(prepared.offer, () =>
      gateway.scheduleSubscriptionPriceChange({ subscriptionId, itemId, priceId, metadata }, { idempotencyKey: options.idempotencyKey }),
    );
    return { status: "scheduled", subscriptionId, scheduleId, effectiveAt };
  }
  await fromProviderForOffer(prepared.offer, () => gateway.changeSubscriptionPrice({ subscriptionId, itemId, priceId, prorationBehavior, metadata }, { idempotencyKey: options.idempotencyKey }));
  // A prorated invoice whose payment failed leaves the change pending at Stripe: the subscription is still on its price.
  const after = await fromProviderForOffer(prepared.offer, () => gateway.getSubscriptionItems(subscriptionId));
  if (after && !after.items.some((item) => item.priceId === priceId)) {
    throw new ApiError(
      "conflict",
      `The payment for moving subscription ${subscriptionId} to price ${priceId} did not go through: it stays on its price (Stripe keeps the change pending until the invoice is paid)`,
    );
  }
  return { status: "changed", subscriptionId, effectiveAt: prepared.effectiveAt };
}

/**
 * The Stripe price a subscription offer moves to for this token: the token's variant's own, else the offer's. The
 * price must be the configured one, unadjusted: a subscription change charges a Stripe price as it is, never an
 * adjusted or bundled amount. 409 `offer_changed` otherwise.
 */
export function subscriptionPriceOfToken(offer: SnapshotOffer, claims: OfferTokenClaims): string {
  const redemption = offer.redemption;
  if (redemption.method !== "subscription_change" && redemption.method !== "scheduled_change") {
    throw new ApiError("bad_request", `Offer ${offer.slug} is redeemed by ${redemption.method}, not by a subscription change`);
  }
  const variant = claims.variant === null ? undefined : offer.variants.find((candidate) => candidate.slug === claims.variant);
  if (claims.variant !== null && !variant) throw new ApiError("offer_changed", `Offer ${offer.slug} has no variant ${claims.variant} any more: ask for a new decision`);
  const configured = variant?.price ?? offer.price;
  const price = configured ? priceOfToken(configured, offer, claims) : null;
  if (!price) throw new ApiError("offer_changed", `Offer ${offer.slug} no longer charges the price this token was given: ask for a new decision`);
  if (price.adjusted || price.items) {
    throw new ApiError("offer_changed", `Offer ${offer.slug}: a ${redemption.method} charges its Stripe price as it is, not the adjusted or bundled price this token was given: ask for a new decision`);
  }
  // A variant with its own price is charged by its own Stripe price only (engine/offers.ts resolveOffer).
  const stripePriceId = variant?.stripePriceId ?? (variant?.price ? undefined : redemption.stripePriceId);
  if (!stripePriceId) throw new ApiError("offer_changed", `Offer ${offer.slug}'s variant ${claims.variant} has a price of its own but no Stripe price charging it: ask for a new decision`);
  return stripePriceId;
}

function tokenPriceProblem(priceId: string, price: PriceSummary, token: TokenPrice): string | null {
  if (price.unitAmount !== token.amount) return `Stripe price ${priceId} charges ${price.unitAmount ?? "no fixed amount"}, not ${token.amount ?? "nothing"} as shown`;
  if (price.currency !== token.currency) return `Stripe price ${priceId} is in ${price.currency}, not ${token.currency ?? "no currency"} as shown`;
  if (price.interval !== token.interval) return `Stripe price ${priceId} is billed every ${price.interval}, not ${token.interval ? `every ${token.interval}` : "once"} as shown`;
  return null;
}

/** The Stripe products of the offer's plan in the deployed version; 409 `offer_changed` when the plan is gone or unlinked. */
function productsOfPlan(target: SubscriptionChangeTarget, offerSlug: string, planSlug: string): string[] {
  const plan = target.plans.find((candidate) => candidate.slug === planSlug);
  if (!plan) throw new ApiError("offer_changed", `Offer ${offerSlug} cannot be redeemed: plan ${planSlug} is not in the deployed version`);
  if (plan.stripeProductIds.length === 0) {
    throw new ApiError("offer_changed", `Offer ${offerSlug} cannot be redeemed: plan ${planSlug} is linked to no Stripe product`);
  }
  return [...plan.stripeProductIds];
}

/**
 * The one running (active, trialing or canceling) subscription of the identity in this store. Among several, the one
 * holding a product of a plan; 409 when there is none, or when that still leaves more than one.
 */
function subscriptionToChange(target: SubscriptionChangeTarget): CustomerSubscription {
  const running = (target.customer?.subscriptions ?? []).filter((subscription) => CHANGEABLE_STATES.has(subscription.state) && subscription.revokedAt === null);
  if (running.length === 0) {
    throw new ApiError("conflict", `${target.identifier} has no subscription to change: use a checkout offer`);
  }
  if (running.length === 1) return running[0]!;
  const planProducts = new Set(target.plans.flatMap((plan) => plan.stripeProductIds));
  const onPlans = running.filter((subscription) => subscription.productIds.some((product) => planProducts.has(product)));
  if (onPlans.length === 1) return onPlans[0]!;
  const named = (onPlans.length > 1 ? onPlans : running).map((subscription) => subscription.id).join(", ");
  throw new ApiError("conflict", `${target.identifier} has several subscriptions (${named}): which one to change is ambiguous`);
}

/** The item whose price changes: the only one, or the only one holding a plan's product. */
function itemToChange(target: SubscriptionChangeTarget, current: SubscriptionItems): SubscriptionItems["items"][number] {
  if (current.items.length === 1) return current.items[0]!;
  const planProducts = new Set(target.plans.flatMap((plan) => plan.stripeProductIds));
  const onPlans = current.items.filter((item) => planProducts.has(item.productId));
  if (onPlans.length === 1) return onPlans[0]!;
  throw new ApiError("conflict", `Subscription ${current.subscription.id} has ${current.items.length} items (${current.items.map((item) => item.priceId).join(", ")}): which one to change is ambiguous`);
}

function stateOf(current: SubscriptionItems): string {
  const { status, cancelAtPeriodEnd } = current.subscription;
  return (status === "active" || status === "trialing") && cancelAtPeriodEnd ? "canceling" : status;
}
