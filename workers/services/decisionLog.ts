/**
 * The decision log of the production event sink (`EVENT_SINK = "cloudflare"`, services/eventStore.ts): every decision
 * record, whole, into an Iceberg table in R2 through a Cloudflare Pipelines stream — priced per gigabyte, not per row
 * and index as D1 is — read back by the console with R2 SQL (services/r2SqlLog.ts).
 *
 * The path of a record, and why nothing is lost when a part of it is slow or down:
 * 1. After the response, the isolate's buffered batch (services/events.ts, ≤ 50 records or 250 ms) is sent to the
 *    DECISION_LOG stream (`send` resolves once the stream has taken it), in requests under MAX_SEND_BYTES. Nothing in
 *    the hot path waits for it.
 * 2. Records the stream refused go to the DECISION_LOG_QUEUE (messages under MAX_MESSAGE_BYTES), whose consumer
 *    (`handleDecisionLogBatch`) sends them again, retrying with a growing delay up to max_retries; a message that
 *    kept failing goes to the dead-letter queue, whose consumer writes its records to D1
 *    (`handleDecisionLogDeadLetters`) — still in the console, which reads D1 beside the log.
 * 3. Records the queue refused too are written to D1 at once.
 * Delivery is at least once: a send that failed after the stream took it logs a record twice under one id; the
 * reader keeps one. Steady state costs no queue operation: the queue carries only what the stream refused.
 */
import { boundedRecordJson, type PendingEvent } from "./events";
import { decodeBase64, encodeBase64 } from "../lib/base64";
import { groupsWithin } from "../lib/batches";
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
  /** The record's JSON, or above COMPRESS_ABOVE_BYTES `gz:` + its gzip in base64 (unpackRecordText reads both). */
  record: string;
}

/**
 * Records above this size are logged gzip-compressed: the stream bills the bytes it takes, uncompressed, and a record
 * of a large configuration is mostly its features' states, repeated shapes that compress many times over (the
 * benchmark's 200-feature decision: 62 KB of JSON).
 */
export const COMPRESS_ABOVE_BYTES = 4 * 1024;
const COMPRESSED_PREFIX = "gz:";

