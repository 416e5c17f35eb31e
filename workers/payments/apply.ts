/**
 * Applies one verified payment event to the store's payment state, exactly once and in order.
 *
 * - Exactly once: the event's id goes into the processed-event log (`payment_events`) in the same D1 batch — one
 *   transaction — as every row the event changes. A redelivery finds the id and changes nothing; two deliveries racing
 *   each other cannot both commit (the log's primary key refuses the second batch whole).
 * - In order: a subscription is not taken from the event's payload but read from the provider when the event is
 *   applied, and stored with the time it was read (`observed_at`); a state read earlier never replaces one read later,
 *   so events arriving in any order leave the newest state. Purchases only move forward (paid → refunded/disputed).
 * - Transitions — a subscription entering another lifecycle state or changing products, a purchase paid or revoked —
 *   are written in the same batch (an outbox), for the caller to record and fire triggers for.
 */
import { isUniqueConstraintError } from "../lib/d1Errors";
import { nowIso } from "../lib/ids";
import { anonymousStore } from "../services/customers";
import { belongsToStore, type NormalizedEvent, type PaymentGateway, type PaymentProvider, storeScope, type SubscriptionSnapshot } from "./gateway";
import { type LifecyclePolicy, type PurchaseState, subscriptionStateOf } from "./lifecycle";

/** What the webhook route puts on the payments queue: a verified, normalized event and where it belongs. */
export interface PaymentEventMessage {
  organizationId: string;
  environmentId: string;
  /** The environment's user data store, where the state goes. */
  store: string;
  event: NormalizedEvent;
  receivedAt: string;
}

/**
 * Where an event's state goes: the store, or its anonymous partition (services/customers.ts anonymousStore) when the
 * object was bought by an anonymous visitor through an offer — its scope tag names the partition. `authenticated` is
 * what the partition's identities are (for their meter objects and triggers).
 */
export function purchasePartition(organizationId: string, store: string, scope: string | null): { store: string; authenticated: boolean } {
  const anonymous = anonymousStore(store);
  return scope !== null && scope === storeScope(organizationId, anonymous) ? { store: anonymous, authenticated: false } : { store, authenticated: true };
}

export interface PaymentTransition {
  id: number;
  environmentId: string;
  eventId: string;
  customerId: string | null;
  subject: "subscription" | "purchase";
  subjectId: string;
  fromState: string | null;
  toState: string;
  /** The subject's products before (null for a new subject) and after the transition. */
  fromProductIds: string[] | null;
  productIds: string[];
  createdAt: string;
}

export interface AppliedEvent {
  /** The event was applied before (a redelivery): nothing changed now. */
  duplicate: boolean;
  /** Transitions of this event not dispatched yet (on a redelivery: those an earlier attempt left). */
  transitions: PaymentTransition[];
  /** Provider customers whose state changed: their identities' cached customer records are stale. */
  customerIds: string[];
}

/** Where a batch of payment-state statements writes, and the event (or sync step) its transitions are named after. */
export interface Scope {
  db: D1Database;
  organizationId: string;
  store: string;
  environmentId: string;
  provider: PaymentProvider;
  eventId: string;
  now: string;
}

/** What one batch of payment writes is about: the store, the environment, and the id its transitions go under. */
export function paymentScope(
  db: D1Database,
  target: { organizationId: string; store: string; environmentId: string },
  provider: PaymentProvider,
  eventId: string,
): Scope {
  return { db, organizationId: target.organizationId, store: target.store, environmentId: target.environmentId, provider, eventId, now: nowIso() };
}

/** The transitions a batch wrote (the rows its transition statements returned). */
export function transitionsIn(results: D1Result[]): PaymentTransition[] {
  return results.flatMap((result) => (result.results as Partial<TransitionRow>[]).filter(isTransitionRow).map(toTransition));
}

export interface TransitionRow {
  id: number;
  environment_id: string;
  event_id: string;
  customer_id: string | null;
  subject: "subscription" | "purchase";
  subject_id: string;
  from_state: string | null;
  to_state: string;
  from_product_ids: string | null;
  product_ids: string;
  created_at: string;
}

export const TRANSITION_COLUMNS = "id, environment_id, event_id, customer_id, subject, subject_id, from_state, to_state, from_product_ids, product_ids, created_at";

export const toTransition = (row: TransitionRow): PaymentTransition => ({
  id: row.id,
  environmentId: row.environment_id,
  eventId: row.event_id,
  customerId: row.customer_id,
  subject: row.subject,
  subjectId: row.subject_id,
  fromState: row.from_state,
  toState: row.to_state,
  fromProductIds: row.from_product_ids === null ? null : (JSON.parse(row.from_product_ids) as string[]),
  productIds: JSON.parse(row.product_ids) as string[],
  createdAt: row.created_at,
});

