/**
 * Outbound webhooks: what the platform tells operators' systems. Publishing writes one delivery row per event and
 * subscribed endpoint and puts one message per delivery on the webhooks queue; the consumer (delivery.ts) signs and
 * sends it. Which endpoints an environment has comes from a short per-isolate cache, so a decision that publishes
 * (or only asks whether anyone listens) costs no D1 query in the steady state.
 *
 * Consistency: an isolate reads an environment's subscriptions again at most every 10 s, in the background while it
 * keeps answering from what it read last; the isolate that made a change forgets its copy at once. A new, changed or
 * deleted subscription therefore reaches the decisions of other isolates within about 10 s (plus one D1 query).
 */
import { LRUCache } from "lru-cache";
import { EXPIRE_ON_READ } from "../lib/cacheExpiry";
import { randomToken } from "../lib/crypto";
import { nowIso } from "../lib/ids";

/** The event types a subscription may ask for (`webhook.test` is sent only by the test route, to the one it names). */
export const WEBHOOK_EVENT_TYPES = [
  "plan.changed",
  "user.added",
  "counter.threshold_reached",
  "counter.limit_reached",
  "offer.redemption.started",
  "offer.redemption.completed",
  "offer.redemption.failed",
] as const;

export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number] | "webhook.test";

/** The events a subscription with `authenticatedOnly` gets of signed-in identities only. */
export const IDENTITY_EVENT_TYPES: readonly string[] = ["plan.changed", "user.added", "counter.threshold_reached", "counter.limit_reached"];

export interface WebhookEventInput {
  type: WebhookEventType;
  /** The event's payload (plain JSON). */
  data: Record<string, unknown>;
  /** A stable id (the same event published twice is delivered once per subscription); random when absent. */
  id?: string;
}

export interface WebhookPublisherEnv {
  DB: D1Database;
  WEBHOOKS?: Queue;
}

/** What the webhooks queue carries: the delivery to attempt (its row holds the rest). */
export interface WebhookDeliveryMessage {
  deliveryId: string;
}

/** An enabled subscription as publishing needs it (no secret: the consumer reads that when it signs). */
export interface ActiveSubscription {
  id: string;
  /** Event types, or `*`. */
  eventTypes: string[];
  /** Percentages for counter.threshold_reached. */
  thresholds: number[];
  /** Identity events (IDENTITY_EVENT_TYPES) of signed-in identities only; absent is false. */
  authenticatedOnly?: boolean;
}

/** Whether the subscription wants the identity events of this identity. */
export const wantsIdentity = (subscription: ActiveSubscription, authenticated: boolean): boolean => authenticated || !subscription.authenticatedOnly;

const SUBSCRIPTIONS_TTL_MS = 10_000;

async function loadSubscriptions(db: D1Database, environmentId: string): Promise<ActiveSubscription[]> {
  const { results } = await db
    .prepare("SELECT id, event_types, thresholds, authenticated_only FROM webhook_subscriptions WHERE environment_id = ? AND enabled = 1 ORDER BY created_at, id")
    .bind(environmentId)
    .all<{ id: string; event_types: string; thresholds: string; authenticated_only: number }>();
  return results.map((row) => ({
    id: row.id,
    eventTypes: JSON.parse(row.event_types) as string[],
    thresholds: JSON.parse(row.thresholds) as number[],
    authenticatedOnly: row.authenticated_only === 1,
  }));
}

// Per environment, its enabled subscriptions (most have none: an empty list is cached as well). An expired entry is
// still answered while one background read refreshes it, so no decision waits on D1 but an environment's first.
const subscriptionsByEnvironment = new LRUCache<string, ActiveSubscription[], D1Database>({
  max: 10_000,
  ttl: SUBSCRIPTIONS_TTL_MS,
  ...EXPIRE_ON_READ,
  allowStale: true,
  fetchMethod: async (environmentId, stale, { context: db }) => {
    try {
      return await loadSubscriptions(db, environmentId);
    } catch (error) {
      // Cached like an answer for the TTL, so a failing D1 is asked once per 10 s, not on every decision. The last
      // list read stays in use; an environment never read has none meanwhile (its events of those 10 s are not sent).
      console.warn(JSON.stringify({ event: "webhook_subscriptions_unavailable", environmentId, error: String(error) }));
      return stale ?? [];
    }
  },
});

