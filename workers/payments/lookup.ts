/**
 * Real-time lookup: a decision that meets a signed-in identity without a customer record asks, in the background, for
 * that identity to be looked up at the payment provider (the decision never waits for it). The payments queue's
 * consumer then finds the customers that paid for the identifier (`metadata.identifier` of the customer, or of the
 * subscriptions and payments the platform's checkout opened, through the provider's search), links them, and stores their subscriptions and paid purchases exactly as webhooks and the sync
 * do (apply.ts) — so a customer who paid before the environment was connected, or whose webhooks were lost, holds the
 * linked plans from one of their next decisions on.
 *
 * Bounded: the provider is asked at most once per identity and store every LOOKUP_INTERVAL_MS (a D1 row per lookup,
 * found or not), for at most 10 customers and one page of subscriptions and purchases each; each isolate also forgets
 * to ask again for an identity it asked about within that interval. Only `metadata.identifier` counts — never the
 * email, which an identity provider may let anyone claim.
 */
import { LRUCache } from "lru-cache";
import { EXPIRE_ON_READ } from "../lib/cacheExpiry";
import {
  linkStatements,
  type PaymentTransition,
  paymentScope,
  purchaseStatements,
  subscriptionStatements,
  toTransition,
  TRANSITION_COLUMNS,
  type TransitionRow,
  transitionsIn,
} from "./apply";
import { belongsToStore, type PaymentGateway, storeScope } from "./gateway";
import type { LifecyclePolicy } from "./lifecycle";

export const LOOKUP_INTERVAL_MS = 60 * 60 * 1000;
const PAGE = 100;

/** A lookup on the payments queue. */
export interface CustomerLookupMessage {
  kind: "lookup";
  organizationId: string;
  environmentId: string;
  identifier: string;
}

export interface LookupResult {
  /** False when the identity was looked up within the interval, or is linked already: the provider was not asked. */
  asked: boolean;
  customerIds: string[];
  transitions: PaymentTransition[];
}

const lookupEventPrefix = (identifier: string) => `lookup:${identifier}:`;

/**
 * Transitions an earlier lookup of the identity wrote but did not dispatch (its dispatch failed after the batch
 * committed): a retried lookup finds the identity linked and asks nothing, but these must still go out.
 */
export async function undispatchedLookupTransitions(db: D1Database, environmentId: string, identifier: string): Promise<PaymentTransition[]> {
  const prefix = lookupEventPrefix(identifier);
  const { results } = await db
    .prepare(
      `SELECT ${TRANSITION_COLUMNS} FROM payment_transitions
       WHERE environment_id = ? AND substr(event_id, 1, ?) = ? AND dispatched_at IS NULL ORDER BY id`,
    )
    .bind(environmentId, prefix.length, prefix)
    .all<TransitionRow>();
  return results.map(toTransition);
}

export async function lookUpCustomer(
  db: D1Database,
  gateway: PaymentGateway,
  policy: LifecyclePolicy,
  target: { organizationId: string; environmentId: string; store: string },
  identifier: string,
  clock: { now(): number } = Date,
): Promise<LookupResult> {
  const { organizationId, store } = target;
  const startedAt = clock.now();
  const [recent, linked] = await db.batch([
    db
      .prepare("SELECT 1 AS found FROM payment_lookups WHERE organization_id = ? AND store = ? AND identifier = ? AND looked_up_at > ?")
      .bind(organizationId, store, identifier, startedAt - LOOKUP_INTERVAL_MS),
    db.prepare("SELECT 1 AS found FROM payment_customers WHERE organization_id = ? AND store = ? AND identifier = ? LIMIT 1").bind(organizationId, store, identifier),
  ]);
  if (recent!.results.length > 0 || linked!.results.length > 0) return { asked: false, customerIds: [], transitions: [] };

  const scope = paymentScope(db, target, gateway.provider, `${lookupEventPrefix(identifier)}${startedAt}`);
  const storeTag = storeScope(organizationId, store);
  const customerIds = await gateway.findCustomerIds(identifier, storeTag);
  const statements: D1PreparedStatement[] = [];
  for (const customerId of customerIds) {
    statements.push(...linkStatements(scope, customerId, identifier, "sync"));
    const observedAt = clock.now();
    const [subscriptions, purchases] = await Promise.all([
      gateway.listSubscriptions({ customerId, limit: PAGE }),
      gateway.listPaidCheckouts({ customerId, limit: PAGE }),
    ]);
    // A customer shared with another store (the same person paying two organizations on one account) keeps that
    // store's subscriptions and purchases there.
    for (const snapshot of subscriptions.items) {
      if (belongsToStore(snapshot.scope, storeTag)) statements.push(...subscriptionStatements(scope, snapshot, observedAt, policy.pastDueGraceHours));
    }
    for (const purchase of purchases.items) {
      if (!belongsToStore(purchase.scope, storeTag)) continue;
      const state = purchase.fullyRefunded && policy.revokeOnRefund ? "refunded" : "paid";
      const { paymentId, checkoutId, productIds } = purchase;
      statements.push(...purchaseStatements(scope, { paymentId, customerId: purchase.customerId, checkoutId, productIds }, state));
    }
  }
  statements.push(
    db
      .prepare(
        `INSERT INTO payment_lookups (organization_id, store, identifier, looked_up_at, customers_found) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (organization_id, store, identifier) DO UPDATE SET looked_up_at = excluded.looked_up_at, customers_found = excluded.customers_found`,
      )
      .bind(organizationId, store, identifier, startedAt, customerIds.length),
  );
  const results = await db.batch(statements);
  const transitions = transitionsIn(results);
  return { asked: true, customerIds, transitions };
}

/** Identities this isolate asked about recently: the same identity's next decisions ask nothing more. */
const askedRecently = new LRUCache<string, true>({ max: 10_000, ttl: LOOKUP_INTERVAL_MS, ...EXPIRE_ON_READ });
/** Whether an environment is connected to a provider: no lookups (and no queue messages) for one that is not. */
const connectedEnvironments = new LRUCache<string, { connected: boolean }>({ max: 1_000, ttl: 60_000, ...EXPIRE_ON_READ });

/**
 * Asks for a lookup of a signed-in identity without a customer record — once per isolate and LOOKUP_INTERVAL_MS, and
 * only for an environment connected to a provider. Meant for `waitUntil`: the decision never waits for it.
 */
export async function requestCustomerLookup(
  queue: Queue<CustomerLookupMessage> | undefined,
  db: D1Database,
  environment: { id: string; organizationId: string },
  identifier: string,
): Promise<void> {
  if (!queue) return;
  const key = `${environment.id}\u0000${identifier}`;
  if (askedRecently.has(key)) return;
  askedRecently.set(key, true);
  let connection = connectedEnvironments.get(environment.id);
  if (!connection) {
    const row = await db.prepare("SELECT 1 AS found FROM payment_connections WHERE environment_id = ?").bind(environment.id).first();
    connection = { connected: row !== null };
    connectedEnvironments.set(environment.id, connection);
  }
  if (!connection.connected) return;
  await queue.send({ kind: "lookup", organizationId: environment.organizationId, environmentId: environment.id, identifier });
}

/** Forgets what this isolate knows of an environment's connection (it was connected or disconnected just now). */
export function forgetPaymentConnection(environmentId: string): void {
  connectedEnvironments.delete(environmentId);
}
