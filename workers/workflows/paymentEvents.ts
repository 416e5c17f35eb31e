/**
 * The payments queue's consumer: applies each verified webhook event to the store's payment state
 * (payments/apply.ts: exactly once, newest state wins), then dispatches the lifecycle transitions it made — each is
 * recorded as a `payment` event, and every identity whose payments changed gets a `plans.changed` trigger — and finally
 * marks them dispatched. A message that fails (Stripe or D1 unavailable) is retried with a growing delay; a retry of
 * an applied event changes nothing and dispatches only what the first attempt left undispatched, so triggers are
 * delivered at least once (their payload names the transitions, for actions that must not act twice).
 *
 * The same queue carries the steps of customer syncs (payments/sync.ts, `kind: "sync"`): one page each, whose
 * transitions are dispatched the same way before the next step is enqueued.
 */
import { createMeterClient, meterDeadlineOf } from "../../durable-objects/meter/client";
import type { CreditResult, GrantCreditsInput } from "../../durable-objects/meter/MeterObject";
import type { PreparedSnapshot } from "../engine/prepare";
import { applyPaymentEvent, markTransitionsDispatched, type PaymentEventMessage, type PaymentTransition, purchasePartition } from "../payments/apply";
import { type CheckoutCompletedEvent, storeScope } from "../payments/gateway";
import { completeRedemption, getRedemption, redemptionEvent, redemptionWebhook } from "../offers/redemptions";
import type { PaymentProvider } from "../payments/gateway";
import { createStripeGateway } from "../payments/stripe";
import type { PaymentGateway } from "../payments/gateway";
import type { LifecyclePolicy } from "../payments/lifecycle";
import { type CustomerLookupMessage, lookUpCustomer, undispatchedLookupTransitions } from "../payments/lookup";
import { reportUsage, type UsageReportMessage, usageStoreOf } from "../payments/usage";
import { type CustomerSyncMessage, failCustomerSync, runCustomerSyncStep } from "../payments/sync";
import { attemptCreditTopUp, type CreditTopUpMessage, finishCreditTopUp, topUpSettingOf } from "../payments/topUp";
import { anonymousStore, type CustomerRecord, forgetCachedCustomers, getCustomerRecord, identifiersOfPaymentCustomers, productsOf } from "../services/customers";
import { derivedEventId, insertEvents, type EventInput } from "../services/events";
import { stripeCredentials } from "../services/paymentConnections";
import { preparedSnapshotFor } from "../services/snapshots";
import { getEnvironment, storeOf, type Environment } from "../services/tenancy";
import { retryDelaySeconds } from "./actions";
import { enqueueTriggers, listensTo } from "./triggers";
import { derivedWebhookEventId } from "../webhooks/decisionEvents";
import { activeSubscriptions, publish as publishWebhooks, publishWebhookEventsOrThrow, subscribesTo, wantsIdentity, webhookEventWritten } from "../webhooks/publish";

export const PAYMENT_QUEUE = "edge-monetization-payments";
/** `max_retries` of the payments queue's consumer (wrangler.toml): with the growing delay, about ten minutes. */
export const PAYMENT_MAX_RETRIES = 12;

/**
 * What the payments queue carries: verified webhook events, the steps of customer syncs (`kind: "sync"`) and
 * real-time customer lookups (`kind: "lookup"`) and automatic credit top-ups (`kind: "topup"`).
 */
export type PaymentQueueMessage = PaymentEventMessage | CustomerSyncMessage | CustomerLookupMessage | CreditTopUpMessage | UsageReportMessage;

