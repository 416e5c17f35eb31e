/**
 * Outbound webhooks: what the platform tells operators' systems. Publishing writes one delivery row per event and
 * subscribed endpoint and puts one message per delivery on the webhooks queue; the consumer (delivery.ts) signs and
 * sends it. Which endpoints an environment has comes from a short per-isolate cache, so a decision that publishes
 * (or only asks whether anyone listens) costs no D1 query in the steady state.
 */
import { LRUCache } from "lru-cache";
import { EXPIRE_ON_READ } from "../lib/cacheExpiry";
import { randomToken } from "../lib/crypto";
import { nowIso } from "../lib/ids";

export const WEBHOOK_EVENT_TYPES = [
  "plan.changed",
  "user.added",
  "counter.threshold_reached",
  "counter.limit_reached",
  "offer.redemption.started",
  "offer.redemption.completed",
  "offer.redemption.failed",
  "webhook.test",
] as const;

export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

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
}

const SUBSCRIPTIONS_TTL_MS = 10_000;
// Per environment, its enabled subscriptions (most have none: an empty list is cached as well).
const subscriptionsByEnvironment = new LRUCache<string, ActiveSubscription[]>({ max: 10_000, ttl: SUBSCRIPTIONS_TTL_MS, ...EXPIRE_ON_READ });

/** The environment's enabled subscriptions, through the per-isolate cache. */
export async function activeSubscriptions(db: D1Database, environmentId: string): Promise<ActiveSubscription[]> {
  const cached = subscriptionsByEnvironment.get(environmentId);
  if (cached) return cached;
  const { results } = await db
    .prepare("SELECT id, event_types, thresholds FROM webhook_subscriptions WHERE environment_id = ? AND enabled = 1 ORDER BY created_at, id")
    .bind(environmentId)
    .all<{ id: string; event_types: string; thresholds: string }>();
  const subscriptions = results.map((row) => ({
    id: row.id,
    eventTypes: JSON.parse(row.event_types) as string[],
    thresholds: JSON.parse(row.thresholds) as number[],
  }));
  subscriptionsByEnvironment.set(environmentId, subscriptions);
  return subscriptions;
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
 * logged; call it inside `waitUntil`.
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

/** Publishes to the given subscriptions (the test-send names one, enabled or not). Throws on failure. */
export async function publish(
  env: WebhookPublisherEnv,
  environment: { id: string; organizationId: string },
  events: WebhookEventInput[],
  subscriptions: readonly ActiveSubscription[],
): Promise<string[]> {
  if (events.length === 0 || subscriptions.length === 0) return [];
  const now = nowIso();
  const rows: { deliveryId: string; statement: D1PreparedStatement }[] = [];
  for (const event of events) {
    const eventId = event.id ?? newWebhookEventId();
    const payload = webhookEnvelope(event.type, now, event.data);
    for (const subscription of subscriptions) {
      if (!subscribesTo(subscription, event.type)) continue;
      const deliveryId = newDeliveryId();
      rows.push({
        deliveryId,
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
  try {
    await sendDeliveries(env, written);
  } catch (error) {
    // Not on the queue: dead at once, so the dead-letter list shows them and a replay can send them.
    await env.DB.batch(
      written.map((deliveryId) =>
        env.DB.prepare("UPDATE webhook_deliveries SET status = 'dead', next_attempt_at = NULL, last_error = ?, updated_at = ? WHERE id = ?").bind(`not queued: ${String(error)}`, now, deliveryId),
      ),
    );
    throw error;
  }
  return written;
}

/** One queue message per delivery (in batches of 100, the queue's limit). */
export async function sendDeliveries(env: WebhookPublisherEnv, deliveryIds: string[], delaySeconds?: number): Promise<void> {
  if (deliveryIds.length === 0) return;
  if (!env.WEBHOOKS) throw new Error("the WEBHOOKS queue is not bound");
  const queue = env.WEBHOOKS as Queue<WebhookDeliveryMessage>;
  for (let start = 0; start < deliveryIds.length; start += 100) {
    await queue.sendBatch(deliveryIds.slice(start, start + 100).map((deliveryId) => ({ body: { deliveryId }, ...(delaySeconds ? { delaySeconds } : {}) })));
  }
}
