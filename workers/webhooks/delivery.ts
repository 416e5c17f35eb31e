/**
 * The webhooks queue's consumer: one message per delivery. It signs the delivery's body with its subscription's
 * secret as Standard Webhooks defines (webhook-id = the event id, the same on every retry and replay; webhook-timestamp;
 * webhook-signature `v1,<base64 HMAC-SHA256>`), posts it, and records the attempt. A 2xx is delivered; anything else is
 * retried by the queue with a growing delay until the last attempt, after which the delivery is dead (listed, and
 * replayable). A subscription deleted or disabled meanwhile drops its delivery. For 24 hours after a secret rotation,
 * a delivery carries a second signature by the previous secret (space-separated, as the specification allows).
 */
import { keysetPage, olderThanCursor } from "../lib/keysetPage";
import { Webhook } from "standardwebhooks";
import { ApiError } from "../errors";
import { nowIso } from "../lib/ids";
import { DeliveriesNotQueued, sendDeliveries, type WebhookDeliveryMessage, type WebhookPublisherEnv } from "./publish";
import { endpointOf, subscriptionState } from "./subscriptions";

/** wrangler.toml holds the same names and max_retries (a test keeps them equal). */
export const WEBHOOK_QUEUE = "edge-monetization-webhooks";
export const WEBHOOK_DEAD_LETTER_QUEUE = "edge-monetization-webhooks-dlq";
export const WEBHOOK_MAX_RETRIES = 8;
/** A receiver gets this long to answer. */
export const DELIVERY_TIMEOUT_MS = 10_000;
const FIRST_RETRY_DELAY_SECONDS = 30;
const MAX_RETRY_DELAY_SECONDS = 3_600;
/** What is read of a receiver's error answer (the rest is not downloaded)… */
const ERROR_BODY_READ_LIMIT = 1_024;
/** …and what of it, with the status, is kept as lastError (shown to the operator). */
const ERROR_TEXT_LIMIT = 200;
/** A pending delivery this old is taken for lost (the isolate died before queueing it): a replay may send it. */
export const STALE_PENDING_MS = 15 * 60 * 1000;

/** 30 s, 1 min, 2 min, … doubling per attempt, at most an hour. */
export const webhookRetryDelaySeconds = (attempt: number): number => Math.min(MAX_RETRY_DELAY_SECONDS, FIRST_RETRY_DELAY_SECONDS * 2 ** Math.max(0, attempt - 1));

export type DeliveryStatus = "pending" | "delivered" | "failed" | "dead" | "dropped";

export interface WebhookDelivery {
  id: string;
  environmentId: string;
  subscriptionId: string;
  eventId: string;
  eventType: string;
  payload: Record<string, unknown>;
  status: DeliveryStatus;
  attempts: number;
  lastStatusCode: number | null;
  lastError: string | null;
  nextAttemptAt: string | null;
  createdAt: string;
  updatedAt: string;
  deliveredAt: string | null;
}

type Row = {
  id: string;
  organization_id: string;
  environment_id: string;
  subscription_id: string;
  event_id: string;
  event_type: string;
  payload: string;
  status: DeliveryStatus;
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
  next_attempt_at: string | null;
  created_at: string;
  updated_at: string;
  delivered_at: string | null;
};

const fromRow = (row: Row): WebhookDelivery => ({
  id: row.id,
  environmentId: row.environment_id,
  subscriptionId: row.subscription_id,
  eventId: row.event_id,
  eventType: row.event_type,
  payload: JSON.parse(row.payload) as Record<string, unknown>,
  status: row.status,
  attempts: row.attempts,
  lastStatusCode: row.last_status_code,
  lastError: row.last_error,
  nextAttemptAt: row.next_attempt_at,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
  deliveredAt: row.delivered_at,
});

/** The headers of one signed delivery (the `standardwebhooks` library signs), with one signature per secret. */
export function signedHeaders(secrets: string | readonly string[], eventId: string, body: string, at: Date): Record<string, string> {
  return {
    "content-type": "application/json",
    "user-agent": "edge-monetization-webhooks/1",
    "webhook-id": eventId,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": (typeof secrets === "string" ? [secrets] : secrets).map((secret) => new Webhook(secret).sign(eventId, at, body)).join(" "),
  };
}

/** The start of an error answer's body: at most ERROR_BODY_READ_LIMIT bytes are read, then the body is cancelled. */
async function errorBodyExcerpt(response: Response): Promise<string> {
  if (!response.body) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < ERROR_BODY_READ_LIMIT) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.byteLength;
    }
  } catch {
    // A body that breaks off is an excerpt too.
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  const bytes = new Uint8Array(Math.min(size, ERROR_BODY_READ_LIMIT));
  let offset = 0;
  for (const chunk of chunks) {
    const part = chunk.subarray(0, bytes.length - offset);
    bytes.set(part, offset);
    offset += part.length;
    if (offset >= bytes.length) break;
  }
  return new TextDecoder().decode(bytes);
}

type Attempt = { delivered: true; statusCode: number } | { delivered: false; statusCode: number | null; error: string };

