/**
 * Offer redemptions as stored (schema/0011_offer_redemptions.sql): one row per offer token (its jti) and environment,
 * which is what makes redeeming idempotent per token — a double click, two requests racing, a retry after a lost
 * answer all find the same row and the same Stripe idempotency key — and what the payment webhooks complete, by the
 * jti a checkout carries in its metadata. Also the funnel events of a redemption (`offer_redemption`: started,
 * completed, failed), each with an id derived from the environment, the token and the outcome, so writing one again
 * keeps one row.
 */
import type { OfferTokenClaims } from "../engine/offerTypes";
import { nowIso } from "../lib/ids";
import { derivedEventId, type EventInput } from "../services/events";
import type { WebhookEventInput } from "../webhooks/publish";

export type RedemptionState = "started" | "completed" | "failed";
export type RedemptionOutcome = RedemptionState;

export interface Redemption {
  environmentId: string;
  organizationId: string;
  /** The token's jti: the redemption's id. */
  id: string;
  offer: string;
  variant: string | null;
  group: string | null;
  slot: number | null;
  identifier: string;
  anonymous: boolean;
  method: string;
  amount: number | null;
  currency: string | null;
  state: RedemptionState;
  /** Tries so far: a failed redemption may be tried again, each try with its own Stripe idempotency key. */
  attempt: number;
  /** What the client was answered; null until the method answered. */
  result: Record<string, unknown> | null;
  failureReason: string | null;
  createdAt: string;
  updatedAt: string;
  completedAt: string | null;
}

interface RedemptionRow {
  environment_id: string;
  token_id: string;
  organization_id: string;
  offer: string;
  variant: string | null;
  offer_group: string | null;
  slot: number | null;
  identifier: string;
  anonymous: number;
  method: string;
  amount: number | null;
  currency: string | null;
  state: RedemptionState;
  attempt: number;
  result: string | null;
  failure_reason: string | null;
  created_at: string;
  updated_at: string;
  completed_at: string | null;
}

const toRedemption = (row: RedemptionRow): Redemption => ({
  environmentId: row.environment_id,
  organizationId: row.organization_id,
  id: row.token_id,
  offer: row.offer,
  variant: row.variant,
  group: row.offer_group,
  slot: row.slot,
  identifier: row.identifier,
  anonymous: row.anonymous === 1,
  method: row.method,
  amount: row.amount,
  currency: row.currency,
  state: row.state,
  attempt: row.attempt,
  result: row.result === null ? null : (JSON.parse(row.result) as Record<string, unknown>),
  failureReason: row.failure_reason,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
  completedAt: row.completed_at,
});

export async function getRedemption(db: D1Database, environmentId: string, tokenId: string): Promise<Redemption | null> {
  const row = await db.prepare("SELECT * FROM offer_redemptions WHERE environment_id = ? AND token_id = ?").bind(environmentId, tokenId).first<RedemptionRow>();
  return row ? toRedemption(row) : null;
}

export interface RedemptionClaim {
  redemption: Redemption;
  /**
   * This request opened the try (a new row, a failed one reopened, or one whose lease ran out): it runs the method.
   * Otherwise another request did (it may still be running): for a Stripe method, a repeat runs it again under the same
   * Stripe idempotency key, which answers with the first result; a method the provider cannot deduplicate (a workflow)
   * answers the stored result or "in progress".
   */
  opened: boolean;
}

/**
 * How long a try may stay `started` without a result before another request may take it over (a new attempt): the
 * request that opened it died (its Worker was evicted, the client went away with it). Far longer than a redemption
 * workflow may run (decision/redemptionWorkflow.ts), so a running try is never taken over.
 */
export const REDEMPTION_LEASE_MS = 60_000;

/**
 * Starts the redemption of a token, or finds the one started: INSERT OR IGNORE keyed by (environment, jti), so
 * requests racing each other make one row. A failed redemption — and, with `leaseMs`, a started one without a result
 * not touched for that long — is reopened by one conditional update (one request wins the next attempt).
 */
