/**
 * The payment provider as the platform sees it: a gateway that verifies webhooks into provider-neutral entitlement
 * events, opens hosted checkout and billing-portal pages, and answers "what has this customer paid for" for
 * reconciliation. Stripe is the first adapter (stripe.ts); nothing outside an adapter knows a provider's wire format.
 *
 * Times are ISO 8601 strings like everywhere else in the platform; amounts are integers in the currency's minor unit
 * (cents), currencies lowercase ISO 4217 codes as the providers send them.
 */

export type PaymentProvider = "stripe";

export type EntitlementEventType =
  | "subscription.activated"
  | "subscription.updated"
  | "subscription.canceled"
  | "payment.refunded"
  | "dispute.opened"
  | "checkout.completed"
  | "invoice.paid"
  | "invoice.payment_failed";

/** `unknown` stands for a status a provider adds later: it never grants access. */
export type SubscriptionStatus =
  | "active"
  | "trialing"
  | "past_due"
  | "unpaid"
  | "paused"
  | "incomplete"
  | "incomplete_expired"
  | "canceled"
  | "unknown";

export interface SubscriptionState {
  id: string;
  status: SubscriptionStatus;
  /** End of the period already paid for; null when the provider does not say (e.g. an incomplete subscription). */
  currentPeriodEnd: string | null;
  cancelAtPeriodEnd: boolean;
}

interface EventBase<Type extends EntitlementEventType> {
  type: Type;
  /** The provider's event id: the key to deduplicate redeliveries on. */
  id: string;
  provider: PaymentProvider;
  /**
   * When the object reached the state this event carries. Providers do not deliver in order: a consumer keeps the
   * newest state per object by comparing this, not the arrival order.
   */
  occurredAt: string;
  /** The provider's customer; null when the payload does not name one (e.g. a dispute whose charge is not expanded). */
  customerId: string | null;
  /** The platform identifier the checkout was opened for (`identifier` of createCheckoutSession), when it travelled. */
  identifier: string | null;
  /** Products this event is about; empty when the payload does not list them (ask `activeProductIds`). */
  productIds: string[];
  /** The provider's own event type, for logs and troubleshooting. */
  rawType: string;
}

export interface SubscriptionEvent
  extends EventBase<"subscription.activated" | "subscription.updated" | "subscription.canceled"> {
  subscription: SubscriptionState;
}

export interface CheckoutCompletedEvent extends EventBase<"checkout.completed"> {
  checkoutId: string;
  mode: "subscription" | "payment" | "setup";
  /** False for a delayed payment method still settling: access waits for the invoice or a later event. */
  paid: boolean;
  subscriptionId: string | null;
  amount: number | null;
  currency: string | null;
}

export interface InvoiceEvent extends EventBase<"invoice.paid" | "invoice.payment_failed"> {
  invoiceId: string;
  subscriptionId: string | null;
  /** Amount paid (invoice.paid) or still due (invoice.payment_failed). */
  amount: number;
  currency: string;
}

export interface PaymentRefundedEvent extends EventBase<"payment.refunded"> {
  /** The payment as purchases know it (a Stripe payment intent), or the charge when it has none. */
  paymentId: string;
  chargeId: string;
  /** Total refunded so far on the payment. */
  amount: number;
  currency: string;
  fullyRefunded: boolean;
}

export interface DisputeOpenedEvent extends EventBase<"dispute.opened"> {
  disputeId: string;
  /** The payment as purchases know it (a Stripe payment intent), or the charge when it has none. */
  paymentId: string;
  chargeId: string;
  amount: number;
  currency: string;
}

export type NormalizedEvent =
  | SubscriptionEvent
  | CheckoutCompletedEvent
  | InvoiceEvent
  | PaymentRefundedEvent
  | DisputeOpenedEvent;

/** A webhook that is unsigned, signed with another secret, or signed too long ago to rule out a replay. */
export class WebhookSignatureError extends Error {
  constructor(
    readonly reason: "missing" | "invalid",
    message: string,
  ) {
    super(message);
    this.name = "WebhookSignatureError";
  }
}

export interface CheckoutSessionRequest {
  mode: "subscription" | "payment";
  priceIds: string[];
  /** An existing provider customer; without one, the provider creates one at checkout. */
  customerId?: string;
  /** The platform identifier (end user) paying: it comes back on the resulting events as `identifier`. */
  identifier: string;
  successUrl: string;
  cancelUrl: string;
  automaticTax: boolean;
}

export interface CustomerSummary {
  id: string;
  email: string | null;
  metadata: Record<string, string>;
}

export interface CustomerPage {
  customers: CustomerSummary[];
  hasMore: boolean;
  /** Pass as `startingAfter` for the next page; null on the last one. */
  nextCursor: string | null;
}

/** A subscription as the provider has it right now. */
export interface SubscriptionSnapshot {
  subscription: SubscriptionState;
  customerId: string;
  /** The platform identifier the subscription was bought for (its metadata), when it has one. */
  identifier: string | null;
  productIds: string[];
}

/** A completed checkout as the provider has it right now. */
export interface CheckoutSnapshot {
  checkoutId: string;
  mode: "subscription" | "payment" | "setup";
  customerId: string | null;
  identifier: string | null;
  subscriptionId: string | null;
  /** The one-time payment (a Stripe payment intent); null in subscription and setup mode. */
  paymentId: string | null;
  paid: boolean;
  /** Every product of the checkout's line items. */
  productIds: string[];
}

export interface PaymentGateway {
  readonly provider: PaymentProvider;
  /**
   * Verifies a webhook delivery against the raw body exactly as received and turns it into entitlement events.
   * Throws WebhookSignatureError when the signature is missing, wrong or stale; an event type the platform does not
   * act on gives an empty list (acknowledge it, do nothing).
   */
  verifyWebhook(rawBody: string | Uint8Array, headers: Headers): Promise<NormalizedEvent[]>;
  createCheckoutSession(request: CheckoutSessionRequest): Promise<{ id: string; url: string }>;
  createPortalSession(request: { customerId: string; returnUrl: string }): Promise<{ url: string }>;
  /** The subscription's current state; null when the provider does not know it. */
  getSubscription(subscriptionId: string): Promise<SubscriptionSnapshot | null>;
  /** The checkout with all its products; null when the provider does not know it. */
  getCheckout(checkoutId: string): Promise<CheckoutSnapshot | null>;
  /** The customer a charge belongs to (disputes name only their charge); null when it has none. */
  customerOfCharge(chargeId: string): Promise<string | null>;
  listCustomers(request: { startingAfter?: string; limit: number }): Promise<CustomerPage>;
  /**
   * Products the customer is entitled to right now according to the provider: those of active or trialing
   * subscriptions and of paid one-time purchases that were not fully refunded.
   */
  activeProductIds(customerId: string): Promise<string[]>;
}