export async function applyPaymentEvent(
  db: D1Database,
  gateway: PaymentGateway,
  policy: LifecyclePolicy,
  message: PaymentEventMessage,
  clock: { now(): number } = Date,
): Promise<AppliedEvent> {
  const { event } = message;
  const scope = paymentScope(db, message, event.provider, event.id);
  if (await wasProcessed(scope)) return { duplicate: true, transitions: await undispatchedTransitions(db, scope.environmentId, scope.eventId), customerIds: [] };

  const statements: D1PreparedStatement[] = [
    db
      .prepare("INSERT INTO payment_events (environment_id, event_id, type, customer_id, processed_at) VALUES (?, ?, ?, ?, ?)")
      .bind(scope.environmentId, event.id, event.rawType, event.customerId, scope.now),
  ];
  const customerIds = new Set<string>();
  // Objects the platform's checkout made for another store (another organization or environment type on the same
  // provider account) are not this store's: nothing of them is linked or applied here.
  const storeTag = storeScope(message.organizationId, message.store);
  const ours = (tag: string | null) => belongsToStore(tag, storeTag);
  const touch = (customerId: string | null) => customerId && customerIds.add(customerId);
  const link = (customerId: string | null, identifier: string | null, by: "checkout" | "metadata") => {
    if (!customerId || !identifier || !ours(event.scope)) return;
    statements.push(...linkStatements(scope, customerId, identifier, by));
    touch(customerId);
  };
  const applySubscription = async (subscriptionId: string | null) => {
    if (!subscriptionId) return;
    const observedAt = clock.now();
    const snapshot = await gateway.getSubscription(subscriptionId);
    if (!snapshot || !ours(snapshot.scope)) return;
    link(snapshot.customerId, snapshot.identifier, "metadata");
    statements.push(...subscriptionStatements(scope, snapshot, observedAt, policy.pastDueGraceHours));
    touch(snapshot.customerId);
  };

  switch (event.type) {
    case "subscription.activated":
    case "subscription.updated":
    case "subscription.canceled":
      link(event.customerId, event.identifier, "metadata");
      await applySubscription(event.subscription.id);
      break;
    case "invoice.paid":
    case "invoice.payment_failed":
      // The invoice's subscription moves (past_due, back to active): its current state says how.
      link(event.customerId, event.identifier, "metadata");
      await applySubscription(event.subscriptionId);
      break;
    case "checkout.completed": {
      link(event.customerId, event.identifier, "checkout");
      if (event.mode === "subscription") {
        await applySubscription(event.subscriptionId);
        break;
      }
      if (event.mode !== "payment") break;
      const checkout = await gateway.getCheckout(event.checkoutId);
      if (!checkout?.paid || !checkout.paymentId || !ours(checkout.scope)) break;
      link(checkout.customerId, checkout.identifier, "checkout");
      statements.push(...purchaseStatements(scope, { paymentId: checkout.paymentId, customerId: checkout.customerId, checkoutId: checkout.checkoutId, productIds: checkout.productIds }, "paid"));
      touch(checkout.customerId);
      break;
    }
    case "payment.refunded":
      if (!event.fullyRefunded || !policy.revokeOnRefund || !ours(event.scope)) break;
      statements.push(...purchaseStatements(scope, { paymentId: event.paymentId, customerId: event.customerId, checkoutId: null, productIds: [] }, "refunded"));
      touch(event.customerId);
      break;
    case "dispute.opened": {
      if (!policy.revokeOnDispute) break;
      // The dispute names its charge; whose it is (and which store's) the charge says when the payload did not.
      const owner = event.customerId !== null && event.scope !== null ? { customerId: event.customerId, scope: event.scope } : await gateway.customerOfCharge(event.chargeId);
      if (!ours(owner.scope ?? event.scope)) break;
      const customerId = owner.customerId ?? event.customerId;
      statements.push(...purchaseStatements(scope, { paymentId: event.paymentId, customerId, checkoutId: null, productIds: [] }, "disputed"));
      // A chargeback suspends what the customer's subscriptions grant as well, until a new subscription.
      if (customerId) statements.push(...revokeSubscriptionStatements(scope, customerId));
      touch(customerId);
      break;
    }
  }

  let results: D1Result[];
  try {
    results = await db.batch(statements);
  } catch (error) {
    // Another delivery of this event committed first: it did the work (and dispatches its transitions).
    if (isUniqueConstraintError(error) && (await wasProcessed(scope))) return { duplicate: true, transitions: [], customerIds: [] };
    throw error;
  }
  return { duplicate: false, transitions: transitionsIn(results), customerIds: [...customerIds] };
}