const isSyncStep = (body: PaymentQueueMessage): body is CustomerSyncMessage => "kind" in body && body.kind === "sync";
const isLookup = (body: PaymentQueueMessage): body is CustomerLookupMessage => "kind" in body && body.kind === "lookup";
/** A lookup is a convenience (the next one, or a sync, does the same): tried this many times, then dropped. */
const LOOKUP_ATTEMPTS = 3;
/** Overage units for usage-based billing (`kind: "usage"`, payments/usage.ts). */
const isUsage = (body: PaymentQueueMessage): body is UsageReportMessage => "kind" in body && body.kind === "usage";
/** A usage report whose provider or D1 failed is retried this many times, then dropped with a warning. */
const USAGE_ATTEMPTS = 3;
const isTopUp = (body: PaymentQueueMessage): body is CreditTopUpMessage => "kind" in body && body.kind === "topup";
/**
 * A top-up whose provider or D1 failed is retried this many times (about a minute and a half, well within the
 * interval that keeps its pending attempt from being replaced), then dropped: the next deduction asks again.
 */
const TOP_UP_ATTEMPTS = 5;

/**
 * A message whose work may fail for a while (the provider, D1): retried with a growing delay up to `attempts`
 * deliveries, then acked and logged as dropped (a warning, or an error when `dropped` says so).
 */
async function bestEffort(
  message: Message<{ environmentId: string }>,
  attempts: number,
  event: string,
  fields: Record<string, unknown>,
  work: () => Promise<void>,
  dropped: "warn" | "error" = "warn",
): Promise<void> {
  try {
    await work();
    message.ack();
  } catch (error) {
    const giveUp = message.attempts >= attempts;
    const line = JSON.stringify({ event: `${event}_${giveUp ? "dropped" : "retried"}`, environmentId: message.body.environmentId, ...fields, attempts: message.attempts, error: String(error) });
    if (giveUp && dropped === "error") console.error(line);
    else console.warn(line);
    if (giveUp) message.ack();
    else message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
  }
}

export async function handlePaymentBatch(batch: MessageBatch<PaymentQueueMessage>, env: Env): Promise<void> {
  for (const message of batch.messages) {
    const { body } = message;
    if (isSyncStep(body)) {
      await handleSyncStep(env, message as Message<CustomerSyncMessage>);
      continue;
    }
    if (isTopUp(body)) {
      // A dropped top-up is an error (money may be involved); the next deduction asks again.
      await bestEffort(message, TOP_UP_ATTEMPTS, "credit_top_up", { creditId: body.creditId }, () => processTopUp(env, body), "error");
      continue;
    }
    if (isUsage(body)) {
      await bestEffort(message, USAGE_ATTEMPTS, "usage_report", { eventId: body.eventId, counterId: body.counterId, value: body.value }, () => processUsage(env, body));
      continue;
    }
    if (isLookup(body)) {
      await bestEffort(message, LOOKUP_ATTEMPTS, "customer_lookup", {}, () => processLookup(env, body));
      continue;
    }
    try {
      await processPaymentEvent(env, body);
      message.ack();
    } catch (error) {
      const lastAttempt = message.attempts > PAYMENT_MAX_RETRIES;
      const line = JSON.stringify({
        event: lastAttempt ? "payment_event_dropped" : "payment_event_retried",
        environmentId: body.environmentId,
        eventId: body.event.id,
        type: body.event.rawType,
        attempts: message.attempts,
        error: error instanceof Error ? error.message : String(error),
      });
      // Dropped after the last retry: the provider's state is still right, and a customer sync restores it.
      if (lastAttempt) console.error(line);
      else console.warn(line);
      message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
    }
  }
}

/** The provider customers whose state changed: those named, and those of the transitions. */
function customerIdsOf(known: readonly string[], transitions: readonly PaymentTransition[]): string[] {
  return [...new Set([...known, ...transitions.flatMap((transition) => (transition.customerId ? [transition.customerId] : []))])];
}

/** The message's environment with its provider connection, or why there is none to work with. */
type Connected =
  | { ok: true; environment: Environment; store: string; gateway: PaymentGateway; policy: LifecyclePolicy }
  | { ok: false; reason: "no_environment" | "not_connected" };