/**
 * The environment's enabled subscriptions, through the per-isolate cache (see the consistency note above). Never
 * throws: a failed read (logged) keeps the list read last, or counts as "no subscriptions" where there is none.
 * `fresh` reads D1 and throws on failure, for a caller whose queue message is retried when it throws (payments): it
 * must not take a failure for "nobody listens".
 */
export async function activeSubscriptions(db: D1Database, environmentId: string, { fresh = false } = {}): Promise<ActiveSubscription[]> {
  if (fresh) {
    const subscriptions = await loadSubscriptions(db, environmentId);
    subscriptionsByEnvironment.set(environmentId, subscriptions);
    return subscriptions;
  }
  try {
    return (await subscriptionsByEnvironment.fetch(environmentId, { context: db })) ?? [];
  } catch {
    // Only a read aborted by forgetSubscriptions (a change meanwhile) gets here: read what the change left.
    return activeSubscriptions(db, environmentId, { fresh: true }).catch(() => []);
  }
}

/** A change to the environment's subscriptions through this isolate: the next publication reads them again. */
export function forgetSubscriptions(environmentId: string): void {
  subscriptionsByEnvironment.delete(environmentId);
}

export const subscribesTo = (subscription: ActiveSubscription, type: string): boolean =>
  subscription.eventTypes.includes("*") || subscription.eventTypes.includes(type);

/** Standard Webhooks' message ids are `msg_…`; the id is the `webhook-id` every delivery of the event carries. */
export const newWebhookEventId = (): string => `msg_${randomToken(24)}`;
export const newDeliveryId = (): string => `whd_${randomToken(20)}`;

/** The signed body: the Standard Webhooks envelope. */
export function webhookEnvelope(type: string, timestamp: string, data: Record<string, unknown>): string {
  return JSON.stringify({ type, timestamp, data });
}

/**
 * Sends the events to the environment's subscribed endpoints (through the webhooks queue). Never throws: a failure is
 * logged; call it inside `waitUntil`. A caller that can retry uses publishWebhookEventsOrThrow.
 */
export async function publishWebhookEvents(
  env: WebhookPublisherEnv,
  environment: { id: string; organizationId: string },
  events: WebhookEventInput[],
  only: (subscription: ActiveSubscription) => boolean = () => true,
): Promise<void> {
  if (events.length === 0) return;
  try {
    await publish(env, environment, events, (await activeSubscriptions(env.DB, environment.id)).filter(only));
  } catch (error) {
    console.warn(JSON.stringify({ event: "webhooks_not_published", environmentId: environment.id, types: events.map((event) => event.type), error: String(error) }));
  }
}

/**
 * As publishWebhookEvents, for a caller whose queue message is retried when it throws (the payments consumer): the
 * subscriptions come from D1, and any failure throws. The events need stable ids: the retry then writes no second row,
 * and queues the rows the failed attempt could not (publish).
 */
export async function publishWebhookEventsOrThrow(
  env: WebhookPublisherEnv,
  environment: { id: string; organizationId: string },
  events: WebhookEventInput[],
  only: (subscription: ActiveSubscription) => boolean = () => true,
): Promise<void> {
  if (events.length === 0) return;
  await publish(env, environment, events, (await activeSubscriptions(env.DB, environment.id, { fresh: true })).filter(only));
}

/**
 * Publishes to the given subscriptions (the test-send names one, enabled or not). Throws on failure. An event
 * published again under the same id writes no second row; its rows a failed earlier publication could not queue
 * (dead, never attempted) are queued this time.
 */