/** Marks transitions as dispatched (recorded and their triggers sent), so a retry does not send them again. */
export async function markTransitionsDispatched(db: D1Database, ids: number[]): Promise<void> {
  if (ids.length === 0) return;
  const now = nowIso();
  await db.batch(ids.map((id) => db.prepare("UPDATE payment_transitions SET dispatched_at = ? WHERE id = ? AND dispatched_at IS NULL").bind(now, id)));
}

export function isTransitionRow(row: Partial<TransitionRow>): row is TransitionRow {
  return typeof row.id === "number" && typeof row.subject === "string" && typeof row.to_state === "string";
}

async function wasProcessed(scope: Scope): Promise<boolean> {
  const row = await scope.db.prepare("SELECT 1 AS found FROM payment_events WHERE environment_id = ? AND event_id = ?").bind(scope.environmentId, scope.eventId).first();
  return row !== null;
}

/**
 * Transitions written under `eventId` (a webhook event, a sync step, a top-up attempt) that were not dispatched yet:
 * what a retry after a failed dispatch still owes.
 */
export async function undispatchedTransitions(db: D1Database, environmentId: string, eventId: string): Promise<PaymentTransition[]> {
  const { results } = await db
    .prepare(`SELECT ${TRANSITION_COLUMNS} FROM payment_transitions WHERE environment_id = ? AND event_id = ? AND dispatched_at IS NULL ORDER BY id`)
    .bind(environmentId, eventId)
    .all<TransitionRow>();
  return results.map(toTransition);
}

/**
 * The customer is this identity: a checkout or the subscription's metadata said so. An operator's link (admin API)
 * is not overridden by metadata. The identity's customer record names the customer too (its portal and checkouts).
 */
export function linkStatements(scope: Scope, customerId: string, identifier: string, by: "checkout" | "metadata" | "sync"): D1PreparedStatement[] {
  const { db, organizationId, store, provider, now } = scope;
  return [
    db
      .prepare(
        `INSERT INTO payment_customers (organization_id, store, provider, customer_id, identifier, linked_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (organization_id, store, provider, customer_id) DO UPDATE SET identifier = excluded.identifier, linked_by = excluded.linked_by,
           updated_at = excluded.updated_at
         WHERE payment_customers.linked_by <> 'admin' AND payment_customers.identifier <> excluded.identifier`,
      )
      .bind(organizationId, store, provider, customerId, identifier, by, now),
    db
      .prepare(
        `INSERT INTO customers (organization_id, store, identifier, stripe_customer_id, stripe_product_ids, updated_at)
         SELECT ?1, ?2, ?3, ?4, '[]', ?5
         WHERE NOT EXISTS (SELECT 1 FROM payment_customers WHERE organization_id = ?1 AND store = ?2 AND provider = ?6 AND customer_id = ?4
           AND identifier <> ?3 AND linked_by = 'admin')
         ON CONFLICT (organization_id, store, identifier) DO UPDATE SET stripe_customer_id = excluded.stripe_customer_id, updated_at = excluded.updated_at
         WHERE customers.stripe_customer_id IS NOT excluded.stripe_customer_id`,
      )
      .bind(organizationId, store, identifier, customerId, now, provider),
  ];
}

/**
 * The transition (only when the stored state is older and differs in state or products, or there is none) and the
 * upsert (only over an older observation). Both read the row as it was before this batch, in one transaction.
 */
export function subscriptionStatements(scope: Scope, snapshot: SubscriptionSnapshot, observedAt: number, graceHours: number): D1PreparedStatement[] {
  const { db, organizationId, store, provider, environmentId, eventId, now } = scope;
  const { subscription, customerId } = snapshot;
  const state = subscriptionStateOf(subscription.status, subscription.cancelAtPeriodEnd);
  const products = JSON.stringify(snapshot.productIds);
  const key = "organization_id = ? AND store = ? AND provider = ? AND subscription_id = ?";
  const keyValues = [organizationId, store, provider, subscription.id];
  return [
    db
      .prepare(
        `INSERT INTO payment_transitions (environment_id, event_id, customer_id, subject, subject_id, from_state, to_state, from_product_ids, product_ids, created_at)
         SELECT ?, ?, ?, 'subscription', ?, (SELECT state FROM payment_subscriptions WHERE ${key}), ?, (SELECT product_ids FROM payment_subscriptions WHERE ${key}), ?, ?
         WHERE NOT EXISTS (SELECT 1 FROM payment_subscriptions WHERE ${key}
           AND (observed_at >= ? OR revoked_at IS NOT NULL OR (state = ? AND product_ids = ?)))
         RETURNING ${TRANSITION_COLUMNS}`,
      )
      .bind(environmentId, eventId, customerId, subscription.id, ...keyValues, state, ...keyValues, products, now, ...keyValues, observedAt, state, products),
    db
      .prepare(
        `INSERT INTO payment_subscriptions (organization_id, store, provider, subscription_id, customer_id, state, status, product_ids, current_period_end,
           cancel_at_period_end, state_since, grace_hours, revoked_at, observed_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)
         ON CONFLICT (organization_id, store, provider, subscription_id) DO UPDATE SET
           customer_id = excluded.customer_id, status = excluded.status, product_ids = excluded.product_ids,
           current_period_end = excluded.current_period_end, cancel_at_period_end = excluded.cancel_at_period_end,
           state_since = CASE WHEN payment_subscriptions.state = excluded.state THEN payment_subscriptions.state_since ELSE excluded.state_since END,
           state = CASE WHEN payment_subscriptions.revoked_at IS NULL THEN excluded.state ELSE 'revoked' END, grace_hours = excluded.grace_hours, observed_at = excluded.observed_at, updated_at = excluded.updated_at
         WHERE payment_subscriptions.observed_at < excluded.observed_at`,
      )
      .bind(
        ...keyValues,
        customerId,
        state,
        subscription.status,
        products,
        subscription.currentPeriodEnd,
        subscription.cancelAtPeriodEnd ? 1 : 0,
        new Date(observedAt).toISOString(),
        graceHours,
        observedAt,
        now,
      ),
  ];
}