async function attempt(url: string, headers: Record<string, string>, body: string): Promise<Attempt> {
  try {
    // Redirects are not followed: the receiver is the URL the operator registered.
    const response = await fetch(url, { method: "POST", headers, body, redirect: "manual", signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS) });
    if (response.status >= 200 && response.status < 300) {
      await response.body?.cancel();
      return { delivered: true, statusCode: response.status };
    }
    const text = (await errorBodyExcerpt(response)).trim();
    return { delivered: false, statusCode: response.status, error: `HTTP ${response.status}${text ? `: ${text}` : ""}`.slice(0, ERROR_TEXT_LIMIT) };
  } catch (error) {
    const timedOut = error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
    return { delivered: false, statusCode: null, error: timedOut ? `no answer within ${DELIVERY_TIMEOUT_MS / 1000} s` : String(error).slice(0, ERROR_TEXT_LIMIT) };
  }
}

export interface WebhookConsumerEnv {
  DB: D1Database;
  SECRETS_KEY: string;
}

/** Finished deliveries (delivered, dropped, dead) are kept this long for listing and replay, then removed. */
export const DELIVERY_RETENTION_DAYS = 30;
/** At most this many old deliveries are removed per batch: retention never makes a batch slow. */
const PRUNED_PER_BATCH = 200;

/** The consumer of the webhooks queue. */
export async function handleWebhookBatch(batch: MessageBatch<WebhookDeliveryMessage>, env: WebhookConsumerEnv): Promise<void> {
  await Promise.all(batch.messages.map((message) => deliverMessage(message, env)));
  await pruneOldDeliveries(env.DB);
}

/**
 * Retention without a schedule: every batch removes up to PRUNED_PER_BATCH finished deliveries past
 * DELIVERY_RETENTION_DAYS (through the created_at index). Traffic that makes deliveries also removes them, at a rate
 * above any rate it creates them. A failure is only logged: the deliveries were made.
 */
export async function pruneOldDeliveries(db: D1Database, now = Date.now()): Promise<void> {
  const before = new Date(now - DELIVERY_RETENTION_DAYS * 86_400_000).toISOString();
  try {
    await db
      .prepare(
        `DELETE FROM webhook_deliveries WHERE id IN (
           SELECT id FROM webhook_deliveries WHERE created_at < ? AND status IN ('delivered', 'dropped', 'dead') LIMIT ${PRUNED_PER_BATCH})`,
      )
      .bind(before)
      .run();
  } catch (error) {
    console.warn(JSON.stringify({ event: "webhook_deliveries_not_pruned", error: String(error) }));
  }
}

async function deliverMessage(message: Message<WebhookDeliveryMessage>, env: WebhookConsumerEnv): Promise<void> {
  const { deliveryId } = message.body;
  try {
    const row = await env.DB.prepare("SELECT * FROM webhook_deliveries WHERE id = ?").bind(deliveryId).first<Row>();
    if (!row || row.status === "delivered" || row.status === "dropped") return message.ack();
    const endpoint = await endpointOf(env.DB, env.SECRETS_KEY, row.subscription_id);
    const now = nowIso();
    if (!endpoint || !endpoint.enabled) {
      await env.DB.prepare("UPDATE webhook_deliveries SET status = 'dropped', next_attempt_at = NULL, last_error = ?, updated_at = ? WHERE id = ?")
        .bind(endpoint ? "the subscription is disabled" : "the subscription was deleted", now, deliveryId)
        .run();
      return message.ack();
    }
    const body = row.payload;
    const result = await attempt(endpoint.url, signedHeaders(endpoint.secrets, row.event_id, body, new Date()), body);
    if (result.delivered) {
      await env.DB.prepare(
        "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, last_status_code = ?, last_error = NULL, next_attempt_at = NULL, delivered_at = ?, updated_at = ? WHERE id = ?",
      )
        .bind(result.statusCode, now, now, deliveryId)
        .run();
      return message.ack();
    }
    const last = message.attempts > WEBHOOK_MAX_RETRIES;
    const delaySeconds = webhookRetryDelaySeconds(message.attempts);
    await env.DB.prepare("UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, last_status_code = ?, last_error = ?, next_attempt_at = ?, updated_at = ? WHERE id = ?")
      .bind(last ? "dead" : "failed", result.statusCode, result.error, last ? null : new Date(Date.now() + delaySeconds * 1000).toISOString(), now, deliveryId)
      .run();
    if (last) {
      console.warn(JSON.stringify({ event: "webhook_dead", deliveryId, subscriptionId: row.subscription_id, eventId: row.event_id, error: result.error }));
      return message.ack();
    }
    message.retry({ delaySeconds });
  } catch (error) {
    // D1 (or the secret) failed: the queue tries again; after its last try the message goes to the dead-letter queue.
    console.warn(JSON.stringify({ event: "webhook_delivery_error", deliveryId, attempts: message.attempts, error: String(error) }));
    message.retry({ delaySeconds: webhookRetryDelaySeconds(message.attempts) });
  }
}

