/**
 * Customer sync: a backfill from the payment provider into the tables webhooks write (apply.ts), for an environment
 * connected to an account that already has customers. Three phases, each a paginated listing of the whole account:
 *
 * 1. customers — each customer whose `metadata.identifier` is set (or, matching by email, whose email is) is linked to
 *    that identity (`payment_customers`, linked_by 'sync'; an operator's link is never overridden);
 * 2. subscriptions — every subscription, whatever its status, stored as a webhook would store it: the state read now,
 *    which never replaces a newer one, with its lifecycle transition in the outbox;
 * 3. purchases — every paid one-time checkout, `paid` (or `refunded` when refunded in full and the environment's
 *    policy revokes on refund); a purchase only moves forward, as with webhooks.
 *
 * One step is one page of one phase, run by the payments queue's consumer (workflows/paymentEvents.ts): its rows, its
 * transitions and the sync's new cursor, counts and phase go into ONE D1 batch, so a retried step redoes at most its
 * own page — harmlessly, every statement being an idempotent upsert — and then the next step is enqueued. Each step
 * message names the step it is for; only the step the sync row expects acts, so a message delivered twice or a
 * resumed sync whose chain was still alive never doubles the work, and a restarted sync (a new id) stops the old chain.
 */
import { ApiError } from "../errors";
import { MAX_IDENTIFIER_LENGTH } from "../identity/jwt";
import { randomToken } from "../lib/crypto";
import { nowIso } from "../lib/ids";
import {
  linkStatements,
  type PaymentTransition,
  paymentScope,
  purchaseStatements,
  type Scope,
  subscriptionStatements,
  transitionsIn,
  undispatchedTransitions,
} from "./apply";
import { anonymousStore, identifiersOfPaymentCustomers } from "../services/customers";
import { belongsToStore, type CustomerSummary, type PaymentGateway, storeScope } from "./gateway";
import type { LifecyclePolicy } from "./lifecycle";

export type SyncState = "running" | "done" | "failed";
export type SyncPhase = "customers" | "subscriptions" | "purchases";
/** How a provider customer is matched to an identity: its `metadata.identifier`, or its email as the identifier. */
export type SyncMatchBy = "metadata" | "email";

export const SYNC_PAGE_SIZE = 100;
const PHASES: readonly SyncPhase[] = ["customers", "subscriptions", "purchases"];

/** A step of a sync on the payments queue; webhook event messages have no `kind`. */
export interface CustomerSyncMessage {
  kind: "sync";
  organizationId: string;
  environmentId: string;
  syncId: string;
  /** The number of pages done when the step was enqueued: the step acts only while the sync row still says so. */
  step: number;
}

export interface CustomerSync {
  id: string;
  environmentId: string;
  state: SyncState;
  phase: SyncPhase;
  matchBy: SyncMatchBy;
  step: number;
  customersSeen: number;
  customersLinked: number;
  subscriptionsSeen: number;
  purchasesSeen: number;
  startedAt: string;
  updatedAt: string;
  finishedAt: string | null;
  lastError: string | null;
}

interface SyncRow {
  id: string;
  environment_id: string;
  state: SyncState;
  phase: SyncPhase;
  cursor: string | null;
  step: number;
  match_by: SyncMatchBy;
  customers_seen: number;
  customers_linked: number;
  subscriptions_seen: number;
  purchases_seen: number;
  started_at: string;
  updated_at: string;
  finished_at: string | null;
  last_error: string | null;
}

const SYNC_COLUMNS =
  "id, environment_id, state, phase, cursor, step, match_by, customers_seen, customers_linked, subscriptions_seen, purchases_seen, started_at, updated_at, finished_at, last_error";

const toSync = (row: SyncRow): CustomerSync => ({
  id: row.id,
  environmentId: row.environment_id,
  state: row.state,
  phase: row.phase,
  matchBy: row.match_by,
  step: row.step,
  customersSeen: row.customers_seen,
  customersLinked: row.customers_linked,
  subscriptionsSeen: row.subscriptions_seen,
  purchasesSeen: row.purchases_seen,
  startedAt: row.started_at,
  updatedAt: row.updated_at,
  finishedAt: row.finished_at,
  lastError: row.last_error,
});

const stepMessage = (organizationId: string, sync: CustomerSync): CustomerSyncMessage => ({
  kind: "sync",
  organizationId,
  environmentId: sync.environmentId,
  syncId: sync.id,
  step: sync.step,
});

/** The environment's latest sync, or null when it never had one. */
export async function getCustomerSync(db: D1Database, environmentId: string): Promise<CustomerSync | null> {
  const row = await db.prepare(`SELECT ${SYNC_COLUMNS} FROM payment_syncs WHERE environment_id = ?`).bind(environmentId).first<SyncRow>();
  return row ? toSync(row) : null;
}