export async function claimRedemption(
  db: D1Database,
  target: { organizationId: string; environmentId: string },
  claims: OfferTokenClaims,
  method: string,
  options: { leaseMs?: number } = {},
): Promise<RedemptionClaim> {
  const now = nowIso();
  const inserted = await db
    .prepare(
      `INSERT OR IGNORE INTO offer_redemptions (environment_id, token_id, organization_id, offer, variant, offer_group, slot, identifier, anonymous, method,
         amount, currency, state, attempt, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'started', 1, ?, ?)`,
    )
    .bind(target.environmentId, claims.jti, target.organizationId, claims.offer, claims.variant, claims.group, claims.slot, claims.sub, claims.anon ? 1 : 0, method, claims.amt, claims.cur, now, now)
    .run();
  let redemption = (await getRedemption(db, target.environmentId, claims.jti))!;
  if (inserted.meta.changes === 1) return { redemption, opened: true };
  if (redemption.state === "failed") {
    const reopened = await db
      .prepare(
        `UPDATE offer_redemptions SET state = 'started', attempt = attempt + 1, result = NULL, failure_reason = NULL, updated_at = ?
         WHERE environment_id = ? AND token_id = ? AND state = 'failed' AND attempt = ?`,
      )
      .bind(now, target.environmentId, claims.jti, redemption.attempt)
      .run();
    redemption = (await getRedemption(db, target.environmentId, claims.jti))!;
    return { redemption, opened: reopened.meta.changes === 1 };
  }
  if (options.leaseMs !== undefined && redemption.state === "started" && redemption.result === null) {
    const expired = new Date(Date.now() - options.leaseMs).toISOString();
    const taken = await db
      .prepare(
        `UPDATE offer_redemptions SET attempt = attempt + 1, updated_at = ?
         WHERE environment_id = ? AND token_id = ? AND state = 'started' AND result IS NULL AND attempt = ? AND updated_at < ?`,
      )
      .bind(now, target.environmentId, claims.jti, redemption.attempt, expired)
      .run();
    if (taken.meta.changes === 1) return { redemption: (await getRedemption(db, target.environmentId, claims.jti))!, opened: true };
  }
  return { redemption, opened: false };
}

/** Keeps what the client was answered, once per attempt (a racing repeat got the same answer from Stripe). */
export async function storeRedemptionResult(db: D1Database, redemption: Redemption, result: Record<string, unknown>, state: "started" | "completed" = "started"): Promise<void> {
  const now = nowIso();
  await db
    .prepare(
      `UPDATE offer_redemptions SET result = COALESCE(result, ?), state = ?, updated_at = ?, completed_at = CASE WHEN ? = 'completed' THEN ? ELSE completed_at END
       WHERE environment_id = ? AND token_id = ? AND state = 'started' AND attempt = ?`,
    )
    .bind(JSON.stringify(result), state, now, state, now, redemption.environmentId, redemption.id, redemption.attempt)
    .run();
}

/** The attempt failed (the provider refused, the workflow failed): the token may be tried again. */
export async function failRedemption(db: D1Database, redemption: Redemption, reason: string): Promise<boolean> {
  const { meta } = await db
    .prepare(
      `UPDATE offer_redemptions SET state = 'failed', failure_reason = ?, updated_at = ?
       WHERE environment_id = ? AND token_id = ? AND state = 'started' AND attempt = ? AND result IS NULL`,
    )
    .bind(reason.slice(0, 1000), nowIso(), redemption.environmentId, redemption.id, redemption.attempt)
    .run();
  return meta.changes === 1;
}

/**
 * Marks the redemption completed (its checkout was paid) and writes its `completed` event in the same batch. Once:
 * `completed` is true only for the call that moved it, whatever the number of webhook deliveries; a redemption this
 * environment does not know, or already completed, changes nothing.
 */
