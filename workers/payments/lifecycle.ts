/**
 * The entitlement lifecycle, pure: which state a subscription is in (from the provider's status and its
 * cancel-at-period-end flag) and whether — and until when — that state grants its products. The webhook consumer
 * stores states; the decision asks `entitledProductIds` at its own clock, so a period end or a grace period expires on
 * time even when no webhook arrives.
 *
 * | state      | provider status                      | access                                             |
 * |------------|--------------------------------------|----------------------------------------------------|
 * | trialing   | trialing                             | yes                                                |
 * | active     | active                               | yes                                                |
 * | canceling  | active/trialing, cancel at period end | until the end of the paid period                  |
 * | past_due   | past_due                             | for the environment's grace (hours) after entering |
 * | unpaid     | unpaid                               | no                                                 |
 * | paused     | paused                               | no                                                 |
 * | incomplete | incomplete                           | no (the first payment has not succeeded)           |
 * | canceled   | canceled, incomplete_expired         | no                                                 |
 * | revoked    | any — a dispute took access away     | no                                                 |
 * | unknown    | a status the platform does not know  | no                                                 |
 *
 * One-time purchases: `paid` grants its products for good; `refunded` (in full) and `disputed` revoke them, when the
 * environment's policy says so — otherwise the purchase stays `paid`.
 */
import type { SubscriptionStatus } from "./gateway";

export type SubscriptionLifecycleState =
  | "trialing"
  | "active"
  | "canceling"
  | "past_due"
  | "unpaid"
  | "paused"
  | "incomplete"
  | "canceled"
  | "revoked"
  | "unknown";

export type PurchaseState = "paid" | "refunded" | "disputed";

export interface LifecyclePolicy {
  /** How long a past_due subscription keeps access after it became past_due (hours, 0…2160). */
  pastDueGraceHours: number;
  /** A full refund of a one-time purchase takes its products away. */
  revokeOnRefund: boolean;
  /** A dispute (chargeback) takes away what the disputed payment bought. */
  revokeOnDispute: boolean;
}

export const DEFAULT_LIFECYCLE_POLICY: LifecyclePolicy = { pastDueGraceHours: 72, revokeOnRefund: true, revokeOnDispute: true };
export const MAX_PAST_DUE_GRACE_HOURS = 90 * 24;

export function subscriptionStateOf(status: SubscriptionStatus, cancelAtPeriodEnd: boolean): SubscriptionLifecycleState {
  switch (status) {
    case "active":
    case "trialing":
      return cancelAtPeriodEnd ? "canceling" : status;
    case "incomplete_expired":
      return "canceled";
    default:
      return status;
  }
}

/** A subscription as stored: what the access of its state depends on. */
export interface StoredSubscription {
  state: SubscriptionLifecycleState;
  productIds: string[];
  /** ISO; null when the provider did not say. */
  currentPeriodEnd: string | null;
  /** ISO: when the subscription entered `state`. */
  stateSince: string;
  graceHours: number;
  revokedAt: string | null;
}

export interface StoredPurchase {
  state: PurchaseState;
  productIds: string[];
}

/** Whether the subscription grants its products at `now` (ms), and until when (ISO; null: open-ended). */
export function subscriptionAccess(subscription: StoredSubscription, now: number): { granted: boolean; until: string | null } {
  if (subscription.revokedAt !== null) return { granted: false, until: null };
  switch (subscription.state) {
    case "trialing":
    case "active":
      return { granted: true, until: null };
    case "canceling": {
      if (subscription.currentPeriodEnd === null) return { granted: true, until: null };
      return { granted: now < Date.parse(subscription.currentPeriodEnd), until: subscription.currentPeriodEnd };
    }
    case "past_due": {
      const until = Date.parse(subscription.stateSince) + subscription.graceHours * 3_600_000;
      return { granted: now < until, until: new Date(until).toISOString() };
    }
    default:
      return { granted: false, until: null };
  }
}

/** The products a customer's subscriptions and purchases grant at `now`, sorted and without duplicates. */
export function entitledProductIds(subscriptions: readonly StoredSubscription[], purchases: readonly StoredPurchase[], now: number): string[] {
  const products = new Set<string>();
  for (const subscription of subscriptions) {
    if (subscriptionAccess(subscription, now).granted) for (const product of subscription.productIds) products.add(product);
  }
  for (const purchase of purchases) if (purchase.state === "paid") for (const product of purchase.productIds) products.add(product);
  return [...products].sort();
}