/**
 * A message's environment — still there and still the organization's that sent it — and its provider connection
 * (either may be gone since the message was queued).
 */
async function connectedEnvironment(env: Env, message: { organizationId: string; environmentId: string }): Promise<Connected> {
  const environment = await getEnvironment(env.DB, message.environmentId);
  if (!environment || environment.organizationId !== message.organizationId) return { ok: false, reason: "no_environment" };
  const credentials = await stripeCredentials(env.DB, env.SECRETS_KEY, environment.id);
  if (!credentials) return { ok: false, reason: "not_connected" };
  const gateway = createStripeGateway({ secretKey: credentials.secretKey, webhookSecret: credentials.webhookSecret, apiBase: env.STRIPE_API_BASE });
  return { ok: true, environment, store: storeOf(environment), gateway, policy: credentials.policy };
}

/** Applies one event and dispatches its transitions. Throws when a dependency failed (the message is retried). */
export async function processPaymentEvent(env: Env, message: PaymentEventMessage): Promise<void> {
  const connected = await connectedEnvironment(env, message);
  // The environment or its connection went away after the webhook was accepted: nothing to apply it to.
  if (!connected.ok) return;
  const { environment, gateway, policy } = connected;
  const buyer = await partitionOfEvent(env.DB, gateway, environment.organizationId, connected.store, message.event);
  const { store } = buyer;
  const applied = await applyPaymentEvent(env.DB, gateway, policy, { ...message, store });

  const identifiers = await identifiersOfPaymentCustomers(env.DB, environment.organizationId, store, customerIdsOf(applied.customerIds, applied.transitions));
  forgetCachedCustomers(environment.organizationId, store, [...identifiers.values()]);
  const source = { provider: message.event.provider, eventId: message.event.id, eventType: message.event.rawType };
  await dispatchTransitions(env, environment, source, applied.transitions, identifiers, buyer);
  // After the payment state: the redemption is completed once what it bought is granted.
  if (message.event.type === "checkout.completed") await completeOfferCheckout(env, environment, message.event, buyer);
}

/**
 * Whose payment state an event changes: the store's, or its anonymous partition's (an anonymous visitor's offer
 * checkout). A tagged event says so by its scope. An untagged one — an invoice's charge carries no metadata, so the
 * refund or dispute of an anonymous subscription's renewal names no partition — goes where its provider customer is
 * linked: a dispute whose payload does not name the customer asks the charge (whose own tag, for a one-time purchase's
 * charge, then decides). A refund's event is its charge: asking again would add nothing.
 */
async function partitionOfEvent(
  db: D1Database,
  gateway: PaymentGateway,
  organizationId: string,
  store: string,
  event: PaymentEventMessage["event"],
): Promise<{ store: string; authenticated: boolean }> {
  if (event.scope !== null) return purchasePartition(organizationId, store, event.scope);
  let customerId = event.customerId;
  if (customerId === null && event.type === "dispute.opened") {
    const charge = await gateway.customerOfCharge(event.chargeId);
    if (charge.scope !== null) return purchasePartition(organizationId, store, charge.scope);
    customerId = charge.customerId;
  }
  const anonymous = anonymousStore(store);
  const linkedAnonymously = customerId !== null && (await identifiersOfPaymentCustomers(db, organizationId, anonymous, [customerId])).size > 0;
  return purchasePartition(organizationId, store, linkedAnonymously ? storeScope(organizationId, anonymous) : null);
}

