/**
 * The decision log of the production event sink (`EVENT_SINK = "cloudflare"`, services/eventStore.ts): every decision
 * record, whole, into an Iceberg table in R2 through a Cloudflare Pipelines stream — priced per gigabyte, not per row
 * and index as D1 is — read back by the console with R2 SQL (services/r2SqlLog.ts).
 *
 * The path of a record, and why nothing is lost when a part of it is slow:
 * 1. After the response, the isolate's buffered batch (services/events.ts, ≤ 50 records or 250 ms) goes to the
 *    DECISION_LOG_QUEUE as one or a few messages (LogMessage, packed under MAX_MESSAGE_BYTES). Nothing in the hot path
 *    waits for it. When the queue refuses, the batch is written to D1's events table instead (the console reads both).
 * 2. The queue's consumer (`handleDecisionLogBatch`) sends each message's records to the DECISION_LOG pipeline; a
 *    failed send is retried with a growing delay, up to max_retries.
 * 3. A message that kept failing goes to the dead-letter queue, whose consumer writes its records to D1
 *    (`handleDecisionLogDeadLetters`): still in the console, never dropped. Only when D1 refuses too, for ten more
 *    attempts, is it logged and dropped.
 * Delivery is at least once: a retried send may log a record twice under the same id; the reader keeps one.
 */
import { boundedRecordJson, writeBatch, type PendingEvent } from "./events";
import { utf8ByteLength } from "../lib/json";

/** Queue names and retry counts, as wrangler.toml declares them (a test keeps them equal). */
export const DECISION_LOG_QUEUE = "edge-monetization-decision-log";
export const DECISION_LOG_DEAD_LETTER_QUEUE = "edge-monetization-decision-log-dlq";
export const DECISION_LOG_MAX_RETRIES = 5;

/** A logged record: the columns of the log's table (and of D1's events table), its record as JSON text. */
export interface LoggedRecord {
  id: string;
  organization_id: string;
  environment_id: string;
  kind: string;
  /** ISO-8601 with milliseconds, UTC: sorts as text. */
  created_at: string;
  identifier: string | null;
  surface_slug: string | null;
  outcome: string | null;
  record: string;
}

export interface LogMessage {
  records: LoggedRecord[];
}

/** A Pipelines stream binding (wrangler.toml `[[pipelines]]`): `send` resolves once the records are ingested. */
export interface LogPipeline {
  send(records: object[]): Promise<void>;
}

/** Queue messages are at most 128 KB: a record's JSON is bounded under it, and messages are packed up to this size. */
export const MAX_LOGGED_RECORD_BYTES = 96 * 1024;
const MAX_MESSAGE_BYTES = 120 * 1024;

export function loggedRecordOf(event: PendingEvent): LoggedRecord {
  return {
    id: event.id,
    organization_id: event.organizationId,
    environment_id: event.environmentId,
    kind: event.kind,
    created_at: event.createdAt,
    identifier: event.identifier ?? null,
    surface_slug: event.surfaceSlug ?? null,
    outcome: event.outcome ?? null,
    record: boundedRecordJson(event.record, MAX_LOGGED_RECORD_BYTES),
  };
}

/** The batch as queue messages, each under MAX_MESSAGE_BYTES. */
export function logMessagesOf(batch: readonly PendingEvent[]): LogMessage[] {
  const messages: LogMessage[] = [];
  let current: LoggedRecord[] = [];
  let bytes = 0;
  for (const event of batch) {
    const logged = loggedRecordOf(event);
    const size = utf8ByteLength(JSON.stringify(logged)) + 1;
    if (current.length > 0 && bytes + size > MAX_MESSAGE_BYTES) {
      messages.push({ records: current });
      current = [];
      bytes = 0;
    }
    current.push(logged);
    bytes += size;
  }
  if (current.length > 0) messages.push({ records: current });
  return messages;
}

/** Sends a flushed batch to the log's queue; if the queue refuses, the batch goes to D1 (without rollups: the metrics are on Analytics Engine). */
export async function sendToDecisionLog(queue: Queue<LogMessage>, db: D1Database, batch: PendingEvent[]): Promise<void> {
  const messages = logMessagesOf(batch);
  try {
    await queue.sendBatch(messages.map((body) => ({ body, contentType: "json" as const })));
  } catch (error) {
    console.warn(JSON.stringify({ event: "decision_log_not_queued", records: batch.length, error: String(error) }));
    await writeBatch(db, batch, { rollups: false });
  }
}

/** Seconds before the n-th retry of a failed send: 10 s, 20 s, 40 s … (a pipeline that is throttling gets room). */
const retryDelaySeconds = (attempts: number) => Math.min(10 * 2 ** (attempts - 1), 600);

/**
 * The log queue's consumer: each message's records into the pipeline. A deployment without the DECISION_LOG binding
 * (the sink misconfigured) keeps the records in D1 rather than losing them.
 */
export async function handleDecisionLogBatch(batch: MessageBatch<LogMessage>, env: Pick<Env, "DB"> & { DECISION_LOG?: LogPipeline }): Promise<void> {
  for (const message of batch.messages) {
    const records = message.body?.records;
    if (!Array.isArray(records) || records.length === 0) {
      message.ack();
      continue;
    }
    try {
      if (env.DECISION_LOG) await env.DECISION_LOG.send(records);
      else await writeLoggedToD1(env.DB, records);
      message.ack();
    } catch (error) {
      console.warn(JSON.stringify({ event: "decision_log_not_sent", records: records.length, attempts: message.attempts, error: String(error) }));
      message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
    }
  }
}

/** The dead-letter queue's consumer: records the pipeline would not take are kept in D1, where the console reads them too. */
export async function handleDecisionLogDeadLetters(batch: MessageBatch<LogMessage>, env: Pick<Env, "DB">): Promise<void> {
  for (const message of batch.messages) {
    const records = message.body?.records;
    if (!Array.isArray(records) || records.length === 0) {
      message.ack();
      continue;
    }
    try {
      await writeLoggedToD1(env.DB, records);
      message.ack();
    } catch (error) {
      if (message.attempts >= DEAD_LETTER_ATTEMPTS) {
        console.error(JSON.stringify({ event: "decision_log_dropped", records: records.map(({ id, organization_id, kind }) => ({ id, organization_id, kind })), error: String(error) }));
        message.ack();
      } else message.retry({ delaySeconds: 60 });
    }
  }
}

/** wrangler.toml's max_retries + 1 for the dead-letter queue's consumer. */
const DEAD_LETTER_ATTEMPTS = 11;

/** Logged records into D1's events table (INSERT OR IGNORE: a record already there stays one). */
async function writeLoggedToD1(db: D1Database, records: LoggedRecord[]): Promise<void> {
  await db.batch(
    records.map((logged) =>
      db
        .prepare("INSERT OR IGNORE INTO events (id, organization_id, environment_id, kind, created_at, identifier, surface_slug, outcome, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
        .bind(logged.id, logged.organization_id, logged.environment_id, logged.kind, logged.created_at, logged.identifier, logged.surface_slug, logged.outcome, logged.record),
    ),
  );
}