export async function publish(
  env: WebhookPublisherEnv,
  environment: { id: string; organizationId: string },
  events: WebhookEventInput[],
  subscriptions: readonly ActiveSubscription[],
): Promise<string[]> {
  if (events.length === 0 || subscriptions.length === 0) return [];
  const now = nowIso();
  const rows: { deliveryId: string; key: { subscriptionId: string; eventId: string }; statement: D1PreparedStatement }[] = [];
  for (const event of events) {
    const eventId = event.id ?? newWebhookEventId();
    const payload = webhookEnvelope(event.type, now, event.data);
    for (const subscription of subscriptions) {
      if (!subscribesTo(subscription, event.type)) continue;
      const deliveryId = newDeliveryId();
      rows.push({
        deliveryId,
        key: { subscriptionId: subscription.id, eventId },
        // A publication repeated with the same event id (a retried payment dispatch) writes no second row.
        statement: env.DB.prepare(
          `INSERT INTO webhook_deliveries (id, organization_id, environment_id, subscription_id, event_id, event_type, payload, status, attempts, next_attempt_at, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?) ON CONFLICT (subscription_id, event_id) DO NOTHING`,
        ).bind(deliveryId, environment.organizationId, environment.id, subscription.id, eventId, event.type, payload, now, now, now),
      });
    }
  }
  if (rows.length === 0) return [];
  const results = await env.DB.batch(rows.map((row) => row.statement));
  const written = rows.filter((_, index) => (results[index]?.meta.changes ?? 0) > 0).map((row) => row.deliveryId);
  const repeated = rows.filter((_, index) => (results[index]?.meta.changes ?? 0) === 0);
  const requeued = repeated.length === 0 ? [] : await reclaimUnqueued(env.DB, repeated.map((row) => row.key), now);
  const queued = [...written, ...requeued];
  try {
    await sendDeliveries(env, queued);
  } catch (error) {
    // Not on the queue: dead at once (0 attempts), so the dead-letter list shows them, a replay can send them, and a
    // publication repeated under the same event ids queues them again.
    const unsent = error instanceof DeliveriesNotQueued ? error.deliveryIds : queued;
    const reason = `not queued: ${String(error instanceof DeliveriesNotQueued ? error.cause : error)}`.slice(0, 200);
    await env.DB.batch(
      unsent.map((deliveryId) =>
        env.DB.prepare("UPDATE webhook_deliveries SET status = 'dead', next_attempt_at = NULL, last_error = ?, updated_at = ? WHERE id = ?").bind(reason, now, deliveryId),
      ),
    );
    throw error;
  }
  return queued;
}

/** Whether a delivery of the event to one of the subscriptions was written (a publication being repeated). */
export async function webhookEventWritten(db: D1Database, subscriptions: readonly { id: string }[], eventId: string): Promise<boolean> {
  if (subscriptions.length === 0) return false;
  const row = await db
    .prepare(`SELECT 1 AS found FROM webhook_deliveries WHERE event_id = ? AND subscription_id IN (${subscriptions.map(() => "?").join(", ")}) LIMIT 1`)
    .bind(eventId, ...subscriptions.map((subscription) => subscription.id))
    .first<{ found: number }>();
  return row !== null;
}

/** The rows of these (subscription, event) pairs a failed publication left unqueued, back to pending; their ids. */
async function reclaimUnqueued(db: D1Database, keys: { subscriptionId: string; eventId: string }[], now: string): Promise<string[]> {
  const results = await db.batch(
    keys.map((key) =>
      db
        .prepare(
          "UPDATE webhook_deliveries SET status = 'pending', last_error = NULL, next_attempt_at = ?, updated_at = ? WHERE subscription_id = ? AND event_id = ? AND status = 'dead' AND attempts = 0 RETURNING id",
        )
        .bind(now, now, key.subscriptionId, key.eventId),
    ),
  );
  return results.flatMap((result) => (result.results as { id: string }[]).map((row) => row.id));
}

/** Deliveries the queue did not take (the others of the same call are queued). */
export class DeliveriesNotQueued extends Error {
  constructor(
    readonly deliveryIds: string[],
    cause: unknown,
  ) {
    super(`${deliveryIds.length} webhook deliveries not queued: ${String(cause)}`, { cause });
    this.name = "DeliveriesNotQueued";
  }
}

const QUEUE_BATCH_LIMIT = 100;

/**
 * One queue message per delivery (in batches of 100, the queue's limit). Every batch is tried; when some fail, throws
 * DeliveriesNotQueued naming only theirs.
 */
export async function sendDeliveries(env: WebhookPublisherEnv, deliveryIds: string[], delaySeconds?: number): Promise<void> {
  if (deliveryIds.length === 0) return;
  if (!env.WEBHOOKS) throw new DeliveriesNotQueued(deliveryIds, new Error("the WEBHOOKS queue is not bound"));
  const queue = env.WEBHOOKS as Queue<WebhookDeliveryMessage>;
  const unsent: string[] = [];
  let failure: unknown;
  for (let start = 0; start < deliveryIds.length; start += QUEUE_BATCH_LIMIT) {
    const chunk = deliveryIds.slice(start, start + QUEUE_BATCH_LIMIT);
    try {
      await queue.sendBatch(chunk.map((deliveryId) => ({ body: { deliveryId }, ...(delaySeconds ? { delaySeconds } : {}) })));
    } catch (error) {
      unsent.push(...chunk);
      failure ??= error;
    }
  }
  if (unsent.length > 0) throw new DeliveriesNotQueued(unsent, failure);
}
