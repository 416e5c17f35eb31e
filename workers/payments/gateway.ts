/**
 * The payment provider as the platform sees it: a gateway that verifies webhooks into provider-neutral entitlement
 * events, opens hosted checkout and billing-portal pages, and answers "what has this customer paid for" for
 * reconciliation. Stripe is the first adapter (stripe.ts); nothing outside an adapter knows a provider's wire format.
 *
 * Times are ISO 8601 strings like everywhere else in the platform; amounts are integers in the currency's minor unit
 * (cents), currencies lowercase ISO 4217 codes as the providers send them.
 */

export type PaymentProvider = "stripe";

/** The tag of a user data store on the provider's objects: `{organizationId}:{store}`. */
export const storeScope = (organizationId: string, store: string): string => `${organizationId}:${store}`;

/** An object tagged for another store is not this store's: untagged ones (made outside the platform's checkout) are. */
export const belongsToStore = (tag: string | null, scope: string): boolean => tag === null || tag === scope;

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
  /** The user data store the checkout was opened for (`scope` of createCheckoutSession), when it travelled. */
  scope: string | null;
  /** Products this event is about; empty when the payload does not list them (ask `activeProductIds`). */
  productIds: string[];
  /** Sent by the provider's live mode (real money), not its test mode. */
  livemode: boolean;
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
  /** The offer redemption (its token's jti) the checkout was opened for (`metadata.platform_offer_redemption`); absent otherwise. */
  offerRedemption?: string;
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

/**
 * A correctly signed webhook whose payload is not an event the adapter can read (a shape the pinned API version does
 * not have, missing fields): refused like a bad request, never a server error, since redelivering it cannot help.
 */
export class WebhookPayloadError extends Error {
  constructor(message: string, options?: { cause: unknown }) {
    super(message, options);
    this.name = "WebhookPayloadError";
  }
}

/**
 * A line item priced inline (Stripe's `price_data`): an offer's adjusted price or a bundle's share, charged for an
 * existing product without a price of its own. Minor units; `interval` makes it recurring.
 */
export interface CheckoutPriceData {
  productId: string;
  currency: string;
  unitAmount: number;
  interval?: "day" | "week" | "month" | "year";
}

export interface CheckoutSessionRequest {
  mode: "subscription" | "payment";
  /** Line items by existing price (quantity 1 each)… */
  priceIds: string[];
  /** …and priced inline, after them. */
  priceData?: CheckoutPriceData[];
  /** A free trial before the first charge (subscription mode). */
  trialDays?: number;
  /** A provider coupon applied to the session. */
  coupon?: string;
  /** Extra metadata on the session and on the subscription or payment it creates (e.g. the offer redemption). */
  metadata?: Record<string, string>;
  /** An existing provider customer; without one, the provider creates one at checkout. */
  customerId?: string;
  /** The platform identifier (end user) paying: it comes back on the resulting events as `identifier`. */
  identifier: string;
  /**
   * The user data store it is paid in (storeScope): it comes back on the resulting events and objects as `scope`, so a
   * store never takes another's purchases when several organizations or environments share a provider account.
   */
  scope: string;
  successUrl: string;
  cancelUrl: string;
  automaticTax: boolean;
}

export interface ProviderRequestOptions {
  /** The provider runs a request once per key and answers a repeat with the first result. */
  idempotencyKey?: string;
}

export interface PriceSummary {
  id: string;
  productId: string;
  /** `recurring` is bought by subscription, `one_time` by a single payment. */
  type: "recurring" | "one_time";
  active: boolean;
  /** Minor units; null for a price without a fixed amount (tiered, customer-chosen). */
  unitAmount: number | null;
  currency: string;
  /** The recurring interval; null for a one-time price. */
  interval: "day" | "week" | "month" | "year" | null;
}

/**
 * The provider refused or failed a call (other than a webhook's signature): `idempotency_conflict` when an
 * idempotency key was reused with other parameters, `in_progress` when another request with the same key is still
 * running (retry shortly), `failed` for anything else (refused parameters, authentication, the provider unreachable).
 * The message is the provider's, with API keys masked; `refusal` says what the provider refused, when it refused the
 * request itself (a 4xx naming a parameter) rather than failing.
 */
export class PaymentProviderError extends Error {
  readonly refusal: ProviderRefusal | null;
  constructor(
    readonly reason: "idempotency_conflict" | "in_progress" | "failed",
    message: string,
    options?: { cause: unknown; refusal?: ProviderRefusal },
  ) {
    super(message, options);
    this.name = "PaymentProviderError";
    this.refusal = options?.refusal ?? null;
  }
}

/** A request the provider refused as invalid: its HTTP status, error code and the parameter it names, when given. */
export interface ProviderRefusal {
  status: number;
  code: string | null;
  param: string | null;
}

export interface CustomerSummary {
  id: string;
  email: string | null;
  metadata: Record<string, string>;
  /** The store the customer is tagged for (its metadata), when it is. */
  scope: string | null;
}