/** Looks the identity up at the provider (payments/lookup.ts) and dispatches what it found, as for a webhook event. */
export async function processLookup(env: Env, message: CustomerLookupMessage): Promise<void> {
  const connected = await connectedEnvironment(env, message);
  if (!connected.ok) return;
  const { environment, store, gateway, policy } = connected;
  const target = { organizationId: environment.organizationId, environmentId: environment.id, store };
  const found = await lookUpCustomer(env.DB, gateway, policy, target, message.identifier);
  if (found.asked) forgetCachedCustomers(environment.organizationId, store, [message.identifier]);
  // A retry after a dispatch that failed finds the identity linked (nothing asked): what that attempt wrote still goes out.
  const transitions = found.asked ? found.transitions : await undispatchedLookupTransitions(env.DB, environment.id, message.identifier);
  const identifiers = new Map(customerIdsOf(found.customerIds, transitions).map((customerId) => [customerId, message.identifier]));
  await dispatchTransitions(env, environment, { provider: gateway.provider, eventId: null, eventType: null }, transitions, identifiers);
}

/**
 * An automatic credit top-up (payments/topUp.ts): charges the saved payment method when the balance is still below the
 * deployed version's threshold, then grants the pack as for a bought one; a declined or impossible charge is recorded
 * as a `payment` event (outcome `top_up_failed`) and grants nothing. Throws when a dependency failed (retried).
 */
export async function processTopUp(env: Env, message: CreditTopUpMessage): Promise<void> {
  const connected = await connectedEnvironment(env, message);
  if (!connected.ok) return;
  const { environment, store, gateway } = connected;
  const prepared = environment.deployedVersionId ? await deployedSnapshot(env.DB, environment.deployedVersionId) : null;
  const setting = prepared ? topUpSettingOf(prepared, store, message.creditId) : null;
  const target = { organizationId: environment.organizationId, environmentId: environment.id, store, identifier: message.identifier, creditId: message.creditId };
  const meter = createMeterClient(env.METER, meterDeadlineOf(env.METER_DEADLINE_MS));
  const userObject = meter.stub({ organizationId: environment.organizationId, store, authenticated: true, identifier: message.identifier });
  const attempt = await attemptCreditTopUp(env.DB, gateway, target, setting, () => userObject.getBalance(message.creditId));
  if (attempt.status === "skipped") return;
  if (attempt.status === "failed") {
    await insertEvents(env.DB, [
      {
        // Derived from the attempt, so a redelivered message writes no second record.
        id: await derivedEventId(`${environment.id}:top_up:${attempt.attemptId}`),
        organizationId: environment.organizationId,
        environmentId: environment.id,
        kind: "payment",
        identifier: message.identifier,
        outcome: "top_up_failed",
        record: {
          provider: gateway.provider,
          subject: "top_up",
          topUpId: attempt.attemptId,
          creditId: message.creditId,
          productIds: [attempt.productId],
          reason: attempt.reason,
          paymentId: attempt.paymentId,
          ...(attempt.message ? { message: attempt.message } : {}),
        },
      },
    ]);
    await finishCreditTopUp(env.DB, target, attempt.attemptId, { state: "failed", reason: attempt.reason, paymentId: attempt.paymentId });
    return;
  }
  forgetCachedCustomers(environment.organizationId, store, [message.identifier]);
  const identifiers = new Map([[attempt.customerId, message.identifier]]);
  await dispatchTransitions(env, environment, { provider: gateway.provider, eventId: null, eventType: null, topUpId: attempt.attemptId }, attempt.transitions, identifiers);
  await finishCreditTopUp(env.DB, target, attempt.attemptId, { state: "succeeded", paymentId: attempt.paymentId });
}

/**
 * Reports overage units (or a pay-per-crawl charge) to the identity's provider customer (payments/usage.ts); nothing
 * when not connected, nor for a message naming a store partition that is not the environment's.
 */
export async function processUsage(env: Env, message: UsageReportMessage): Promise<void> {
  const connected = await connectedEnvironment(env, message);
  if (!connected.ok) return;
  const { environment, gateway } = connected;
  const store = usageStoreOf(connected.store, message);
  if (store === null) {
    console.warn(JSON.stringify({ event: "usage_report_foreign_store", environmentId: environment.id, eventId: message.eventId, store: message.store }));
    return;
  }
  await reportUsage(env.DB, gateway, { organizationId: environment.organizationId, environmentId: environment.id, store }, message);
}