/**
 * Starts a sync, or resumes the running one from its cursor (unless `restart`); a done or failed sync starts over.
 * Returns the sync and the step message to enqueue: for a resumed sync, the step it is at (should its chain still be
 * alive, only one of the two messages acts).
 */
export async function startCustomerSync(
  db: D1Database,
  environment: { id: string; organizationId: string },
  request: { matchBy?: SyncMatchBy; restart?: boolean },
): Promise<{ sync: CustomerSync; resumed: boolean; message: CustomerSyncMessage }> {
  const current = await getCustomerSync(db, environment.id);
  if (current?.state === "running" && !request.restart) {
    if (request.matchBy && request.matchBy !== current.matchBy) {
      throw new ApiError("conflict", `A sync matching by ${current.matchBy} is running: pass restart: true to start over matching by ${request.matchBy}`);
    }
    return { sync: current, resumed: true, message: stepMessage(environment.organizationId, current) };
  }
  const now = nowIso();
  // A new id supersedes the previous sync: its steps still queued find their id gone and stop.
  const row = await db
    .prepare(
      `INSERT INTO payment_syncs (id, environment_id, state, phase, cursor, step, match_by, started_at, updated_at) VALUES (?1, ?2, 'running', 'customers', NULL, 0, ?3, ?4, ?4)
       ON CONFLICT (environment_id) DO UPDATE SET id = excluded.id, state = 'running', phase = 'customers', cursor = NULL, step = 0, match_by = excluded.match_by,
         customers_seen = 0, customers_linked = 0, subscriptions_seen = 0, purchases_seen = 0, started_at = excluded.started_at, updated_at = excluded.updated_at,
         finished_at = NULL, last_error = NULL
       RETURNING ${SYNC_COLUMNS}`,
    )
    .bind(`sync_${randomToken(16)}`, environment.id, request.matchBy ?? "metadata", now)
    .first<SyncRow>();
  if (!row) throw new Error("payment_syncs upsert returned no row");
  const sync = toSync(row);
  return { sync, resumed: false, message: stepMessage(environment.organizationId, sync) };
}

/** After the queue's last retry of a step: the sync stops as failed, saying why (a restart starts it over). */
export async function failCustomerSync(db: D1Database, message: CustomerSyncMessage, error: string): Promise<void> {
  const now = nowIso();
  // The step's batch may have committed before what followed it failed: the row is then one step further.
  await db
    .prepare(
      "UPDATE payment_syncs SET state = 'failed', last_error = ?, finished_at = ?, updated_at = ? WHERE id = ? AND state = 'running' AND step IN (?, ?)",
    )
    .bind(error.slice(0, 1000), now, now, message.syncId, message.step, message.step + 1)
    .run();
}

export interface SyncStepResult {
  /** Transitions to dispatch: this step's, or on a redelivery those its first attempt left undispatched. */
  transitions: PaymentTransition[];
  /** Provider customers whose state changed: their identities' cached customer records are stale. */
  customerIds: string[];
  /** The step to enqueue next; null when the sync is done, superseded, or another delivery carries it on. */
  next: CustomerSyncMessage | null;
}

const NOTHING: SyncStepResult = { transitions: [], customerIds: [], next: null };

/** The id transitions of a step are written under (payment_transitions.event_id): one per sync and step. */
export const syncStepEventId = (syncId: string, step: number) => `sync:${syncId}:${step}`;

/**
 * Runs one step: one page of the sync's current phase. `redelivered`: the queue delivers this message again after a
 * failure — if its batch had committed (the row is one step further), what followed it is done again: its transitions
 * dispatched and the next step enqueued.
 */
export async function runCustomerSyncStep(
  db: D1Database,
  gateway: PaymentGateway,
  policy: LifecyclePolicy,
  target: { organizationId: string; environmentId: string; store: string },
  message: CustomerSyncMessage,
  options: { redelivered: boolean; clock?: { now(): number } } = { redelivered: false },
): Promise<SyncStepResult> {
  const row = await db.prepare(`SELECT ${SYNC_COLUMNS} FROM payment_syncs WHERE id = ? AND environment_id = ?`).bind(message.syncId, message.environmentId).first<SyncRow>();
  if (!row) return NOTHING;
  if (options.redelivered && row.step === message.step + 1 && row.state !== "failed") {
    const transitions = await undispatchedTransitions(db, message.environmentId, syncStepEventId(message.syncId, message.step));
    const next = row.state === "running" ? { ...message, step: row.step } : null;
    return { transitions, customerIds: [], next };
  }
  if (row.state !== "running" || row.step !== message.step) return NOTHING;

  const scope = paymentScope(db, target, gateway.provider, syncStepEventId(row.id, row.step));
  const page = await readPage(scope, gateway, policy, row, options.clock ?? Date);
  const phaseIndex = PHASES.indexOf(row.phase);
  const nextPhase = page.hasMore ? row.phase : PHASES[phaseIndex + 1];
  const done = nextPhase === undefined;
  const progress = db
    .prepare(
      `UPDATE payment_syncs SET step = step + 1, phase = ?, cursor = ?, customers_seen = customers_seen + ?, customers_linked = customers_linked + ?,
         subscriptions_seen = subscriptions_seen + ?, purchases_seen = purchases_seen + ?, state = ?, finished_at = ?, updated_at = ?
       WHERE id = ? AND step = ? AND state = 'running'`,
    )
    .bind(
      nextPhase ?? row.phase,
      page.hasMore ? page.nextCursor : null,
      page.counts.customersSeen,
      page.counts.customersLinked,
      page.counts.subscriptionsSeen,
      page.counts.purchasesSeen,
      done ? "done" : "running",
      done ? scope.now : null,
      scope.now,
      row.id,
      row.step,
    );
  const results = await db.batch([progress, ...page.statements]);
  const transitions = transitionsIn(results);
  // Another delivery of this step committed first: it carries the sync on.
  const advanced = results[0]!.meta.changes === 1;
  const next = advanced && !done ? { ...message, step: row.step + 1 } : null;
  return { transitions, customerIds: page.customerIds, next };
}

