/**
 * The Stripe adapter of the PaymentGateway, built on Stripe's official SDK: it pins the API version the payload shapes
 * below are read against (Stripe.API_VERSION) and implements the webhook signature scheme, so neither is
 * re-implemented here. On Workers the SDK talks through fetch and verifies signatures with Web Crypto.
 *
 * Webhook payloads follow the API version of the webhook endpoint that sends them: endpoints must be created with
 * `api_version: Stripe.API_VERSION` (STRIPE_API_VERSION below) for the fields read here to be where they are expected.
 */
import Stripe from "stripe";
import {
  type CheckoutSessionRequest,
  type CheckoutSnapshot,
  type CustomerPage,
  type NormalizedEvent,
  type PaymentGateway,
  PaymentProviderError,
  type ProviderRequestOptions,
  type PriceSummary,
  type SubscriptionSnapshot,
  type SubscriptionState,
  type SubscriptionStatus,
  WebhookPayloadError,
  WebhookSignatureError,
} from "./gateway";

export const STRIPE_API_VERSION = Stripe.API_VERSION;

export interface StripeGatewayOptions {
  secretKey: string;
  webhookSecret: string;
  /** Where Stripe's API is, e.g. "http://127.0.0.1:12111" for a local fake; empty or absent for Stripe itself. */
  apiBase?: string;
  /** How old a signed webhook may be, in seconds; Stripe's default (300) otherwise. */
  webhookToleranceSeconds?: number;
}

const ENTITLING_STATUSES: ReadonlySet<string> = new Set(["active", "trialing"]);
const KNOWN_STATUSES: ReadonlySet<string> = new Set<SubscriptionStatus>([
  "active",
  "trialing",
  "past_due",
  "unpaid",
  "paused",
  "incomplete",
  "incomplete_expired",
  "canceled",
]);
const CHECKOUT_MODES = ["subscription", "payment", "setup"] as const;
const PRICE_INTERVALS = ["day", "week", "month", "year"] as const;
/** Metadata key the identifier travels under on every object a checkout creates. */
const IDENTIFIER_KEY = "identifier";
/** Metadata key of the user data store a checkout was opened for (gateway.ts storeScope): objects of another store are not this one's. */
const SCOPE_KEY = "platform_store";
/** Metadata key of the offer redemption (its token's jti) a checkout was opened for: the webhooks complete it. */
export const OFFER_REDEMPTION_KEY = "platform_offer_redemption";
/** Metadata key marking the subscription schedules the platform created: the only ones a scheduled change rewrites. */
const SCHEDULE_KEY = "platform_schedule";
/**
 * The refusal code (ProviderRefusal.code, status 409) of a subscription controlled by a schedule the platform did not
 * make (the Dashboard's, another integration's): the platform never rewrites it.
 */
export const FOREIGN_SCHEDULE = "platform_foreign_schedule";
/** Metadata key of the top-up attempt a payment intent was created for (its idempotency key). */
const ATTEMPT_KEY = "top_up_attempt";
const PAGE_SIZE = 100;

const cryptoProvider = Stripe.createSubtleCryptoProvider();