/** The dead-letter queue's consumer: a delivery whose every attempt failed before it could be recorded is dead. */
export async function handleWebhookDeadLetters(batch: MessageBatch<WebhookDeliveryMessage>, env: WebhookConsumerEnv): Promise<void> {
  const now = nowIso();
  await env.DB.batch(
    batch.messages.map((message) =>
      env.DB.prepare("UPDATE webhook_deliveries SET status = 'dead', next_attempt_at = NULL, updated_at = ? WHERE id = ? AND status IN ('pending', 'failed')").bind(
        now,
        message.body.deliveryId,
      ),
    ),
  );
  batch.ackAll();
}

export interface DeliveryQuery {
  environmentId: string;
  status?: DeliveryStatus;
  subscriptionId?: string;
  /** Cursor: deliveries strictly older than this `createdAt|id`. */
  before?: string;
  limit: number;
}

/** The deliveries list's cursor: `createdAt|id` of the last delivery of the previous page. */
export const DELIVERY_CURSOR = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z\|whd_[A-Za-z0-9]{1,64}$/;

export async function queryDeliveries(db: D1Database, query: DeliveryQuery): Promise<{ deliveries: WebhookDelivery[]; nextCursor: string | null }> {
  const where = ["environment_id = ?"];
  const params: unknown[] = [query.environmentId];
  if (query.status) {
    where.push("status = ?");
    params.push(query.status);
  }
  if (query.subscriptionId) {
    where.push("subscription_id = ?");
    params.push(query.subscriptionId);
  }
  if (query.before) {
    const older = olderThanCursor(query.before);
    where.push(older.clause);
    params.push(...older.params);
  }
  const { results } = await db
    .prepare(`SELECT * FROM webhook_deliveries WHERE ${where.join(" AND ")} ORDER BY created_at DESC, id DESC LIMIT ?`)
    .bind(...params, query.limit + 1)
    .all<Row>();
  const { page, nextCursor } = keysetPage(results, query.limit);
  return { deliveries: page.map(fromRow), nextCursor };
}

export async function getDelivery(db: D1Database, environmentId: string, id: string): Promise<WebhookDelivery> {
  const row = await db.prepare("SELECT * FROM webhook_deliveries WHERE id = ? AND environment_id = ?").bind(id, environmentId).first<Row>();
  if (!row) throw new ApiError("not_found", `Webhook delivery ${id} not found`);
  return fromRow(row);
}

/**
 * Sends a delivery again: the same body and webhook-id, a fresh signature and timestamp. Any delivery but one the
 * queue holds now: delivered, dead, dropped (once its subscription is enabled again), or pending for 15 minutes or
 * more (lost before it was queued). Not a failed one: its own retry is queued, and a replay would start a second
 * chain of attempts beside it. Its subscription must exist and be enabled.
 */
export async function replayDelivery(env: WebhookPublisherEnv, environmentId: string, id: string): Promise<WebhookDelivery> {
  const delivery = await getDelivery(env.DB, environmentId, id);
  const stalePendingBefore = new Date(Date.now() - STALE_PENDING_MS).toISOString();
  if (delivery.status === "pending" && delivery.updatedAt >= stalePendingBefore) {
    throw new ApiError("conflict", `Webhook delivery ${id} is pending (queued): a pending delivery can be replayed once it has been pending for 15 minutes`);
  }
  if (delivery.status === "failed") {
    throw new ApiError("conflict", `Webhook delivery ${id} failed and is being retried (next attempt at ${delivery.nextAttemptAt ?? "its queue's next turn"}); replay it once it is dead`);
  }
  const subscription = await subscriptionState(env.DB, delivery.subscriptionId);
  if (subscription === "deleted") {
    throw new ApiError("conflict", `Webhook delivery ${id} cannot be replayed: its subscription ${delivery.subscriptionId} was deleted`);
  }
  if (subscription === "disabled") {
    throw new ApiError("conflict", `Webhook delivery ${id} cannot be replayed: its subscription ${delivery.subscriptionId} is disabled (enable it, then replay)`);
  }
  const now = nowIso();
  // Claimed only in the state read above: a concurrent replay that claimed it first sends it.
  const claimed = await env.DB.prepare(
    "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?, last_error = NULL, updated_at = ? WHERE id = ? AND status = ? AND updated_at = ?",
  )
    .bind(now, now, id, delivery.status, delivery.updatedAt)
    .run();
  if (claimed.meta.changes > 0) {
    try {
      await sendDeliveries(env, [id]);
    } catch (failure) {
      const error = failure instanceof DeliveriesNotQueued ? failure.cause : failure;
      // As it was, but for why it is not queued now; a stale pending one, not queued, is dead (as publish leaves it).
      await env.DB.prepare("UPDATE webhook_deliveries SET status = ?, next_attempt_at = NULL, last_error = ?, updated_at = ? WHERE id = ? AND status = 'pending' AND updated_at = ?")
        .bind(
          delivery.status === "pending" ? "dead" : delivery.status,
          `replay not queued: ${String(error)}`.slice(0, ERROR_TEXT_LIMIT),
          nowIso(),
          id,
          now,
        )
        .run();
      throw new ApiError("upstream_error", `Webhook delivery ${id} could not be queued (${String(error)}): try again`);
    }
  }
  return getDelivery(env.DB, environmentId, id);
}