/**
 * A customer sync step (payments/sync.ts): retried like an event; after the last retry the sync is marked failed with
 * the error, for the admin API to show (a new sync starts over).
 */
async function handleSyncStep(env: Env, message: Message<CustomerSyncMessage>): Promise<void> {
  try {
    await processSyncStep(env, message.body, message.attempts > 1);
    message.ack();
  } catch (error) {
    const lastAttempt = message.attempts > PAYMENT_MAX_RETRIES;
    const reason = error instanceof Error ? error.message : String(error);
    const line = JSON.stringify({
      event: lastAttempt ? "customer_sync_failed" : "customer_sync_step_retried",
      environmentId: message.body.environmentId,
      syncId: message.body.syncId,
      step: message.body.step,
      attempts: message.attempts,
      error: reason,
    });
    if (lastAttempt) {
      console.error(line);
      await failCustomerSync(env.DB, message.body, reason).catch((failure: unknown) => console.error(JSON.stringify({ event: "customer_sync_not_marked_failed", syncId: message.body.syncId, error: String(failure) })));
      message.ack();
      return;
    }
    console.warn(line);
    message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
  }
}

/**
 * Runs one page of a sync, dispatches the transitions it wrote (as for a webhook event), then enqueues the next step.
 * Throws when a dependency failed: the step is retried, and a retry after its batch committed only redoes what followed.
 */
export async function processSyncStep(env: Env, message: CustomerSyncMessage, redelivered: boolean): Promise<void> {
  const connected = await connectedEnvironment(env, message);
  if (!connected.ok) {
    if (connected.reason === "not_connected") await failCustomerSync(env.DB, message, "The environment was disconnected from Stripe during the sync");
    return;
  }
  const { environment, store, gateway, policy } = connected;
  const target = { organizationId: environment.organizationId, environmentId: environment.id, store };
  const step = await runCustomerSyncStep(env.DB, gateway, policy, target, message, { redelivered });

  const customerIds = customerIdsOf(step.customerIds, step.transitions);
  if (customerIds.length > 0) {
    const identifiers = await identifiersOfPaymentCustomers(env.DB, environment.organizationId, store, customerIds);
    forgetCachedCustomers(environment.organizationId, store, [...identifiers.values()]);
    await dispatchTransitions(env, environment, { provider: gateway.provider, eventId: null, eventType: null, syncId: message.syncId }, step.transitions, identifiers);
  }
  // Last: a failure before this retries the step, which then finds its page committed and only redoes what follows.
  if (step.next) await env.PAYMENTS.send(step.next);
}

/**
 * Whose payments the transitions are: signed-in identities of the store, or anonymous visitors (their partition of
 * the store, apply.ts purchasePartition) — their meter objects and triggers are those of anonymous identities.
 */
interface Buyers {
  /** The partition their payment state is in; the environment's store when absent. */
  store?: string;
  authenticated: boolean;
}
const SIGNED_IN: Buyers = { authenticated: true };

/**
 * A paid checkout of an offer (`platform_offer_redemption` in its metadata) completes its redemption: once however
 * often the webhook arrives (offers/redemptions.ts), with its `completed` event and outbound webhook. An unpaid one
 * (a delayed payment method) completes when it settles (the same checkout, paid).
 */