export function createStripeGateway(options: StripeGatewayOptions): PaymentGateway {
  const stripe = new Stripe(options.secretKey, {
    httpClient: Stripe.createFetchHttpClient(),
    ...apiLocation(options.apiBase),
  });

  return {
    provider: "stripe",

    async verifyWebhook(rawBody, headers) {
      const signature = headers.get("stripe-signature");
      if (!signature) throw new WebhookSignatureError("missing", "The webhook has no Stripe-Signature header.");
      let event: Stripe.Event;
      try {
        event = await stripe.webhooks.constructEventAsync(
          rawBody,
          signature,
          options.webhookSecret,
          options.webhookToleranceSeconds,
          cryptoProvider,
        );
      } catch (error) {
        if (error instanceof Stripe.errors.StripeSignatureVerificationError) {
          throw new WebhookSignatureError("invalid", error.message);
        }
        throw error;
      }
      try {
        return normalizeEvent(event);
      } catch (error) {
        throw new WebhookPayloadError(`the ${String((event as { type?: unknown } | null)?.type)} event does not have the shape of API version ${STRIPE_API_VERSION}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
      }
    },

    async createCheckoutSession(request: CheckoutSessionRequest, requestOptions = {}) {
      const identifierMetadata = { ...request.metadata, [IDENTIFIER_KEY]: request.identifier, [SCOPE_KEY]: request.scope };
      const session = await asProviderError(() => stripe.checkout.sessions.create({
        mode: request.mode,
        line_items: [
          ...request.priceIds.map((price) => ({ price, quantity: 1 })),
          ...(request.priceData ?? []).map((data) => ({
            price_data: {
              product: data.productId,
              currency: data.currency,
              unit_amount: data.unitAmount,
              ...(data.interval ? { recurring: { interval: data.interval } } : {}),
            },
            quantity: 1,
          })),
        ],
        ...(request.coupon ? { discounts: [{ coupon: request.coupon }] } : {}),
        success_url: request.successUrl,
        cancel_url: request.cancelUrl,
        client_reference_id: request.identifier,
        metadata: identifierMetadata,
        automatic_tax: { enabled: request.automaticTax },
        ...(request.customerId
          ? {
              customer: request.customerId,
              // Automatic tax needs the customer's address; an existing customer gives it at checkout.
              ...(request.automaticTax ? { customer_update: { address: "auto" as const } } : {}),
            }
          : // A one-time purchase has no customer unless asked for: without one it could not be found again.
            request.mode === "payment"
            ? { customer_creation: "always" as const }
            : {}),
        // The identifier rides on the objects the checkout creates, so their own events carry it too.
        ...(request.mode === "subscription"
          ? { subscription_data: { metadata: identifierMetadata, ...(request.trialDays ? { trial_period_days: request.trialDays } : {}) } }
          : { payment_intent_data: { metadata: identifierMetadata } }),
      }, sdkRequestOptions(requestOptions)));
      if (!session.url) throw new PaymentProviderError("failed", `Stripe returned checkout session ${session.id} without a URL.`);
      return { id: session.id, url: session.url };
    },

    async createPortalSession({ customerId, returnUrl }, requestOptions = {}) {
      const session = await asProviderError(() =>
        stripe.billingPortal.sessions.create({ customer: customerId, return_url: returnUrl }, sdkRequestOptions(requestOptions)),
      );
      return { url: session.url };
    },

    async getPrice(priceId) {
      const price = await asProviderError(() => unlessMissing(() => stripe.prices.retrieve(priceId)));
      return price ? priceSummary(price) : null;
    },

    async listActivePrices(productId) {
      const prices = await asProviderError(() =>
        stripe.prices.list({ product: productId, active: true, limit: PAGE_SIZE }).autoPagingToArray({ limit: 10_000 }),
      );
      return prices.map(priceSummary);
    },

    async getSubscription(subscriptionId): Promise<SubscriptionSnapshot | null> {
      const subscription = await unlessMissing(() => stripe.subscriptions.retrieve(subscriptionId));
      if (!subscription) return null;
      return {
        subscription: subscriptionState(subscription),
        customerId: idOf(subscription.customer),
        identifier: identifierIn(subscription.metadata),
        scope: scopeIn(subscription.metadata),
        productIds: subscriptionProducts(subscription),
      };
    },

    async getCheckout(checkoutId): Promise<CheckoutSnapshot | null> {
      const session = await unlessMissing(() => stripe.checkout.sessions.retrieve(checkoutId, { expand: ["line_items"] }));
      if (!session) return null;
      const mode = CHECKOUT_MODES.find((known) => known === session.mode) ?? "setup";
      // Expanded line items stop at the first page; a larger order is listed in full.
      const lineItems =
        session.line_items && !session.line_items.has_more
          ? session.line_items.data
          : await stripe.checkout.sessions.listLineItems(session.id, { limit: PAGE_SIZE }).autoPagingToArray({ limit: 10_000 });
      return {
        checkoutId: session.id,
        mode,
        customerId: optionalIdOf(session.customer),
        identifier: session.client_reference_id || identifierIn(session.metadata),
        scope: scopeIn(session.metadata),
        subscriptionId: optionalIdOf(session.subscription),
        paymentId: optionalIdOf(session.payment_intent),
        paid: session.status === "complete" && session.payment_status !== "unpaid",
        productIds: [...new Set(lineItems.flatMap((item) => (item.price ? [idOf(item.price.product)] : [])))].sort(),
      };
    },

    async customerOfCharge(chargeId) {
      const charge = await unlessMissing(() => stripe.charges.retrieve(chargeId));
      return { customerId: charge ? optionalIdOf(charge.customer) : null, scope: charge ? scopeIn(charge.metadata) : null };
    },

    async listCustomers({ startingAfter, limit }): Promise<CustomerPage> {
      const page = await stripe.customers.list({ limit, ...(startingAfter ? { starting_after: startingAfter } : {}) });
      const customers = page.data.map((customer) => ({
        id: customer.id,
        email: customer.email,
        metadata: { ...customer.metadata },
        scope: scopeIn(customer.metadata),
      }));
      const last = customers.at(-1);
      return { customers, hasMore: page.has_more, nextCursor: page.has_more && last ? last.id : null };
    },

    async findCustomerIds(identifier, scope) {
      // Stripe's search syntax: a quoted value escapes its quotes and backslashes with a backslash. Customers a
      // checkout created carry no metadata of their own: their subscriptions and payments do (createCheckoutSession),
      // with the store they were bought in.
      const quoted = (value: string) => `'${value.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
      const byIdentifier = `metadata['${IDENTIFIER_KEY}']:${quoted(identifier)}`;
      const inStore = `${byIdentifier} AND metadata['${SCOPE_KEY}']:${quoted(scope)}`;
      const [customers, subscriptions, payments] = await Promise.all([
        stripe.customers.search({ query: byIdentifier, limit: 10 }),
        stripe.subscriptions.search({ query: inStore, limit: 10 }),
        stripe.paymentIntents.search({ query: inStore, limit: 10 }),
      ]);
      const ids = new Set([
        // A customer found by its own metadata only when it is tagged for this store: an untagged one may be another
        // organization's on a shared account (the sync, which an operator starts, is where untagged customers link).
        ...customers.data.filter((customer) => scopeIn(customer.metadata) === scope).map((customer) => customer.id),
        ...subscriptions.data.map((subscription) => idOf(subscription.customer)),
        ...payments.data.flatMap((payment) => (payment.customer ? [idOf(payment.customer)] : [])),
      ]);
      return [...ids].sort().slice(0, 10);
    },

    async listInvoices(customerId, limit) {
      const page = await stripe.invoices.list({ customer: customerId, limit });
      return page.data.map((invoice) => ({
        id: invoice.id ?? "",
        status: invoice.status ?? null,
        amountDue: invoice.amount_due,
        amountPaid: invoice.amount_paid,
        currency: invoice.currency,
        created: isoFromSeconds(invoice.created),
        hostedInvoiceUrl: invoice.hosted_invoice_url ?? null,
        subscriptionId: optionalIdOf(invoice.parent?.subscription_details?.subscription),
      }));
    },

    async listSubscriptions({ startingAfter, limit, customerId }) {
      const page = await stripe.subscriptions.list({
        status: "all",
        limit,
        ...(customerId ? { customer: customerId } : {}),
        ...(startingAfter ? { starting_after: startingAfter } : {}),
      });
      const items = page.data.map((subscription) => ({
        subscription: subscriptionState(subscription),
        customerId: idOf(subscription.customer),
        identifier: identifierIn(subscription.metadata),
        scope: scopeIn(subscription.metadata),
        productIds: subscriptionProducts(subscription),
      }));
      const last = page.data.at(-1);
      return { items, hasMore: page.has_more, nextCursor: page.has_more && last ? last.id : null };
    },

    async listPaidCheckouts({ startingAfter, limit, customerId }) {
      const page = await stripe.checkout.sessions.list({
        status: "complete",
        limit,
        ...(customerId ? { customer: customerId } : {}),
        expand: ["data.line_items", "data.payment_intent.latest_charge"],
        ...(startingAfter ? { starting_after: startingAfter } : {}),
      });
      const items = [];
      for (const session of page.data) {
        const paymentId = optionalIdOf(session.payment_intent);
        if (session.mode !== "payment" || session.payment_status !== "paid" || !paymentId) continue;
        // Expanded line items stop at the first page; a larger order is listed in full.
        const lineItems =
          session.line_items && !session.line_items.has_more
            ? session.line_items.data
            : await stripe.checkout.sessions.listLineItems(session.id, { limit: PAGE_SIZE }).autoPagingToArray({ limit: 10_000 });
        items.push({
          checkoutId: session.id,
          mode: "payment" as const,
          customerId: optionalIdOf(session.customer),
          identifier: session.client_reference_id || identifierIn(session.metadata),
          scope: scopeIn(session.metadata),
          subscriptionId: null,
          paymentId,
          paid: true,
          productIds: [...new Set(lineItems.flatMap((item) => (item.price ? [idOf(item.price.product)] : [])))].sort(),
          fullyRefunded: wasFullyRefunded(session),
        });
      }
      const last = page.data.at(-1);
      return { items, hasMore: page.has_more, nextCursor: page.has_more && last ? last.id : null };
    },

    async reportUsage({ eventName, customerId, value, identifier }) {
      // The identifier is also the idempotency key: a retry after a lost answer gets the first answer, not an error.
      await asProviderError(() =>
        stripe.billing.meterEvents.create(
          { event_name: eventName, payload: { stripe_customer_id: customerId, value: String(value) }, identifier },
          { idempotencyKey: `meter-event:${identifier}` },
        ),
      );
    },

    async activeProductIds(customerId) {
      const products = new Set<string>();
      for await (const subscription of stripe.subscriptions.list({ customer: customerId, status: "all", limit: PAGE_SIZE })) {
        if (!ENTITLING_STATUSES.has(subscription.status)) continue;
        for (const item of subscription.items.data) products.add(idOf(item.price.product));
      }
      const purchases = stripe.checkout.sessions.list({
        customer: customerId,
        status: "complete",
        limit: PAGE_SIZE,
        expand: ["data.line_items", "data.payment_intent.latest_charge"],
      });
      for await (const session of purchases) {
        if (session.mode !== "payment" || session.payment_status !== "paid" || wasFullyRefunded(session)) continue;
        // Expanded line items stop at the first page; a larger order is listed in full.
        const lineItems =
          session.line_items && !session.line_items.has_more
            ? session.line_items.data
            : await stripe.checkout.sessions.listLineItems(session.id, { limit: PAGE_SIZE }).autoPagingToArray({ limit: 10_000 });
        for (const item of lineItems) if (item.price) products.add(idOf(item.price.product));
      }
      return [...products].sort();
    },

    async chargeSavedPaymentMethod({ customerId, productId, scope, metadata }, requestOptions = {}) {
      const customer = await asProviderError(() => unlessMissing(() => stripe.customers.retrieve(customerId)));
      if (!customer || customer.deleted) return { outcome: "not_charged", reason: "no_customer" };
      const paymentMethod = optionalIdOf(customer.invoice_settings.default_payment_method);
      if (!paymentMethod) return { outcome: "not_charged", reason: "no_payment_method" };
      // Exactly one price says what the pack costs; two would leave the choice to chance.
      const prices = await asProviderError(() => stripe.prices.list({ product: productId, active: true, type: "one_time", limit: 2 }));
      const price = prices.data.length === 1 ? prices.data[0]! : null;
      if (!price || price.unit_amount === null) return { outcome: "not_charged", reason: "no_price" };
      const outcomeOf = (payment: Stripe.PaymentIntent) =>
        // Off-session, a payment that needs the customer (3-D Secure) or is still processing is not paid now.
        payment.status === "succeeded"
          ? ({ outcome: "succeeded", paymentId: payment.id, amount: payment.amount, currency: payment.currency } as const)
          : ({ outcome: "declined", paymentId: payment.id, code: payment.status, message: `The payment is ${payment.status}` } as const);
      const attempt = requestOptions.idempotencyKey;
      try {
        const payment = await stripe.paymentIntents.create(
          {
            amount: price.unit_amount,
            currency: price.currency,
            customer: customerId,
            payment_method: paymentMethod,
            off_session: true,
            confirm: true,
            metadata: { ...metadata, [SCOPE_KEY]: scope, ...(attempt ? { [ATTEMPT_KEY]: attempt } : {}) },
          },
          sdkRequestOptions(requestOptions),
        );
        return outcomeOf(payment);
      } catch (error) {
        if (error instanceof Stripe.errors.StripeCardError) {
          return { outcome: "declined", paymentId: error.payment_intent?.id ?? null, code: error.code ?? "card_declined", message: error.message };
        }
        // A resumed attempt whose card or price changed since its first try: that try reached Stripe, so its payment
        // (found by the attempt in its metadata) is the answer — never a second charge.
        if (error instanceof Stripe.errors.StripeIdempotencyError && attempt) {
          const earlier = await asProviderError(() => stripe.paymentIntents.list({ customer: customerId, limit: 100 }));
          const payment = earlier.data.find((intent) => intent.metadata?.[ATTEMPT_KEY] === attempt);
          if (payment) return outcomeOf(payment);
          // Its payment is not listed yet (the other try is still in flight): try again later, never charge twice.
          throw new PaymentProviderError("failed", "An earlier try of this top-up is still in progress at Stripe", { cause: error });
        }
        return asProviderError(() => Promise.reject(error));
      }
    },

    // --- Price changes of a subscription (offers' subscription_change and scheduled_change) --------------------------

    async getSubscriptionItems(subscriptionId) {
      const subscription = await asProviderError(() => unlessMissing(() => stripe.subscriptions.retrieve(subscriptionId)));
      if (!subscription) return null;
      return {
        subscription: subscriptionState(subscription),
        customerId: idOf(subscription.customer),
        scope: scopeIn(subscription.metadata),
        items: subscription.items.data.map((item) => ({
          id: item.id,
          priceId: item.price.id,
          productId: idOf(item.price.product),
          quantity: item.quantity ?? 1,
          currency: item.price.currency,
          interval: PRICE_INTERVALS.find((interval) => interval === item.price.recurring?.interval) ?? null,
        })),
        scheduleId: optionalIdOf(subscription.schedule),
        redemption: subscription.metadata?.[OFFER_REDEMPTION_KEY] || null,
      };
    },

    async getSubscriptionSchedule(scheduleId) {
      const schedule = await asProviderError(() => unlessMissing(() => stripe.subscriptionSchedules.retrieve(scheduleId)));
      if (!schedule) return null;
      const current = currentPhaseIndex(schedule);
      const next = schedule.phases[current + 1];
      return {
        id: schedule.id,
        status: schedule.status,
        platformCreated: schedule.metadata?.[SCHEDULE_KEY] === "1",
        redemption: schedule.metadata?.[OFFER_REDEMPTION_KEY] || null,
        nextPhasePriceIds: next ? next.items.map((item) => idOf(item.price)) : null,
      };
    },

    async previewSubscriptionPriceChange({ subscriptionId, itemId, priceId, prorationBehavior, prorationDate }) {
      // The subscription names its customer: Stripe previews that customer's next invoice with the change applied.
      const invoice = await asProviderError(() =>
        stripe.invoices.createPreview({
          subscription: subscriptionId,
          subscription_details: {
            items: [{ id: itemId, price: priceId }],
            proration_behavior: prorationBehavior,
            ...(prorationDate !== undefined ? { proration_date: prorationDate } : {}),
          },
        }),
      );
      return {
        amountDue: invoice.amount_due,
        currency: invoice.currency,
        lines: invoice.lines.data.map((line) => ({ description: line.description ?? null, amount: line.amount })),
      };
    },

    async changeSubscriptionPrice({ subscriptionId, itemId, priceId, prorationBehavior, prorationDate, metadata }, requestOptions = {}) {
      const subscription = await asProviderError(() =>
        stripe.subscriptions.update(
          subscriptionId,
          {
            items: [{ id: itemId, price: priceId }],
            proration_behavior: prorationBehavior,
            ...(prorationDate !== undefined ? { proration_date: prorationDate } : {}),
            // A prorated invoice whose payment fails leaves the subscription on its old price (a pending update that
            // expires) instead of moving it to a price it did not pay for.
            payment_behavior: "pending_if_incomplete",
            // Stripe merges metadata keys: the identifier and store the checkout set stay.
            metadata,
          },
          sdkRequestOptions(requestOptions),
        ),
      );
      return subscriptionState(subscription);
    },

    async scheduleSubscriptionPriceChange({ subscriptionId, itemId, priceId, metadata }, requestOptions = {}) {
      const keyed = (step: string): Stripe.RequestOptions =>
        requestOptions.idempotencyKey ? { idempotencyKey: `${requestOptions.idempotencyKey}:${step}` } : {};
      return asProviderError(async () => {
        const subscription = await stripe.subscriptions.retrieve(subscriptionId);
        const periodEnd = Math.min(...subscription.items.data.map((item) => item.current_period_end));
        // A subscription already on a schedule an earlier scheduled change made keeps it: its phases are replaced. A
        // schedule someone else made (the Dashboard, another integration) is theirs: never rewritten.
        const existing = optionalIdOf(subscription.schedule);
        // Stripe takes no other parameter with `from_subscription`: the schedule is marked by the phases update below.
        const createSchedule = () => stripe.subscriptionSchedules.create({ from_subscription: subscriptionId }, keyed("schedule"));
        const scheduleId = existing ?? (await createSchedule()).id;
        const schedule = await stripe.subscriptionSchedules.retrieve(scheduleId);
        const unmarked = existing !== null && schedule.metadata?.[SCHEDULE_KEY] !== "1";
        if (unmarked && !(requestOptions.idempotencyKey && (await madeByThisChange(existing, createSchedule)))) {
          throw new PaymentProviderError("failed", `Subscription ${subscriptionId} is controlled by subscription schedule ${scheduleId}, which the platform did not create`, {
            cause: null,
            refusal: { status: 409, code: FOREIGN_SCHEDULE, param: null },
          });
        }
        const phase = schedule.phases[currentPhaseIndex(schedule)];
        const currentStart = schedule.current_phase?.start_date ?? phase?.start_date ?? Math.min(...subscription.items.data.map((item) => item.current_period_start));
        const itemsNow = subscription.items.data.map((item) => ({ price: item.price.id, quantity: item.quantity ?? 1 }));
        const itemsNext = subscription.items.data.map((item) => ({ price: item.id === itemId ? priceId : item.price.id, quantity: item.quantity ?? 1 }));
        // Rewriting the current phase must not change it: its trial, discounts and tax rates stay (read from the phase,
        // else from the subscription); the discounts and tax rates carry on into the next phase.
        const trialEnd = phase?.trial_end ?? subscription.trial_end ?? null;
        const discounts = phaseDiscounts(phase?.discounts ?? [], subscription.discounts ?? []);
        const taxRates = (phase?.default_tax_rates?.length ? phase.default_tax_rates : (subscription.default_tax_rates ?? [])).map((rate) => idOf(rate));
        const kept = { ...(discounts.length > 0 ? { discounts } : {}), ...(taxRates.length > 0 ? { default_tax_rates: taxRates } : {}) };
        await stripe.subscriptionSchedules.update(
          scheduleId,
          {
            end_behavior: "release",
            metadata: { ...metadata, [SCHEDULE_KEY]: "1" },
            phases: [
              { start_date: currentStart, end_date: periodEnd, items: itemsNow, proration_behavior: "none", ...(trialEnd && trialEnd > currentStart ? { trial_end: trialEnd } : {}), ...kept },
              // A phase's metadata is set on the subscription when the phase starts: the store's tags stay on it.
              { items: itemsNext, proration_behavior: "none", metadata: { ...subscription.metadata, ...metadata }, ...kept },
            ],
          },
          keyed("phases"),
        );
        return { scheduleId, effectiveAt: isoFromSeconds(periodEnd) };
      });
    },
  };
}

/**
 * Whether an unmarked schedule is the one this change's earlier try created (its phases update, which marks it, never
 * went through): the create sent again under the same idempotency key is answered by Stripe with the schedule it made
 * then. Any other answer — another schedule, a refusal because the subscription already has one — is not ours.
 */
async function madeByThisChange(scheduleId: string, createSchedule: () => Promise<Stripe.SubscriptionSchedule>): Promise<boolean> {
  try {
    return (await createSchedule()).id === scheduleId;
  } catch (error) {
    if (error instanceof Stripe.errors.StripeInvalidRequestError || error instanceof Stripe.errors.StripeIdempotencyError) return false;
    throw error;
  }
}

/** The index of the schedule's current phase (the first one when none is current yet). */
function currentPhaseIndex(schedule: Stripe.SubscriptionSchedule): number {
  const start = schedule.current_phase?.start_date;
  const index = start === undefined ? -1 : schedule.phases.findIndex((phase) => phase.start_date === start);
  return Math.max(0, index);
}

/** A phase's discounts as a phase update takes them back (each by its coupon, discount or promotion code). */
function phaseDiscounts(
  phase: Stripe.SubscriptionSchedule.Phase.Discount[],
  subscription: (string | Stripe.Discount)[],
): Stripe.SubscriptionScheduleUpdateParams.Phase.Discount[] {
  if (phase.length > 0) {
    return phase.map((discount) =>
      discount.discount ? { discount: idOf(discount.discount) } : discount.promotion_code ? { promotion_code: idOf(discount.promotion_code) } : { coupon: idOf(discount.coupon!) },
    );
  }
  return subscription.map((discount) => ({ discount: idOf(discount) }));
}

/** The object, or null when Stripe answers that it has no such object (404 resource_missing). */
async function unlessMissing<T>(retrieve: () => Promise<T>): Promise<T | null> {
  try {
    return await retrieve();
  } catch (error) {
    if (error instanceof Stripe.errors.StripeInvalidRequestError && error.statusCode === 404) return null;
    throw error;
  }
}

/** Stripe's failures as the gateway's PaymentProviderError, API keys masked in the message (Stripe masks them too). */
async function asProviderError<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof PaymentProviderError) throw error;
    const message = (error instanceof Error ? error.message : String(error)).replace(/\b(sk|rk|pk)_(test|live)_[A-Za-z0-9]+/g, "$1_$2_…");
    // Another request with the same idempotency key still running is a 409 (idempotency_key_in_use): retry shortly.
    const inProgress = error instanceof Stripe.errors.StripeError && (error.statusCode === 409 || error.code === "idempotency_key_in_use");
    const reason = inProgress ? "in_progress" : error instanceof Stripe.errors.StripeIdempotencyError ? "idempotency_conflict" : "failed";
    const refusal =
      error instanceof Stripe.errors.StripeInvalidRequestError && !inProgress
        ? { status: error.statusCode ?? 400, code: error.code ?? null, param: error.param ?? null }
        : undefined;
    throw new PaymentProviderError(reason, message, { cause: error, ...(refusal ? { refusal } : {}) });
  }
}

