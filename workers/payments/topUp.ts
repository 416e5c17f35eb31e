/**
 * Automatic credit top-up: a credits property's `autoTopUp: { below, pack }` buys the pack with the user's saved
 * payment method when a deduction leaves the balance below `below`.
 *
 * - Requested in the background: a decision or counter update whose deduction left the balance below the threshold
 *   sends a `kind: "topup"` message on the payments queue (never for a replayed request; at most once per identity,
 *   credit and TOP_UP_INTERVAL_MS per isolate).
 * - Charged at most once per need: the consumer reads the balance again (another top-up may have landed), then claims
 *   the identity's `credit_topups` row with one conditional upsert — a new attempt only when the last one started
 *   more than TOP_UP_INTERVAL_MS ago, whatever its outcome, so two messages racing cannot both charge and a declining
 *   card is not retried in a storm. The attempt's id is the charge's Stripe idempotency key: a redelivered message of a
 *   pending attempt resumes it, and Stripe answers the repeated charge with the first result.
 * - Paid: the charge is written as a paid purchase of the pack's product (apply.ts, keyed by the payment intent, so a
 *   webhook of the same payment adds nothing) and the consumer grants the pack exactly as a bought pack's.
 */
import { LRUCache } from "lru-cache";
import type { CreditReading } from "../engine";
import type { PreparedSnapshot } from "../engine/prepare";
import { EXPIRE_ON_READ } from "../lib/cacheExpiry";
import { paymentScope, purchaseStatements, type PaymentTransition, undispatchedTransitions } from "./apply";
import { type PaymentGateway, storeScope } from "./gateway";

export const TOP_UP_INTERVAL_MS = 10 * 60 * 1000;

/** A top-up request on the payments queue. */
export interface CreditTopUpMessage {
  kind: "topup";
  organizationId: string;
  environmentId: string;
  identifier: string;
  creditId: string;
  /** The pack the deciding version named (the consumer checks the deployed version still does). */
  productId: string;
}

export interface TopUpSetting {
  below: number;
  productId: string;
}

/** The `autoTopUp` of the credits property a credit id (`{store}:{featureId}.{property}`) names, if it has one. */
export function topUpSettingOf(prepared: PreparedSnapshot, store: string, creditId: string): TopUpSetting | null {
  const match = /^([^:]+):([^.]+)\.(.+)$/.exec(creditId);
  if (!match || match[1] !== store) return null;
  const definition = prepared.featureById.get(match[2]!)?.propertyBySlug.get(match[3]!)?.definition;
  if (definition?.type !== "credits" || !definition.autoTopUp) return null;
  return { below: definition.autoTopUp.below, productId: definition.autoTopUp.pack };
}

/** The credits this request's deductions left below their top-up threshold. */
export function topUpsDue(prepared: PreparedSnapshot, store: string, readings: Iterable<CreditReading>): { creditId: string; productId: string }[] {
  const due = [];
  for (const reading of readings) {
    if (!reading.deductedInRequest) continue;
    const setting = topUpSettingOf(prepared, store, reading.creditId);
    if (setting && reading.balance < setting.below) due.push({ creditId: reading.creditId, productId: setting.productId });
  }
  return due;
}

/** Top-ups this isolate requested recently: the same balance's next deductions ask nothing more. */
const requestedRecently = new LRUCache<string, true>({ max: 10_000, ttl: TOP_UP_INTERVAL_MS, ...EXPIRE_ON_READ });

/** Sends the top-up requests not sent by this isolate within TOP_UP_INTERVAL_MS. Meant for `waitUntil`. */
export async function requestCreditTopUps(
  queue: Queue<CreditTopUpMessage> | undefined,
  environment: { id: string; organizationId: string },
  identifier: string,
  due: { creditId: string; productId: string }[],
): Promise<void> {
  if (!queue) return;
  const messages: CreditTopUpMessage[] = [];
  for (const { creditId, productId } of due) {
    const key = `${environment.id}\u0000${identifier}\u0000${creditId}`;
    if (requestedRecently.has(key)) continue;
    requestedRecently.set(key, true);
    messages.push({ kind: "topup", organizationId: environment.organizationId, environmentId: environment.id, identifier, creditId, productId });
  }
  if (messages.length === 1) await queue.send(messages[0]!);
  else if (messages.length > 1) await queue.sendBatch(messages.map((body) => ({ body })));
}

/** Forgets the top-ups this isolate requested (tests: a new request within the interval then sends again). */
export function forgetCreditTopUpRequests(): void {
  requestedRecently.clear();
}

/** Where a top-up writes: the identity's payment state and its `credit_topups` row. */
export interface TopUpTarget {
  organizationId: string;
  environmentId: string;
  store: string;
  identifier: string;
  creditId: string;
}

export type TopUpAttempt =
  /** Nothing attempted: no longer configured, the balance is not below the threshold (any more), or attempted lately. */
  | { status: "skipped"; reason: "not_configured" | "not_below" | "attempted_recently" }
  /** Paid: the purchase is written; `transitions` (not dispatched yet) grant the pack. */
  | { status: "paid"; attemptId: string; productId: string; paymentId: string; customerId: string; amount: number; currency: string; transitions: PaymentTransition[] }
  /** Nothing granted: no customer, no saved payment method or price, or the payment was declined. */
  | { status: "failed"; attemptId: string; productId: string; reason: string; paymentId: string | null; message: string | null };