export interface CustomerPage {
  customers: CustomerSummary[];
  hasMore: boolean;
  /** Pass as `startingAfter` for the next page; null on the last one. */
  nextCursor: string | null;
}

/** One page of a listing; `nextCursor` is the provider's cursor to pass as `startingAfter`, null on the last page. */
export interface Page<Item> {
  items: Item[];
  hasMore: boolean;
  nextCursor: string | null;
}

/** A paid one-time purchase (a completed checkout in payment mode) as the provider has it right now. */
export interface PaidCheckout extends CheckoutSnapshot {
  paymentId: string;
  /** Its payment was refunded in full. */
  fullyRefunded: boolean;
}

/** A subscription as the provider has it right now. */
export interface SubscriptionSnapshot {
  subscription: SubscriptionState;
  customerId: string;
  /** The platform identifier the subscription was bought for (its metadata), when it has one. */
  identifier: string | null;
  /** The user data store it was bought in (its metadata), when it has one. */
  scope: string | null;
  productIds: string[];
}

/** A completed checkout as the provider has it right now. */
export interface CheckoutSnapshot {
  checkoutId: string;
  mode: "subscription" | "payment" | "setup";
  customerId: string | null;
  identifier: string | null;
  scope: string | null;
  subscriptionId: string | null;
  /** The one-time payment (a Stripe payment intent); null in subscription and setup mode. */
  paymentId: string | null;
  paid: boolean;
  /** Every product of the checkout's line items. */
  productIds: string[];
}

/** An invoice (amounts in the currency's smallest unit); workflows get it as it is (utils.payments.invoices). */
export interface InvoiceSummary {
  id: string;
  /** draft, open, paid, uncollectible or void. */
  status: string | null;
  amountDue: number;
  amountPaid: number;
  currency: string;
  created: string;
  /** The provider's page where the customer sees (and pays) the invoice. */
  hostedInvoiceUrl: string | null;
  subscriptionId: string | null;
}

/** Units of metered usage past an overflow allowance, reported to a usage-based price (PaymentGateway.reportUsage). */
export interface UsageReport {
  /** The Stripe Billing Meter's `event_name`. */
  eventName: string;
  customerId: string;
  /** Whole units, > 0. */
  value: number;
  /** Unique per report (≤ 100 characters): a retried report with it is counted once. */
  identifier: string;
}

export interface PaymentGateway {
  readonly provider: PaymentProvider;
  /**
   * Verifies a webhook delivery against the raw body exactly as received and turns it into entitlement events.
   * Throws WebhookSignatureError when the signature is missing, wrong or stale; an event type the platform does not
   * act on gives an empty list (acknowledge it, do nothing).
   */
  verifyWebhook(rawBody: string | Uint8Array, headers: Headers): Promise<NormalizedEvent[]>;
  /** Checkout and portal sessions, and prices, throw PaymentProviderError when the provider refuses or fails. */
  createCheckoutSession(request: CheckoutSessionRequest, options?: ProviderRequestOptions): Promise<{ id: string; url: string }>;
  createPortalSession(request: { customerId: string; returnUrl: string }, options?: ProviderRequestOptions): Promise<{ url: string }>;
  /** The price; null when the provider does not know it. */
  getPrice(priceId: string): Promise<PriceSummary | null>;
  /** Every active price of the product. */
  listActivePrices(productId: string): Promise<PriceSummary[]>;
  /** The subscription's current state; null when the provider does not know it. */
  getSubscription(subscriptionId: string): Promise<SubscriptionSnapshot | null>;
  /** The checkout with all its products; null when the provider does not know it. */
  getCheckout(checkoutId: string): Promise<CheckoutSnapshot | null>;
  /** The customer a charge belongs to (disputes name only their charge); null when it has none. */
  customerOfCharge(chargeId: string): Promise<{ customerId: string | null; scope: string | null }>;
  listCustomers(request: { startingAfter?: string; limit: number }): Promise<CustomerPage>;
  /** Every subscription of the account, whatever its status, newest first. */
  listSubscriptions(request: { startingAfter?: string; limit: number; customerId?: string }): Promise<Page<SubscriptionSnapshot>>;
  /**
   * The account's paid one-time purchases, newest first, with all their products. A page holds the purchases among
   * `limit` completed checkouts (others are skipped), so it may be short or empty while `hasMore` is true.
   */
  listPaidCheckouts(request: { startingAfter?: string; limit: number; customerId?: string }): Promise<Page<PaidCheckout>>;
  /**
   * Customers that paid for this identifier in this store — their own `metadata.identifier`, or that of their
   * subscriptions and payments, always with this store's `scope` beside it (what the platform's checkout sets) — at
   * most 10. The provider's search index may lag a new object by about a minute.
   */
  findCustomerIds(identifier: string, scope: string): Promise<string[]>;
  /** The customer's newest invoices, at most `limit`. */
  listInvoices(customerId: string, limit: number): Promise<InvoiceSummary[]>;
  /**
   * Products the customer is entitled to right now according to the provider: those of active or trialing
   * subscriptions and of paid one-time purchases that were not fully refunded.
   */
  activeProductIds(customerId: string): Promise<string[]>;
  /**
   * Reports `value` units of usage of the customer to a usage-based price (a Stripe Billing Meter's `eventName`).
   * `identifier` is unique per report: the provider counts a repeated report once. Throws PaymentProviderError.
   */
  reportUsage(request: UsageReport): Promise<void>;
  /**
   * Buys the product's single active one-time price with the customer's saved default payment method, off-session
   * (the customer is not there to confirm). A declined payment is an answer (`declined`), not an error; the request
   * is run once per idempotency key. Throws PaymentProviderError when the provider fails.
   */
  chargeSavedPaymentMethod(request: SavedMethodChargeRequest, options?: ProviderRequestOptions): Promise<SavedMethodCharge>;
  /** The subscription with its items and schedule (what a price change needs); null when the provider does not know it. */
  getSubscriptionItems(subscriptionId: string): Promise<SubscriptionItems | null>;
  /**
   * What moving the subscription's item to another price now would invoice, prorated as `prorationBehavior` says
   * (at `prorationDate`, now by default). Nothing changes. Throws PaymentProviderError.
   */
  previewSubscriptionPriceChange(request: SubscriptionPriceChange): Promise<ProrationPreview>;
  /**
   * Moves the subscription's item to another price now, prorated; the provider's events follow. When the prorated
   * invoice's payment fails, nothing changes (the update stays pending at the provider). Throws PaymentProviderError.
   */
  changeSubscriptionPrice(request: SubscriptionPriceChange, options?: ProviderRequestOptions): Promise<SubscriptionState>;
  /**
   * Moves the subscription's item to another price at the end of the current period, through a subscription schedule
   * (its current phase runs until the period ends, the next one holds the new price). Throws PaymentProviderError.
   */
  scheduleSubscriptionPriceChange(request: Omit<SubscriptionPriceChange, "prorationBehavior" | "prorationDate">, options?: ProviderRequestOptions): Promise<ScheduledPriceChange>;
  /** The subscription schedule, or null when the provider has none of that id. Throws PaymentProviderError. */
  getSubscriptionSchedule(scheduleId: string): Promise<SubscriptionScheduleSummary | null>;
}