const sdkRequestOptions = ({ idempotencyKey }: ProviderRequestOptions): Stripe.RequestOptions => (idempotencyKey ? { idempotencyKey } : {});

function priceSummary(price: Stripe.Price): PriceSummary {
  // `recurring` is set exactly on recurring prices; `type` is typed open-ended for types Stripe may add.
  return {
    id: price.id,
    productId: idOf(price.product),
    type: price.recurring ? "recurring" : "one_time",
    active: price.active,
    unitAmount: price.unit_amount,
    currency: price.currency,
    interval: PRICE_INTERVALS.find((interval) => interval === price.recurring?.interval) ?? null,
  };
}

/** A base URL → the SDK's host/port/protocol options; nothing (Stripe's own API) when empty. */
function apiLocation(apiBase: string | undefined): Pick<Stripe.StripeConfig, "host" | "port" | "protocol"> {
  if (!apiBase) return {};
  const url = new URL(apiBase);
  const protocol = url.protocol === "http:" ? "http" : "https";
  return { host: url.hostname, port: url.port || (protocol === "http" ? "80" : "443"), protocol };
}

function idOf(reference: string | { id: string }): string {
  return typeof reference === "string" ? reference : reference.id;
}

function optionalIdOf(reference: string | { id: string } | null | undefined): string | null {
  return reference ? idOf(reference) : null;
}

