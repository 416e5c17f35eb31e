/**
 * The webhooks queue's consumer: one message per delivery. It signs the delivery's body with its subscription's
 * secret as Standard Webhooks defines (webhook-id = the event id, the same on every retry and replay; webhook-timestamp;
 * webhook-signature `v1,<base64 HMAC-SHA256>`), posts it, and records the attempt. A 2xx is delivered; anything else is
 * retried by the queue with a growing delay until the last attempt, after which the delivery is dead (listed, and
 * replayable). A subscription deleted or disabled meanwhile drops its delivery.
 */
import { Webhook } from "standardwebhooks";
import { ApiError } from "../errors";
import { nowIso } from "../lib/ids";
import { sendDeliveries, type WebhookDeliveryMessage, type WebhookPublisherEnv } from "./publish";
import { endpointOf } from "./subscriptions";

/** wrangler.toml holds the same names and max_retries (a test keeps them equal). */
export const WEBHOOK_QUEUE = "edge-monetization-webhooks";
export const WEBHOOK_DEAD_LETTER_QUEUE = "edge-monetization-webhooks-dlq";
export const WEBHOOK_MAX_RETRIES = 8;
/** A receiver gets this long to answer. */
export const DELIVERY_TIMEOUT_MS = 10_000;
const FIRST_RETRY_DELAY_SECONDS = 30;
const MAX_RETRY_DELAY_SECONDS = 3_600;
/** What is kept of a receiver's error answer. */
const ERROR_TEXT_LIMIT = 500;

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

/** The headers of one signed delivery (the `standardwebhooks` library signs). */
export function signedHeaders(secret: string, eventId: string, body: string, at: Date): Record<string, string> {
  return {
    "content-type": "application/json",
    "user-agent": "edge-monetization-webhooks/1",
    "webhook-id": eventId,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": new Webhook(secret).sign(eventId, at, body),
  };
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
    const text = (await response.text().catch(() => "")).slice(0, ERROR_TEXT_LIMIT);
    return { delivered: false, statusCode: response.status, error: `HTTP ${response.status}${text ? `: ${text}` : ""}` };
  } catch (error) {
    const timedOut = error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
    return { delivered: false, statusCode: null, error: timedOut ? `no answer within ${DELIVERY_TIMEOUT_MS / 1000} s` : String(error).slice(0, ERROR_TEXT_LIMIT) };
  }
}

export interface WebhookConsumerEnv {
  DB: D1Database;
  SECRETS_KEY: string;
}

/** The consumer of the webhooks queue. */
export async function handleWebhookBatch(batch: MessageBatch<WebhookDeliveryMessage>, env: WebhookConsumerEnv): Promise<void> {
  await Promise.all(batch.messages.map((message) => deliverMessage(message, env)));
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
    const result = await attempt(endpoint.url, signedHeaders(endpoint.secret, row.event_id, body, new Date()), body);
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
    const [createdAt = "", id = ""] = query.before.split("|");
    where.push("(created_at < ? OR (created_at = ? AND id < ?))");
    params.push(createdAt, createdAt, id);
  }
  const { results } = await db
    .prepare(`SELECT * FROM webhook_deliveries WHERE ${where.join(" AND ")} ORDER BY created_at DESC, id DESC LIMIT ?`)
    .bind(...params, query.limit + 1)
    .all<Row>();
  const page = results.slice(0, query.limit);
  const last = page[page.length - 1];
  return { deliveries: page.map(fromRow), nextCursor: results.length > query.limit && last ? `${last.created_at}|${last.id}` : null };
}

export async function getDelivery(db: D1Database, environmentId: string, id: string): Promise<WebhookDelivery> {
  const row = await db.prepare("SELECT * FROM webhook_deliveries WHERE id = ? AND environment_id = ?").bind(id, environmentId).first<Row>();
  if (!row) throw new ApiError("not_found", `Webhook delivery ${id} not found`);
  return fromRow(row);
}

/** Sends a delivered or dead delivery again: the same body and webhook-id, a fresh signature and timestamp. */
export async function replayDelivery(env: WebhookPublisherEnv, environmentId: string, id: string): Promise<WebhookDelivery> {
  const delivery = await getDelivery(env.DB, environmentId, id);
  if (delivery.status !== "delivered" && delivery.status !== "dead") {
    throw new ApiError("conflict", `Webhook delivery ${id} is ${delivery.status}: only delivered or dead deliveries can be replayed`);
  }
  const now = nowIso();
  const claimed = await env.DB.prepare(
    "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?, last_error = NULL, updated_at = ? WHERE id = ? AND status IN ('delivered', 'dead')",
  )
    .bind(now, now, id)
    .run();
  // A concurrent replay claimed it first: it sends.
  if (claimed.meta.changes > 0) {
    try {
      await sendDeliveries(env, [id]);
    } catch (error) {
      await env.DB.prepare("UPDATE webhook_deliveries SET status = ?, updated_at = ? WHERE id = ?").bind(delivery.status, nowIso(), id).run();
      throw new ApiError("upstream_error", `Webhook delivery ${id} could not be queued (${String(error)}): try again`);
    }
  }
  return getDelivery(env.DB, environmentId, id);
}