/** A purchase paid or revoked: a transition when it is new or leaves `paid`; the state never moves back to paid. */
export function purchaseStatements(
  scope: Scope,
  purchase: { paymentId: string; customerId: string | null; checkoutId: string | null; productIds: string[] },
  state: PurchaseState,
): D1PreparedStatement[] {
  const { db, organizationId, store, provider, environmentId, eventId, now } = scope;
  const key = "organization_id = ? AND store = ? AND provider = ? AND payment_id = ?";
  const keyValues = [organizationId, store, provider, purchase.paymentId];
  const products = JSON.stringify(purchase.productIds);
  return [
    db
      .prepare(
        `INSERT INTO payment_transitions (environment_id, event_id, customer_id, subject, subject_id, from_state, to_state, from_product_ids, product_ids, created_at)
         SELECT ?, ?, COALESCE(?, (SELECT customer_id FROM payment_purchases WHERE ${key})), 'purchase', ?, (SELECT state FROM payment_purchases WHERE ${key}), ?,
           (SELECT product_ids FROM payment_purchases WHERE ${key}), COALESCE((SELECT product_ids FROM payment_purchases WHERE ${key} AND product_ids <> '[]'), ?), ?
         WHERE NOT EXISTS (SELECT 1 FROM payment_purchases WHERE ${key} AND (state <> 'paid' OR ? = 'paid'))
         RETURNING ${TRANSITION_COLUMNS}`,
      )
      .bind(environmentId, eventId, purchase.customerId, ...keyValues, purchase.paymentId, ...keyValues, state, ...keyValues, ...keyValues, products, now, ...keyValues, state),
    db
      .prepare(
        `INSERT INTO payment_purchases (organization_id, store, provider, payment_id, customer_id, checkout_id, product_ids, state, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (organization_id, store, provider, payment_id) DO UPDATE SET
           state = CASE WHEN payment_purchases.state = 'paid' THEN excluded.state ELSE payment_purchases.state END,
           customer_id = COALESCE(excluded.customer_id, payment_purchases.customer_id),
           checkout_id = COALESCE(excluded.checkout_id, payment_purchases.checkout_id),
           product_ids = CASE WHEN excluded.product_ids <> '[]' THEN excluded.product_ids ELSE payment_purchases.product_ids END,
           updated_at = excluded.updated_at`,
      )
      .bind(...keyValues, purchase.customerId, purchase.checkoutId, products, state, now),
  ];
}

/** A dispute: every subscription of the customer not revoked yet loses its access (a transition each). */
function revokeSubscriptionStatements(scope: Scope, customerId: string): D1PreparedStatement[] {
  const { db, organizationId, store, provider, environmentId, eventId, now } = scope;
  const mine = "organization_id = ? AND store = ? AND provider = ? AND customer_id = ? AND revoked_at IS NULL";
  return [
    db
      .prepare(
        `INSERT INTO payment_transitions (environment_id, event_id, customer_id, subject, subject_id, from_state, to_state, from_product_ids, product_ids, created_at)
         SELECT ?, ?, customer_id, 'subscription', subject_id_, state, 'revoked', product_ids, product_ids, ?
         FROM (SELECT subscription_id AS subject_id_, customer_id, state, product_ids FROM payment_subscriptions WHERE ${mine} ORDER BY subscription_id)
         RETURNING ${TRANSITION_COLUMNS}`,
      )
      .bind(environmentId, eventId, now, organizationId, store, provider, customerId),
    db.prepare(`UPDATE payment_subscriptions SET state = 'revoked', state_since = ?, revoked_at = ?, updated_at = ? WHERE ${mine}`).bind(now, now, now, organizationId, store, provider, customerId),
  ];
}
