/**
 * The Stripe subscription methods of offers: `subscription_change` (the customer's current subscription moves to the
 * offer's price now, prorated, with a preview of the proration) and `scheduled_change` (it moves at the end of the
 * current period, through a subscription schedule). Nothing here grants anything: the subscription's new state reaches
 * the platform through the provider's webhooks (customer.subscription.updated → payments/apply.ts), as any other
 * change of a subscription does.
 */
import type { SnapshotOffer } from "../engine/snapshot";
import { ApiError } from "../errors";
import { type ConnectedPayments, fromProvider } from "../payments/checkout";
import { belongsToStore, type SubscriptionItems, storeScope } from "../payments/gateway";
import type { CustomerRecord, CustomerSubscription } from "../services/customers";

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

/** Lifecycle states of a subscription that is still running (payments/lifecycle.ts): the ones a change can move. */
const CHANGEABLE_STATES: ReadonlySet<string> = new Set(["active", "trialing", "canceling"]);

/**
 * Moves (or previews moving) the identity's one running subscription to `stripePriceId`. 409 `conflict` when there is
 * no subscription to change (a checkout offer is what sells a first one), when several could be meant, or when it is
 * already on that price; 409 `offer_changed` when the price is gone, archived, not recurring or not one of the offer's
 * plan's products; 502 when Stripe fails.
 */
export async function redeemSubscriptionOffer(
  payments: ConnectedPayments,
  target: SubscriptionChangeTarget,
  offer: SnapshotOffer,
  stripePriceId: string,
  options: SubscriptionChangeOptions,
): Promise<SubscriptionChangeOutcome> {
  const redemption = offer.redemption;
  if (redemption.method !== "subscription_change" && redemption.method !== "scheduled_change") {
    throw new ApiError("bad_request", `Offer ${offer.slug} is redeemed by ${redemption.method}, not by a subscription change`);
  }
  const gateway = payments.gateway;
  const planProducts = productsOfPlan(target, offer.slug, redemption.plan);
  const subscription = subscriptionToChange(target);

  const price = await fromProvider(() => gateway.getPrice(stripePriceId));
  const priceProblem = !price
    ? `Stripe price ${stripePriceId} no longer exists`
    : !price.active
      ? `Stripe price ${stripePriceId} is archived (inactive)`
      : price.type !== "recurring"
        ? `Stripe price ${stripePriceId} is not recurring: a subscription cannot move to it`
        : !planProducts.includes(price.productId)
          ? `Stripe price ${stripePriceId} is not a price of plan ${redemption.plan}'s Stripe products (${planProducts.join(", ") || "none"})`
          : null;
  if (priceProblem) throw new ApiError("offer_changed", `Offer ${offer.slug} cannot be redeemed: ${priceProblem}`);

  const current = await fromProvider(() => gateway.getSubscriptionItems(subscription.id));
  if (!current || !CHANGEABLE_STATES.has(stateOf(current))) {
    throw new ApiError("conflict", `Subscription ${subscription.id} is no longer running at Stripe: no subscription to change`);
  }
  if (!belongsToStore(current.scope, storeScope(target.organizationId, target.store))) {
    throw new ApiError("conflict", `Subscription ${subscription.id} was bought in another store: no subscription to change`);
  }
  if (current.items.some((item) => item.priceId === stripePriceId)) {
    throw new ApiError("conflict", `Subscription ${subscription.id} is already on price ${stripePriceId}`);
  }
  const item = itemToChange(target, current);
  const scheduled = redemption.method === "scheduled_change";
  if (scheduled && current.subscription.cancelAtPeriodEnd) {
    throw new ApiError("conflict", `Subscription ${subscription.id} ends at the end of its period: there is no next period to change`);
  }
  const periodEnd = current.subscription.currentPeriodEnd;
  if (scheduled && !periodEnd) throw new ApiError("conflict", `Subscription ${subscription.id} has no current period end to schedule the change at`);
  const now = Math.floor(Date.now() / 1000);
  const change = {
    subscriptionId: subscription.id,
    itemId: item.id,
    priceId: stripePriceId,
    // A scheduled change prorates nothing: the preview is the first invoice at the new price.
    prorationBehavior: redemption.method === "subscription_change" ? redemption.proration : ("none" as const),
    metadata: options.metadata,
  };
  const effectiveAt = scheduled ? periodEnd! : new Date(now * 1000).toISOString();

  if (options.preview) {
    const proration = await fromProvider(() => gateway.previewSubscriptionPriceChange({ ...change, prorationDate: now }));
    return { status: "preview", subscriptionId: subscription.id, effectiveAt, proration };
  }
  if (scheduled) {
    const { scheduleId, effectiveAt: at } = await fromProvider(() =>
      gateway.scheduleSubscriptionPriceChange(
        { subscriptionId: change.subscriptionId, itemId: change.itemId, priceId: change.priceId, metadata: change.metadata },
        { idempotencyKey: options.idempotencyKey },
      ),
    );
    return { status: "scheduled", subscriptionId: subscription.id, scheduleId, effectiveAt: at };
  }
  await fromProvider(() => gateway.changeSubscriptionPrice(change, { idempotencyKey: options.idempotencyKey }));
  return { status: "changed", subscriptionId: subscription.id, effectiveAt };
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