interface PageWork {
  statements: D1PreparedStatement[];
  customerIds: string[];
  counts: { customersSeen: number; customersLinked: number; subscriptionsSeen: number; purchasesSeen: number };
  hasMore: boolean;
  nextCursor: string | null;
}

async function readPage(scope: Scope, gateway: PaymentGateway, policy: LifecyclePolicy, row: SyncRow, clock: { now(): number }): Promise<PageWork> {
  const request = { limit: SYNC_PAGE_SIZE, ...(row.cursor ? { startingAfter: row.cursor } : {}) };
  const statements: D1PreparedStatement[] = [];
  const customerIds = new Set<string>();
  const counts = { customersSeen: 0, customersLinked: 0, subscriptionsSeen: 0, purchasesSeen: 0 };
  const storeTag = storeScope(scope.organizationId, scope.store);
  const link = (customerId: string | null, identifier: string | null) => {
    if (!customerId || !identifier || identifier.length > MAX_IDENTIFIER_LENGTH) return false;
    statements.push(...linkStatements(scope, customerId, identifier, "sync"));
    customerIds.add(customerId);
    return true;
  };

  switch (row.phase) {
    case "customers": {
      const page = await gateway.listCustomers(request);
      counts.customersSeen = page.customers.length;
      // Checkout creates the customer of an anonymous visitor's offer purchase untagged, often with an email: it
      // belongs to the store's anonymous partition, never to the signed-in identity its email (or metadata) names.
      const anonymousBuyers = await identifiersOfPaymentCustomers(scope.db, scope.organizationId, anonymousStore(scope.store), page.customers.map((customer) => customer.id));
      for (const customer of page.customers) {
        if (!belongsToStore(customer.scope, storeTag) || anonymousBuyers.has(customer.id)) continue;
        if (link(customer.id, identifierOf(customer, row.match_by))) counts.customersLinked++;
      }
      return { statements, customerIds: [...customerIds], counts, hasMore: page.hasMore, nextCursor: page.nextCursor };
    }
    case "subscriptions": {
      // Read time, as webhooks store it: a state read now never replaces one a later webhook read.
      const observedAt = clock.now();
      const page = await gateway.listSubscriptions(request);
      counts.subscriptionsSeen = page.items.length;
      for (const snapshot of page.items) {
        // Another store's (another organization or environment type on the same account): not this one's.
        if (!belongsToStore(snapshot.scope, storeTag)) continue;
        // The identifier the platform's checkout put on the subscription: the same link a webhook would make.
        link(snapshot.customerId, snapshot.identifier);
        statements.push(...subscriptionStatements(scope, snapshot, observedAt, policy.pastDueGraceHours));
        customerIds.add(snapshot.customerId);
      }
      return { statements, customerIds: [...customerIds], counts, hasMore: page.hasMore, nextCursor: page.nextCursor };
    }
    case "purchases": {
      const page = await gateway.listPaidCheckouts(request);
      counts.purchasesSeen = page.items.length;
      for (const purchase of page.items) {
        if (!belongsToStore(purchase.scope, storeTag)) continue;
        link(purchase.customerId, purchase.identifier);
        const state = purchase.fullyRefunded && policy.revokeOnRefund ? "refunded" : "paid";
        const { paymentId, customerId, checkoutId, productIds } = purchase;
        statements.push(...purchaseStatements(scope, { paymentId, customerId, checkoutId, productIds }, state));
        if (customerId) customerIds.add(customerId);
      }
      return { statements, customerIds: [...customerIds], counts, hasMore: page.hasMore, nextCursor: page.nextCursor };
    }
  }
}

function identifierOf(customer: CustomerSummary, matchBy: SyncMatchBy): string | null {
  const identifier = matchBy === "email" ? customer.email : customer.metadata.identifier;
  return identifier || null;
}