function isoFromSeconds(seconds: number): string {
  return new Date(seconds * 1000).toISOString();
}

function identifierIn(metadata: Record<string, string> | null | undefined): string | null {
  return metadata?.[IDENTIFIER_KEY] || null;
}

function scopeIn(metadata: Record<string, string> | null | undefined): string | null {
  return metadata?.[SCOPE_KEY] || null;
}

/** A purchase whose charge the listing expanded and shows fully refunded; unexpanded ones count as paid. */
function wasFullyRefunded(session: Stripe.Checkout.Session): boolean {
  const paymentIntent = session.payment_intent;
  if (!paymentIntent || typeof paymentIntent === "string") return false;
  const charge = paymentIntent.latest_charge;
  return !!charge && typeof charge !== "string" && charge.refunded;
}

function subscriptionState(subscription: Stripe.Subscription): SubscriptionState {
  // Since API version 2025-03-31 each item carries its own period; the subscription's is the earliest end.
  const periodEnds = subscription.items.data.map((item) => item.current_period_end).filter((end) => end > 0);
  return {
    id: subscription.id,
    status: KNOWN_STATUSES.has(subscription.status) ? (subscription.status as SubscriptionStatus) : "unknown",
    currentPeriodEnd: periodEnds.length > 0 ? isoFromSeconds(Math.min(...periodEnds)) : null,
    cancelAtPeriodEnd: subscription.cancel_at_period_end,
  };
}