async function gzip(text: string): Promise<Uint8Array> {
  const stream = new Blob([text]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A record's JSON as logged: itself, or compressed when large. */
export async function packRecordText(json: string): Promise<string> {
  const bytes = utf8ByteLength(json);
  if (bytes <= COMPRESS_ABOVE_BYTES) return json;
  const packed = COMPRESSED_PREFIX + encodeBase64(await gzip(json));
  // Random-looking content (ids, signatures) does not compress: it is logged as it is.
  return packed.length < bytes ? packed : json;
}

/** A logged record's JSON text, whether it was logged compressed or not. */
export async function unpackRecordText(text: string): Promise<string> {
  if (!text.startsWith(COMPRESSED_PREFIX)) return text;
  const stream = new Blob([decodeBase64(text.slice(COMPRESSED_PREFIX.length))]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Response(stream).text();
}

export interface LogMessage {
  records: LoggedRecord[];
}

/** A Pipelines stream binding (wrangler.toml `[[pipelines]]`): `send` resolves once the records are ingested. */
export interface LogPipeline {
  send(records: object[]): Promise<void>;
}

/** Queue messages are at most 128 KB: a record's JSON (escaped) is bounded under it, and messages are packed up to this size. */
export const MAX_LOGGED_RECORD_BYTES = 96 * 1024;
const MAX_MESSAGE_BYTES = 120 * 1024;
/** A stream takes at most 1 MB per request. */
const MAX_SEND_BYTES = 900 * 1024;

export async function loggedRecordOf(event: PendingEvent): Promise<LoggedRecord> {
  return {
    id: event.id,
    organization_id: event.organizationId,
    environment_id: event.environmentId,
    kind: event.kind,
    created_at: event.createdAt,
    identifier: event.identifier ?? null,
    surface_slug: event.surfaceSlug ?? null,
    outcome: event.outcome ?? null,
    record: await packRecordText(loggedRecordJson(event.record)),
  };
}

/**
 * The record's JSON, bounded so that it stays under MAX_LOGGED_RECORD_BYTES once escaped as a string inside the
 * message (quotes and escapes grow it): bounded again, tighter, while it does not; a minimal marker at last.
 */
function loggedRecordJson(record: Record<string, unknown>): string {
  let limit = MAX_LOGGED_RECORD_BYTES;
  for (let attempt = 0; attempt < 4; attempt++) {
    const json = boundedRecordJson(record, limit);
    const escaped = utf8ByteLength(JSON.stringify(json));
    if (escaped <= MAX_LOGGED_RECORD_BYTES) return json;
    limit = Math.floor(((limit * MAX_LOGGED_RECORD_BYTES) / escaped) * 0.9);
  }
  return JSON.stringify({ truncated: { limit: MAX_LOGGED_RECORD_BYTES, fields: Object.keys(record).slice(0, 50) } });
}

/** Records in groups whose JSON stays under `maxBytes`, in order. */
const packed = (records: readonly LoggedRecord[], maxBytes: number): LoggedRecord[][] => groupsWithin(records, (logged) => utf8ByteLength(JSON.stringify(logged)) + 1, { maxBytes });

/** The batch as queue messages, each under MAX_MESSAGE_BYTES. */
export async function logMessagesOf(batch: readonly PendingEvent[]): Promise<LogMessage[]> {
  return packed(await Promise.all(batch.map(loggedRecordOf)), MAX_MESSAGE_BYTES).map((records) => ({ records }));
}

/**
 * Writes a flushed batch to the log: to the stream, what it refused to the queue, what the queue refused to D1. Never
 * thrown: a failure is logged, and only a record D1 refused as well is lost.
 */
export async function writeDecisionLog(sinks: { pipeline?: LogPipeline; queue: Queue<LogMessage>; db: D1Database }, batch: readonly PendingEvent[]): Promise<void> {
  const records = await Promise.all(batch.map(loggedRecordOf));
  const refused: LoggedRecord[] = [];
  if (sinks.pipeline) {
    const pipeline = sinks.pipeline;
    await Promise.all(
      packed(records, MAX_SEND_BYTES).map((group) =>
        pipeline.send(group).catch((error: unknown) => {
          console.warn(JSON.stringify({ event: "decision_log_not_sent", records: group.length, error: String(error) }));
          refused.push(...group);
        }),
      ),
    );
  } else refused.push(...records);
  if (refused.length === 0) return;
  const unqueued: LoggedRecord[] = [];
  await Promise.all(
    packed(refused, MAX_MESSAGE_BYTES).map((group) =>
      sinks.queue.send({ records: group }, { contentType: "json" }).catch((error: unknown) => {
        console.warn(JSON.stringify({ event: "decision_log_not_queued", records: group.length, error: String(error) }));
        unqueued.push(...group);
      }),
    ),
  );
  if (unqueued.length === 0) return;
  try {
    await writeLoggedToD1(sinks.db, unqueued);
  } catch (error) {
    console.error(JSON.stringify({ event: "decision_record_not_written", records: unqueued.map(({ id, organization_id, kind }) => ({ id, organizationId: organization_id, kind })), error: String(error) }));
  }
}

/** Seconds before the n-th retry of a failed send: 10 s, 20 s, 40 s … (a pipeline that is throttling gets room). */
const retryDelaySeconds = (attempts: number) => Math.min(10 * 2 ** (attempts - 1), 600);

/** Runs `deliver` on each message's records: acked when it succeeds (or holds none), `failed` decides otherwise. */
async function eachLogMessage(batch: MessageBatch<LogMessage>, deliver: (records: LoggedRecord[]) => Promise<void>, failed: (message: Message<LogMessage>, records: LoggedRecord[], error: unknown) => void): Promise<void> {
  for (const message of batch.messages) {
    const records = message.body?.records;
    if (!Array.isArray(records) || records.length === 0) {
      message.ack();
      continue;
    }
    try {
      await deliver(records);
      message.ack();
    } catch (error) {
      failed(message, records, error);
    }
  }
}

/**
 * The log queue's consumer: each message's records into the pipeline, retried with a growing delay. A deployment
 * without the DECISION_LOG binding (the sink misconfigured) keeps the records in D1 rather than losing them.
 */
export async function handleDecisionLogBatch(batch: MessageBatch<LogMessage>, env: Pick<Env, "DB"> & { DECISION_LOG?: LogPipeline }): Promise<void> {
  const pipeline = env.DECISION_LOG;
  await eachLogMessage(
    batch,
    (records) => (pipeline ? pipeline.send(records) : writeLoggedToD1(env.DB, records)),
    (message, records, error) => {
      console.warn(JSON.stringify({ event: "decision_log_not_sent", records: records.length, attempts: message.attempts, error: String(error) }));
      message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
    },
  );
}

/** The dead-letter queue's consumer: records the pipeline would not take are kept in D1, where the console reads them too. */
export async function handleDecisionLogDeadLetters(batch: MessageBatch<LogMessage>, env: Pick<Env, "DB">): Promise<void> {
  await eachLogMessage(
    batch,
    (records) => writeLoggedToD1(env.DB, records),
    (message, records, error) => {
      if (message.attempts < DEAD_LETTER_ATTEMPTS) return message.retry({ delaySeconds: 60 });
      console.error(JSON.stringify({ event: "decision_log_dropped", records: records.map(({ id, organization_id, kind }) => ({ id, organization_id, kind })), error: String(error) }));
      message.ack();
    },
  );
}

/** wrangler.toml's max_retries + 1 for the dead-letter queue's consumer. */
export const DEAD_LETTER_ATTEMPTS = 11;

/** Logged records into D1's events table, their JSON as D1 keeps it (INSERT OR IGNORE: a record already there stays one). */
async function writeLoggedToD1(db: D1Database, records: LoggedRecord[]): Promise<void> {
  const texts = await Promise.all(records.map((logged) => unpackRecordText(String(logged.record)).catch(() => JSON.stringify({ unreadable: true }))));
  await db.batch(
    records.map((logged, index) =>
      db
        .prepare("INSERT OR IGNORE INTO events (id, organization_id, environment_id, kind, created_at, identifier, surface_slug, outcome, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
        .bind(logged.id, logged.organization_id, logged.environment_id, logged.kind, logged.created_at, logged.identifier, logged.surface_slug, logged.outcome, texts[index]!),
    ),
  );
}