async function completeOfferCheckout(env: Env, environment: Environment, event: CheckoutCompletedEvent, buyer: { store: string; authenticated: boolean }): Promise<void> {
  if (!event.offerRedemption || !event.paid) return;
  // Only the redemption's own checkout completes it. Its id (the token's jti) is readable in the token, and whoever
  // shares the Stripe account could open a checkout carrying it: the checkout must be the one the redemption opened
  // (when its answer is stored already), for the identity and the partition it was opened for.
  const opened = await getRedemption(env.DB, environment.id, event.offerRedemption);
  if (!opened) return;
  const openedCheckout = (opened.result?.checkout as { id?: unknown } | undefined)?.id;
  const sameBuyer = opened.identifier === event.identifier && opened.anonymous === !buyer.authenticated && event.scope !== null;
  if (!sameBuyer || (openedCheckout !== undefined && openedCheckout !== event.checkoutId)) {
    console.warn(JSON.stringify({ event: "offer_checkout_not_its_redemption", environmentId: environment.id, redemption: opened.id, checkoutId: event.checkoutId }));
    return;
  }
  const details = { checkoutId: event.checkoutId, subscriptionId: event.subscriptionId };
  const { event: record, redemption } = await completeRedemption(env.DB, environment.id, event.offerRedemption, details);
  // Published again when this message is retried (the redemption is completed by then): a failed publication throws,
  // so the message is retried, and the stable event id writes each delivery once.
  const completedEvent = record ?? (redemption?.state === "completed" ? await redemptionEvent(redemption, "completed", details) : null);
  if (completedEvent) await publishWebhookEventsOrThrow(env, environment, [redemptionWebhook({ ...completedEvent, id: completedEvent.id! })]);
}

/** What made the transitions: a provider's webhook event, or a customer sync (no event). */
interface TransitionSource {
  provider: PaymentProvider;
  eventId: string | null;
  eventType: string | null;
  syncId?: string;
  /** The automatic top-up (payments/topUp.ts) whose charge made the purchase. */
  topUpId?: string;
}

/**
 * Records and announces transitions (announceTransitions), then marks them dispatched: a failure in between leaves
 * them undispatched, and the retry that finds them sends them again (at least once).
 */
async function dispatchTransitions(
  env: Env,
  environment: Environment,
  source: TransitionSource,
  transitions: PaymentTransition[],
  identifiers: Map<string, string>,
  buyer: Buyers = SIGNED_IN,
): Promise<void> {
  if (transitions.length === 0) return;
  await announceTransitions(env, environment, source, transitions, identifiers, buyer);
  await markTransitionsDispatched(env.DB, transitions.map((transition) => transition.id));
}