function subscriptionProducts(subscription: Stripe.Subscription): string[] {
  return [...new Set(subscription.items.data.map((item) => idOf(item.price.product)))].sort();
}

function invoiceProducts(invoice: Stripe.Invoice): string[] {
  const products = invoice.lines.data.flatMap((line) => {
    const product = line.pricing?.price_details?.product;
    return product ? [product] : [];
  });
  return [...new Set(products)].sort();
}

/** Stripe's event → the platform's; the types the platform does not act on give nothing. */
export function normalizeEvent(event: Stripe.Event): NormalizedEvent[] {
  const base = { id: event.id, provider: "stripe" as const, occurredAt: isoFromSeconds(event.created), livemode: event.livemode === true, rawType: event.type };
  switch (event.type) {
    case "customer.subscription.created":
    case "customer.subscription.updated":
    case "customer.subscription.deleted": {
      const subscription = event.data.object;
      const state = subscriptionState(subscription);
      const previousStatus = event.type === "customer.subscription.updated" ? event.data.previous_attributes?.status : undefined;
      const becameEntitled =
        ENTITLING_STATUSES.has(state.status) &&
        (event.type === "customer.subscription.created" ||
          (previousStatus !== undefined && !ENTITLING_STATUSES.has(previousStatus)));
      const type =
        event.type === "customer.subscription.deleted"
          ? "subscription.canceled"
          : becameEntitled
            ? "subscription.activated"
            : "subscription.updated";
      return [
        {
          ...base,
          type,
          customerId: idOf(subscription.customer),
          identifier: identifierIn(subscription.metadata),
          scope: scopeIn(subscription.metadata),
          productIds: subscriptionProducts(subscription),
          subscription: state,
        },
      ];
    }
    // A delayed payment method (a bank debit) completes the checkout unpaid, and settles later: the same checkout,
    // now paid.
    case "checkout.session.async_payment_succeeded":
    case "checkout.session.completed": {
      const session = event.data.object;
      const mode = CHECKOUT_MODES.find((known) => known === session.mode);
      if (!mode) return [];
      const productIds = (session.line_items?.data ?? []).flatMap((item) => (item.price ? [idOf(item.price.product)] : []));
      return [
        {
          ...base,
          type: "checkout.completed",
          customerId: optionalIdOf(session.customer),
          identifier: session.client_reference_id || identifierIn(session.metadata),
          scope: scopeIn(session.metadata),
          productIds: [...new Set(productIds)].sort(),
          checkoutId: session.id,
          mode,
          paid: session.payment_status !== "unpaid",
          subscriptionId: optionalIdOf(session.subscription),
          amount: session.amount_total,
          currency: session.currency,
          ...(session.metadata?.[OFFER_REDEMPTION_KEY] ? { offerRedemption: session.metadata[OFFER_REDEMPTION_KEY] } : {}),
        },
      ];
    }
    case "invoice.paid":
    case "invoice.payment_failed": {
      const invoice = event.data.object;
      const subscriptionDetails = invoice.parent?.subscription_details ?? null;
      return [
        {
          ...base,
          type: event.type === "invoice.paid" ? "invoice.paid" : "invoice.payment_failed",
          customerId: optionalIdOf(invoice.customer),
          identifier: identifierIn(subscriptionDetails?.metadata) ?? identifierIn(invoice.metadata),
          scope: scopeIn(subscriptionDetails?.metadata) ?? scopeIn(invoice.metadata),
          productIds: invoiceProducts(invoice),
          invoiceId: invoice.id,
          subscriptionId: optionalIdOf(subscriptionDetails?.subscription),
          amount: event.type === "invoice.paid" ? invoice.amount_paid : invoice.amount_due,
          currency: invoice.currency,
        },
      ];
    }
    case "charge.refunded": {
      const charge = event.data.object;
      return [
        {
          ...base,
          type: "payment.refunded",
          customerId: optionalIdOf(charge.customer),
          identifier: identifierIn(charge.metadata),
          scope: scopeIn(charge.metadata),
          productIds: [],
          paymentId: optionalIdOf(charge.payment_intent) ?? charge.id,
          chargeId: charge.id,
          amount: charge.amount_refunded,
          currency: charge.currency,
          fullyRefunded: charge.refunded,
        },
      ];
    }
    case "charge.dispute.created": {
      const dispute = event.data.object;
      const charge = typeof dispute.charge === "string" ? null : dispute.charge;
      return [
        {
          ...base,
          type: "dispute.opened",
          customerId: optionalIdOf(charge?.customer),
          identifier: identifierIn(charge?.metadata) ?? identifierIn(dispute.metadata),
          scope: scopeIn(charge?.metadata) ?? scopeIn(dispute.metadata),
          productIds: [],
          disputeId: dispute.id,
          paymentId: optionalIdOf(dispute.payment_intent) ?? idOf(dispute.charge),
          chargeId: idOf(dispute.charge),
          amount: dispute.amount,
          currency: dispute.currency,
        },
      ];
    }
    default:
      return [];
  }
}