export interface SavedMethodChargeRequest {
  customerId: string;
  productId: string;
  /** The user data store it is paid in (storeScope), set on the payment as a checkout's is. */
  scope: string;
  /** Set on the payment (e.g. the identifier it was made for). */
  metadata: Record<string, string>;
}

export type SavedMethodCharge =
  | { outcome: "succeeded"; paymentId: string; amount: number; currency: string }
  /** `code` is the provider's decline code (e.g. card_declined), or the payment's status when it did not succeed. */
  | { outcome: "declined"; paymentId: string | null; code: string; message: string }
  /** Nothing was charged: the customer is gone, has no saved default payment method, or the product no single price. */
  | { outcome: "not_charged"; reason: "no_customer" | "no_payment_method" | "no_price" };

/** A subscription's items as the provider has them now, for a price change. */
export interface SubscriptionItems {
  subscription: SubscriptionState;
  customerId: string;
  scope: string | null;
  items: { id: string; priceId: string; productId: string; quantity: number; currency: string; interval: PriceSummary["interval"] }[];
  /** The subscription schedule that already controls it, if any. */
  scheduleId: string | null;
  /** The offer redemption (token jti) that last changed it, from its metadata (`platform_offer_redemption`). */
  redemption: string | null;
}

/** A subscription schedule, as a scheduled change needs to know it. */
export interface SubscriptionScheduleSummary {
  id: string;
  status: string;
  /** Created by the platform (marked in its metadata): only those are rewritten by a scheduled change. */
  platformCreated: boolean;
  /** The offer redemption (token jti) that last wrote its phases, from its metadata. */
  redemption: string | null;
  /** The prices of the phase after the current one; null when there is none. */
  nextPhasePriceIds: string[] | null;
}

export interface SubscriptionPriceChange {
  subscriptionId: string;
  /** The item whose price changes (SubscriptionItems.items[].id). */
  itemId: string;
  priceId: string;
  prorationBehavior: "create_prorations" | "always_invoice" | "none";
  /** Unix seconds the proration is computed at; now when absent. */
  prorationDate?: number;
  /** Set on the subscription (or schedule). */
  metadata: Record<string, string>;
}

/** The invoice a change would produce now: what is due and its lines (prorations included). */
export interface ProrationPreview {
  amountDue: number;
  currency: string;
  lines: { description: string | null; amount: number }[];
}

export interface ScheduledPriceChange {
  scheduleId: string;
  /** When the new price takes over (the end of the current period). */
  effectiveAt: string;
}