/** Each transition as a `payment` event, with the credits its pack grants; `plans.changed` to the identities concerned. */
async function announceTransitions(
  env: Env,
  environment: Environment,
  source: TransitionSource,
  transitions: PaymentTransition[],
  identifiers: Map<string, string>,
  buyer: Buyers = SIGNED_IN,
): Promise<void> {
  const store = storeOf(environment);
  const prepared = environment.deployedVersionId ? await deployedSnapshot(env.DB, environment.deployedVersionId) : null;
  const meter = createMeterClient(env.METER, meterDeadlineOf(env.METER_DEADLINE_MS));
  const identifierOf = (transition: PaymentTransition) => (transition.customerId ? identifiers.get(transition.customerId) : undefined);
  const userObject = (identifier: string) => meter.stub({ organizationId: environment.organizationId, store, authenticated: buyer.authenticated, identifier });

  // Credits bought with money first: the records say what was granted.
  const credits = await Promise.all(
    transitions.map(async (transition) => {
      const identifier = identifierOf(transition);
      if (!prepared || !identifier || transition.subject !== "purchase") return [];
      return grantPackCredits(prepared, store, transition, (input) => userObject(identifier).grantCredits(input));
    }),
  );

  const records: EventInput[] = await Promise.all(
    transitions.map(async (transition, index) => ({
      // Derived from the transition, so a dispatch repeated after a failure writes no second record.
      id: await derivedEventId(`${environment.id}:payment:${transition.id}`),
      organizationId: environment.organizationId,
      environmentId: environment.id,
      kind: "payment" as const,
      identifier: identifierOf(transition) ?? null,
      outcome: transition.toState,
      record: {
        provider: source.provider,
        providerEventId: source.eventId,
        providerEventType: source.eventType,
        ...(source.syncId ? { syncId: source.syncId } : {}),
        ...(source.topUpId ? { topUpId: source.topUpId } : {}),
        customerId: transition.customerId,
        subject: transition.subject,
        subjectId: transition.subjectId,
        from: transition.fromState,
        to: transition.toState,
        productIds: transition.productIds,
        ...(credits[index]!.length > 0 ? { credits: credits[index] } : {}),
      },
    })),
  );
  await insertEvents(env.DB, records);

  const workflowsListen = !!prepared && listensTo(prepared, "plans.changed");
  // Operators' endpoints hear of plan changes too (outbound webhooks), whether or not a workflow listens. Read from D1:
  // a failed read throws (the message is retried) rather than counting as "nobody listens".
  const planListeners = (await activeSubscriptions(env.DB, environment.id, { fresh: true })).filter(
    (subscription) => subscribesTo(subscription, "plan.changed") && wantsIdentity(subscription, buyer.authenticated),
  );
  const webhooksListen = planListeners.length > 0;
  if (!prepared || (!workflowsListen && !webhooksListen)) return;
  // One trigger per identity and event, naming every transition of that identity's payments the event made.
  const byIdentifier = new Map<string, { transitions: PaymentTransition[]; recordIds: string[] }>();
  transitions.forEach((transition, index) => {
    const identifier = identifierOf(transition);
    if (!identifier) return;
    const entry = byIdentifier.get(identifier) ?? { transitions: [], recordIds: [] };
    entry.transitions.push(transition);
    entry.recordIds.push(records[index]!.id!);
    byIdentifier.set(identifier, entry);
  });
  const now = Date.now();
  for (const [identifier, { transitions: own, recordIds }] of byIdentifier) {
    const record = await getCustomerRecord(env.DB, environment.organizationId, buyer.store ?? store, identifier);
    const linkedNow = linkedPlanSlugs(prepared, record ? productsOf(record, now) : []);
    const linkedBefore = linkedPlanSlugs(prepared, record ? productsOf(recordBefore(record, own), now) : []);
    // The full plan set the user's decisions last saw, with the linked part replaced; only linked plans for a user no
    // decision has tracked yet.
    const remembered = await userObject(identifier).replaceLinkedPlans({ remove: linkedBefore.filter((slug) => !linkedNow.includes(slug)), add: linkedNow });
    const plans = remembered ?? { from: linkedBefore, to: linkedNow };
    const change = {
      identifier,
      from: plans.from,
      to: plans.to,
      reason: "payment",
      transitions: own.map((transition, index) => ({
        eventId: recordIds[index],
        subject: transition.subject,
        id: transition.subjectId,
        from: transition.fromState,
        to: transition.toState,
      })),
    };
    if (workflowsListen) {
      const unsent = await enqueueTriggers(env.TRIGGERS, prepared, environment, { identifier, isAuthenticated: buyer.authenticated }, [
        { name: "plans.changed", payload: { eventId: recordIds[0], ...change } },
      ]);
      if (unsent.length > 0) throw new Error(`plans.changed for ${identifier} could not be enqueued: ${unsent[0]!.reason}`);
    }
    // Its id derives from the payment records, so a dispatch repeated after a failure writes it once — and queues it
    // if the failure was its queueing (publish). A failure throws: the message is retried, nothing is marked
    // dispatched. Not when the plans are the same set (a renewal, say) — unless this is the retry of a dispatch that
    // wrote it already (the meter object then answers the plans it has since), whose rows publish may have to queue.
    const planChangedId = await derivedWebhookEventId(`${environment.id}:plan.changed:${recordIds.join(",")}`);
    if (webhooksListen && (!sameSet(plans.from, plans.to) || (await webhookEventWritten(env.DB, planListeners, planChangedId)))) {
      await publishWebhooks(env, environment, [{ type: "plan.changed", id: planChangedId, data: { ...change, paymentEventId: recordIds[0] } }], planListeners);
    }
  }
}