export async function completeRedemption(
  db: D1Database,
  environmentId: string,
  tokenId: string,
  details: { checkoutId: string | null; subscriptionId: string | null },
): Promise<{ completed: boolean; redemption: Redemption | null; event: EventInput | null }> {
  const redemption = await getRedemption(db, environmentId, tokenId);
  if (!redemption || redemption.state === "completed") return { completed: false, redemption, event: null };
  const event = await redemptionEvent(redemption, "completed", details);
  const now = nowIso();
  const [update] = await db.batch([
    db
      .prepare("UPDATE offer_redemptions SET state = 'completed', completed_at = ?, updated_at = ? WHERE environment_id = ? AND token_id = ? AND state <> 'completed'")
      .bind(now, now, environmentId, tokenId),
    db
      .prepare("INSERT OR IGNORE INTO events (id, organization_id, environment_id, kind, created_at, identifier, surface_slug, outcome, record) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?)")
      .bind(event.id, event.organizationId, event.environmentId, event.kind, now, event.identifier ?? null, event.outcome ?? null, JSON.stringify(event.record)),
  ]);
  const completed = update!.meta.changes === 1;
  return { completed, redemption: { ...redemption, state: "completed", completedAt: now }, event: completed ? event : null };
}

/** The id of a redemption's event of `outcome`: the same for every write of it. */
export function redemptionEventId(environmentId: string, tokenId: string, outcome: RedemptionOutcome): Promise<string> {
  return derivedEventId(`${environmentId}:offer_redemption:${tokenId}:${outcome}`);
}

/** The funnel event of a redemption (kind `offer_redemption`). */
export async function redemptionEvent(
  redemption: Pick<Redemption, "environmentId" | "organizationId" | "id" | "offer" | "variant" | "group" | "slot" | "identifier" | "anonymous" | "method" | "amount" | "currency">,
  outcome: RedemptionOutcome,
  details: { checkoutId?: string | null; subscriptionId?: string | null; reason?: string } = {},
): Promise<EventInput & { id: string }> {
  return {
    id: await redemptionEventId(redemption.environmentId, redemption.id, outcome),
    organizationId: redemption.organizationId,
    environmentId: redemption.environmentId,
    kind: "offer_redemption",
    identifier: redemption.identifier,
    outcome,
    record: {
      offer: redemption.offer,
      variant: redemption.variant,
      group: redemption.group,
      slot: redemption.slot,
      method: redemption.method,
      tokenId: redemption.id,
      anonymous: redemption.anonymous,
      amount: redemption.amount,
      currency: redemption.currency,
      ...(details.checkoutId ? { checkoutId: details.checkoutId } : {}),
      ...(details.subscriptionId ? { subscriptionId: details.subscriptionId } : {}),
      ...(details.reason ? { reason: details.reason } : {}),
    },
  };
}

/** The outbound webhook of a redemption event: `offer.redemption.<outcome>`, delivered once per event id. */
export function redemptionWebhook(event: EventInput & { id: string }): WebhookEventInput {
  return {
    type: `offer.redemption.${event.outcome as RedemptionOutcome}`,
    id: event.id,
    data: { eventId: event.id, environmentId: event.environmentId, identifier: event.identifier ?? null, ...event.record },
  };
}

/** A redemption built from a token, before (or without) its row: what the events of a request describe. */
export function redemptionOf(target: { organizationId: string; environmentId: string }, claims: OfferTokenClaims, method: string) {
  return {
    environmentId: target.environmentId,
    organizationId: target.organizationId,
    id: claims.jti,
    offer: claims.offer,
    variant: claims.variant,
    group: claims.group,
    slot: claims.slot,
    identifier: claims.sub,
    anonymous: claims.anon,
    method,
    amount: claims.amt,
    currency: claims.cur,
  };
}
