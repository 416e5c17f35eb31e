/**
 * The Stripe subscription methods of offers: `subscription_change` (the customer's current subscription moves to the
 * offer's price now, prorated, with a preview of the proration) and `scheduled_change` (it moves at the end of the
 * current period). STUB — the subscription-methods work replaces the body; the signature is the contract.
 */
import type { SnapshotOffer } from "../engine/snapshot";
import { ApiError } from "../errors";
import type { ConnectedPayments } from "../payments/checkout";
import type { CustomerRecord } from "../services/customers";

export interface SubscriptionChangeTarget {
  organizationId: string;
  store: string;
  /** A signed-in identity (the orchestration refuses anonymous ones before calling). */
  identifier: string;
  customer: CustomerRecord | null;
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

export async function redeemSubscriptionOffer(
  _payments: ConnectedPayments,
  _target: SubscriptionChangeTarget,
  _offer: SnapshotOffer,
  _stripePriceId: string,
  _options: SubscriptionChangeOptions,
): Promise<SubscriptionChangeOutcome> {
  throw new ApiError("conflict", "subscription changes are not available yet");
}