const sameSet = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((slug) => b.includes(slug));

/** A credits pack granted or taken back: which balance, by how much, and the balance after. */
interface PackCredit {
  creditId: string;
  amount: number;
  balance: number;
}

/**
 * The credits a purchase's products buy (the `packs` of credits properties): added when the purchase is paid, taken
 * back when a refund or dispute revokes it. Each grant is keyed by the payment, so a repeated dispatch grants nothing
 * twice (the meter object answers a known key with its first result).
 */
async function grantPackCredits(
  prepared: PreparedSnapshot,
  store: string,
  transition: PaymentTransition,
  grant: (input: GrantCreditsInput) => Promise<CreditResult>,
): Promise<PackCredit[]> {
  const paid = transition.fromState === null && transition.toState === "paid";
  const revoked = transition.fromState === "paid" && transition.toState !== "paid";
  if (!paid && !revoked) return [];
  const granted: PackCredit[] = [];
  for (const feature of prepared.features) {
    const counterIds = feature.counterIds(store);
    for (const [index, property] of feature.properties.entries()) {
      const definition = property.definition;
      if (definition.type !== "credits" || !definition.packs) continue;
      const amount = definition.packs.filter((pack) => transition.productIds.includes(pack.stripeProductId)).reduce((sum, pack) => sum + pack.amount, 0);
      if (amount === 0) continue;
      const creditId = counterIds[index]!;
      const delta = paid ? amount : -amount;
      const result = await grant({
        creditId,
        amount: delta,
        reason: `${paid ? "purchase" : "purchase_revoked"}:${transition.subjectId}`,
        idempotencyKey: `payment:${paid ? "paid" : "revoked"}:${transition.subjectId}:${creditId}`,
        requestHash: String(delta),
      });
      if ("conflict" in result) throw new Error(`credits of ${transition.subjectId} collided with another grant's key`);
      granted.push({ creditId, amount: delta, balance: result.balance });
    }
  }
  return granted;
}

async function deployedSnapshot(db: D1Database, versionId: string): Promise<PreparedSnapshot | null> {
  try {
    return await preparedSnapshotFor(db, versionId);
  } catch (error) {
    // A version that cannot be read (an old format, a refused workflow) fires nothing; the transitions are recorded.
    if ((error as { code?: string }).code === "not_found" || (error as { code?: string }).code === "version_unreadable") return null;
    throw error;
  }
}

/** The plans the products link, in plan order. */
function linkedPlanSlugs(prepared: PreparedSnapshot, productIds: string[]): string[] {
  const slugs = new Set<string>();
  for (const productId of productIds) for (const plan of prepared.plansByStripeProductId.get(productId) ?? []) slugs.add(plan.slug);
  return [...slugs].sort();
}

/** The record as it was before the transitions: each subject back in its former state (or gone when it was new). */
function recordBefore(record: CustomerRecord, transitions: PaymentTransition[]): CustomerRecord {
  let { subscriptions, purchases } = record;
  for (const transition of transitions) {
    if (transition.subject === "subscription") {
      subscriptions = subscriptions.flatMap((subscription) => {
        if (subscription.id !== transition.subjectId) return [subscription];
        if (transition.fromState === null) return [];
        return [{ ...subscription, state: transition.fromState as typeof subscription.state, productIds: transition.fromProductIds ?? subscription.productIds, revokedAt: null }];
      });
    } else {
      purchases = purchases.flatMap((purchase) => {
        if (purchase.paymentId !== transition.subjectId) return [purchase];
        if (transition.fromState === null) return [];
        return [{ ...purchase, state: transition.fromState as typeof purchase.state }];
      });
    }
  }
  return { ...record, subscriptions, purchases };
}