export async function attemptCreditTopUp(
  db: D1Database,
  gateway: PaymentGateway,
  target: TopUpTarget,
  setting: TopUpSetting | null,
  readBalance: () => Promise<number>,
  clock: { now(): number } = Date,
): Promise<TopUpAttempt> {
  if (!setting) return { status: "skipped", reason: "not_configured" };
  if ((await readBalance()) >= setting.below) return { status: "skipped", reason: "not_below" };
  const attempt = await claimAttempt(db, target, setting.productId, clock.now());
  if (!attempt) return { status: "skipped", reason: "attempted_recently" };
  const { attemptId, productId } = attempt;

  const customer = await db
    .prepare("SELECT stripe_customer_id FROM customers WHERE organization_id = ? AND store = ? AND identifier = ?")
    .bind(target.organizationId, target.store, target.identifier)
    .first<{ stripe_customer_id: string | null }>();
  const customerId = customer?.stripe_customer_id;
  if (!customerId) return { status: "failed", attemptId, productId, reason: "no_customer", paymentId: null, message: null };

  const charge = await gateway.chargeSavedPaymentMethod(
    { customerId, productId, scope: storeScope(target.organizationId, target.store), metadata: { identifier: target.identifier, topUp: "true", creditId: target.creditId } },
    { idempotencyKey: attemptId },
  );
  if (charge.outcome === "not_charged") return { status: "failed", attemptId, productId, reason: charge.reason, paymentId: null, message: null };
  if (charge.outcome === "declined") return { status: "failed", attemptId, productId, reason: charge.code, paymentId: charge.paymentId, message: charge.message };

  const scope = paymentScope(db, target, gateway.provider, `topup:${attemptId}`);
  await db.batch(purchaseStatements(scope, { paymentId: charge.paymentId, customerId, checkoutId: null, productIds: [productId] }, "paid"));
  // Those this batch wrote and those a resumed attempt's first try wrote but did not dispatch.
  const transitions = await undispatchedTransitions(db, target.environmentId, scope.eventId);
  return { status: "paid", attemptId, productId, paymentId: charge.paymentId, customerId, amount: charge.amount, currency: charge.currency, transitions };
}

/**
 * An attempt that never finished (its messages were dropped after the charge, say) stays the one to resume, with its
 * own idempotency key, for as long as the provider remembers the key: a later top-up then finds that charge instead of
 * making a second one. Only after this long is it replaced.
 */
const PENDING_ATTEMPT_MS = 23 * 60 * 60 * 1000;

/**
 * A new attempt (the row is new, or its last attempt finished and started more than TOP_UP_INTERVAL_MS ago), or the
 * pending attempt a redelivered or later message resumes; null when an attempt finished within the interval.
 */
async function claimAttempt(db: D1Database, target: TopUpTarget, productId: string, now: number): Promise<{ attemptId: string; productId: string } | null> {
  const key = [target.organizationId, target.store, target.identifier, target.creditId];
  const claimed = await db
    .prepare(
      `INSERT INTO credit_topups (organization_id, store, identifier, credit_id, attempt_id, product_id, state, started_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)
       ON CONFLICT (organization_id, store, identifier, credit_id) DO UPDATE SET attempt_id = excluded.attempt_id, product_id = excluded.product_id,
         state = 'pending', reason = NULL, payment_id = NULL, started_at = excluded.started_at, finished_at = NULL
       WHERE (credit_topups.state <> 'pending' AND credit_topups.started_at <= ?) OR credit_topups.started_at <= ?
       RETURNING attempt_id, product_id`,
    )
    .bind(...key, `topup_${crypto.randomUUID().replaceAll("-", "")}`, productId, now, now - TOP_UP_INTERVAL_MS, now - PENDING_ATTEMPT_MS)
    .first<{ attempt_id: string; product_id: string }>();
  const row =
    claimed ??
    (await db
      .prepare("SELECT attempt_id, product_id FROM credit_topups WHERE organization_id = ? AND store = ? AND identifier = ? AND credit_id = ? AND state = 'pending'")
      .bind(...key)
      .first<{ attempt_id: string; product_id: string }>());
  return row ? { attemptId: row.attempt_id, productId: row.product_id } : null;
}

/** Closes an attempt once its outcome is recorded (and a payment's credits granted): the interval then applies. */
export async function finishCreditTopUp(
  db: D1Database,
  target: TopUpTarget,
  attemptId: string,
  outcome: { state: "succeeded" | "failed"; reason?: string; paymentId?: string | null },
  now = Date.now(),
): Promise<void> {
  await db
    .prepare(
      `UPDATE credit_topups SET state = ?, reason = ?, payment_id = ?, finished_at = ?
       WHERE organization_id = ? AND store = ? AND identifier = ? AND credit_id = ? AND attempt_id = ? AND state = 'pending'`,
    )
    .bind(outcome.state, outcome.reason ?? null, outcome.paymentId ?? null, now, target.organizationId, target.store, target.identifier, target.creditId, attemptId)
    .run();
}
