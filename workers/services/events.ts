/**
 * Decision records and audit entries. Written after the response (ctx.waitUntil); queried by the admin API.
 */
import { sha256Hex } from "../lib/crypto";
import { keysetPage, olderThanCursor } from "../lib/keysetPage";
import { newId, nowIso } from "../lib/ids";
import { utf8ByteLength } from "../lib/json";
import { publishToTails } from "./liveTail";
import { holdRollupsOf, pruneRollups, rollupStatement, writeHeldRollups } from "./metrics";

/**
 * `action_failed`: one failed run of an action workflow (queue consumer), with its attempt and whether it is retried.
 * `payment`: a subscription or purchase changed lifecycle state (payments queue consumer).
 * `usage`: overage units of an overflow allowance reported to the payment provider, or why they were not (no customer).
 * `offer_redemption`: an offer token redeemed — outcome `started`, `completed` (its checkout was paid) or `failed`.
 */
export type EventKind = "access_check" | "surface_decision" | "counter_update" | "admin" | "endpoint" | "action_failed" | "payment" | "usage" | "offer_redemption";

export interface EventInput {
  id?: string;
  organizationId: string;
  environmentId: string;
  kind: EventKind;
  identifier?: string | null;
  surfaceSlug?: string | null;
  outcome?: string | null;
  record: Record<string, unknown>;
  /**
   * The id is derived (eventIdFor under an Idempotency-Key), not random: the same record may be written again, and
   * its metric rollups must then not count it twice (writeBatch).
   */
  idempotent?: boolean;
  /**
   * A retry the meter answered from its stored result: its first attempt's record was sent already. D1 keeps one row
   * per id anyway; the production sink, which appends, skips it (services/eventStore.ts).
   */
  replayed?: boolean;
}

export interface StoredEvent {
  id: string;
  environmentId: string;
  kind: EventKind;
  createdAt: string;
  identifier: string | null;
  surfaceSlug: string | null;
  outcome: string | null;
  record: Record<string, unknown>;
}

/**
 * The event id of a request: random, or — under an Idempotency-Key — derived from the environment, identity,
 * operation and key, so a retry answers with the first event id and its record is stored once. The operation keeps
 * one key used on two routes (a decision and a counter update) from sharing an event.
 */
/**
 * The key a meter object stores for a request's Idempotency-Key: environments of one type share a user data store
 * (so one object), and surface decisions and credit charges both use `evaluate`; without the scope and the
 * operation, a key reused in another environment or on another route would be answered as someone else's replay.
 * The scope is the environment for what an environment answers (decisions: each deploys its own version), the store
 * for what the store holds alone (an admin credit grant: one balance, whichever environment it is sent through).
 */
export function meterIdempotencyKey(scope: string, operation: string, idempotencyKey: string | undefined): string | undefined {
  return idempotencyKey === undefined ? undefined : `${scope}:${operation}:${idempotencyKey}`;
}

/**
 * A new event id, or — for a request with an Idempotency-Key — one derived from who and what it is about, so a retry
 * writes no second record. Signed-in and anonymous identities of one name are different people: a browser naming an
 * anonymous "alice@example.com" must not take the id of the signed-in Alice's record.
 */
export async function eventIdFor(
  /** The environment — or, for a store-wide operation, the store (`{organizationId}:{store}`) — the key is scoped to. */
  scope: string,
  identity: { identifier: string; authenticated: boolean },
  operation: string,
  idempotencyKey: string | undefined,
): Promise<string> {
  if (idempotencyKey === undefined) return newId("evt");
  const who = `${identity.authenticated ? "u" : "a"}:${identity.identifier}`;
  return derivedEventId(`${scope}:${who}:${operation}:${idempotencyKey}`);
}

/**
 * An event id derived from what the record is about (not random): writing the same record again — a retry, a
 * redelivered message — reuses the id, and INSERT OR IGNORE keeps one row.
 */
export async function derivedEventId(about: string): Promise<string> {
  return `evt_${(await sha256Hex(about)).slice(0, 24)}`;
}

/** A record's JSON is kept under this size, so one request's data can never make a row (or a batch) too big. */
export const MAX_RECORD_BYTES = 256 * 1024;
/** Top-level fields of an oversized record up to this size are kept as they are. */
const KEPT_FIELD_BYTES = 4 * 1024;

/**
 * The record as stored: itself when its JSON fits `limit` (MAX_RECORD_BYTES in D1), otherwise its small top-level fields and a
 * `truncated` marker naming the fields left out and the size of the whole.
 */
export function boundedRecordJson(record: Record<string, unknown>, limit = MAX_RECORD_BYTES): string {
  const whole = JSON.stringify(record);
  const bytes = utf8ByteLength(whole);
  if (bytes <= limit) return whole;
  const kept: Record<string, unknown> = {};
  const dropped: string[] = [];
  for (const [field, value] of Object.entries(record)) {
    if (utf8ByteLength(JSON.stringify(value) ?? "") <= KEPT_FIELD_BYTES) kept[field] = value;
    else dropped.push(field);
  }
  // The runs are what an operator reads a failed record for: a summary stays when the full list had to go.
  if (dropped.includes("workflows") && Array.isArray(record.workflows)) {
    kept.workflows = record.workflows.slice(0, 50).map((run: { slug?: unknown; type?: unknown; ok?: unknown; kind?: unknown }) => ({ slug: run?.slug, type: run?.type, ok: run?.ok, kind: run?.kind }));
  }
  kept.truncated = { bytes, limit, fields: dropped.slice(0, 50) };
  return JSON.stringify(kept);
}

/** A record on its way to D1; its bounded JSON is made once, however many times a failed batch is retried in parts. */
export type PendingEvent = EventInput & { id: string; createdAt: string; recordJson?: string };

function insertStatement(db: D1Database, event: PendingEvent): D1PreparedStatement {
  return db
    // OR IGNORE: a retried request with an Idempotency-Key reuses its event id, and one record per request is enough.
    .prepare("INSERT OR IGNORE INTO events (id, organization_id, environment_id, kind, created_at, identifier, surface_slug, outcome, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
    .bind(
      event.id,
      event.organizationId,
      event.environmentId,
      event.kind,
      event.createdAt,
      event.identifier ?? null,
      event.surfaceSlug ?? null,
      event.outcome ?? null,
      (event.recordJson ??= boundedRecordJson(event.record)),
    );
}

/** Writes one event now (audit entries of admin writes, which are rare and must not wait). */
export async function insertEvent(db: D1Database, event: EventInput): Promise<string> {
  const id = event.id ?? newId("evt");
  await insertStatement(db, { ...event, id, createdAt: nowIso() }).run();
  return id;
}

/** Writes events now, in one D1 batch: all of them or none. */
export async function insertEvents(db: D1Database, events: EventInput[]): Promise<void> {
  if (events.length === 0) return;
  const createdAt = nowIso();
  await db.batch(events.map((event) => insertStatement(db, { ...event, id: event.id ?? newId("evt"), createdAt })));
}

// ---------------------------------------------------------------------------------------------------------------
// Decision records are buffered per isolate and written in batches: one D1 write per decision was the largest
// cost of the hot path (the benchmark's access check ran at a third of its speed). A batch is flushed when it is
// full, or by a short timer kept alive with waitUntil, so a record reaches D1 within FLUSH_DELAY_MS of its
// decision; the admin events query flushes this isolate's buffer first.
//
// Each flush also rolls the batch's decisions up into per-minute metrics (services/metrics.ts: summed in the isolate and
// written every few seconds, or in the same D1 batch as a record D1 may already hold), and sends the decisions of
// tailed environments to their live tails (services/liveTail.ts).

const MAX_BATCH = 50;
const FLUSH_DELAY_MS = 250;

/**
 * Where a flushed batch goes: D1 with its metric rollups (the embedded default, `d1Writer`), or the production sink's
 * decision log (services/decisionLog.ts). Whichever it is, the batch also goes to its environments' live tails.
 */
export interface BatchWriter {
  /** `invocation`: the execution context the flush runs in, when it runs in one (a per-invocation budget keys on it). */
  write(batch: PendingEvent[], invocation?: object): Promise<void>;
}

let pending: PendingEvent[] = [];
let pendingWriter: BatchWriter | undefined;
let timerArmed = false;

/** The embedded default: records and their metric rollups into D1 (one writer per database, so one buffer). */
const d1Writers = new WeakMap<D1Database, BatchWriter>();
export function d1Writer(db: D1Database): BatchWriter {
  let writer = d1Writers.get(db);
  if (!writer) {
    writer = { write: async (batch) => void (await Promise.all([writeBatch(db, batch).then(() => writeHeldRollups(db)), pruneRollupsNowAndThen(db)])) };
    d1Writers.set(db, writer);
  }
  return writer;
}

export async function flushEvents(invocation?: object): Promise<void> {
  if (pending.length === 0 || !pendingWriter) return;
  const batch = pending;
  const writer = pendingWriter;
  pending = [];
  await Promise.all([writer.write(batch, invocation), publishToTails(batch)]);
}

/** Writes this isolate's buffered records and its held metric rollups now (the metrics query reads them next). */
export async function flushEventsAndRollups(db: D1Database): Promise<void> {
  await flushEvents();
  await writeHeldRollups(db, { force: true });
}

/** Rollups past their retention are deleted at most once an hour per isolate (the first flush of an isolate does it). */
const PRUNE_INTERVAL_MS = 60 * 60 * 1000;
let lastPrunedAt: number | undefined;

async function pruneRollupsNowAndThen(db: D1Database): Promise<void> {
  const now = Date.now();
  if (lastPrunedAt !== undefined && now - lastPrunedAt < PRUNE_INTERVAL_MS) return;
  lastPrunedAt = now;
  try {
    await pruneRollups(db, now);
  } catch (error) {
    // The next hour's prune takes them: old rollups cost space, never correctness.
    console.warn(JSON.stringify({ event: "metric_rollups_not_pruned", error: String(error) }));
  }
}

/**
 * Writes records of many tenants in one D1 batch (all or nothing). When the batch fails, its halves are written apart,
 * and a failing half is split again, down to the single record D1 refuses — so one tenant's record costs no other its
 * place. The retries of one flush are bounded (MAX_CALLS_PER_FLUSH D1 calls: a few bad records are isolated, an
 * outage is not hammered); records still unwritten then are logged, ids and tenants, in one dead-letter line.
 *
 * A record's metric rollups are counted once it is written, and once only — however D1 answered (writeStatements).
 */
async function writeBatch(db: D1Database, batch: PendingEvent[]): Promise<void> {
  const budget = { calls: MAX_CALLS_PER_FLUSH };
  const unwritten: PendingEvent[] = [];
  let lastError: unknown;
  const write = async (part: PendingEvent[], attempt: number): Promise<void> => {
    if (budget.calls <= 0) {
      unwritten.push(...part);
      return;
    }
    budget.calls--;
    try {
      const { statements, held } = writeStatements(db, part, attempt);
      await db.batch(statements);
      holdRollupsOf(held);
    } catch (error) {
      lastError = error;
      if (part.length === 1) {
        unwritten.push(...part);
        return;
      }
      const middle = Math.ceil(part.length / 2);
      await write(part.slice(0, middle), attempt + 1);
      await write(part.slice(middle), attempt + 1);
    }
  };
  await write(batch, 0);
  if (unwritten.length > 0) {
    console.error(
      JSON.stringify({
        event: "decision_record_not_written",
        records: unwritten.map(({ id, organizationId, kind }) => ({ id, organizationId, kind })),
        error: String(lastError),
      }),
    );
  }
}

/**
 * The statements writing `part` (its `attempt`: 0 the whole batch, then each split after a failure), each record's
 * INSERT OR IGNORE, and how its metric rollups are counted — once per record D1 holds, whatever D1 answered before:
 * - a record with a random id, on the first attempt: nothing of it can be in D1 yet; once the batch is written its
 *   rollups are summed into the isolate's held rollups (`held`; services/metrics.ts writes them every few seconds);
 * - the same on the attempt after a failed first one: D1 may have committed the first batch all the same (and reported
 *   it failed) — with no rollups in it — so the part's rollups are added in the same batch, unconditionally;
 * - a record with a derived id (a replayed request may have stored it), and any record on later attempts (the previous
 *   attempt carried its rollups and may have been committed): its rollups follow its insert, guarded by it
 *   (`changes() = 1`), one more statement per record, only there.
 */
function writeStatements(db: D1Database, part: readonly PendingEvent[], attempt: number): { statements: D1PreparedStatement[]; held: PendingEvent[] } {
  const statements: D1PreparedStatement[] = [];
  const fresh: PendingEvent[] = [];
  for (const event of part) {
    statements.push(insertStatement(db, event));
    if (event.idempotent || attempt > 1) {
      const guarded = rollupStatement(db, [event], { ifInserted: true });
      if (guarded) statements.push(guarded);
    } else fresh.push(event);
  }
  if (attempt === 0) return { statements, held: fresh };
  const rollups = rollupStatement(db, fresh);
  return { statements: rollups ? [...statements, rollups] : statements, held: [] };
}

/** D1 calls one flush may make while isolating refused records (a batch is at most MAX_BATCH records). */
const MAX_CALLS_PER_FLUSH = 24;

/** Queues a decision record for D1; never delays the response (the caller's waitUntil keeps the flush alive). */
export function recordEvent(ctx: Pick<ExecutionContext, "waitUntil">, db: D1Database, event: EventInput & { id: string }): void {
  bufferEvent(ctx, d1Writer(db), event);
}

/** Queues a decision record for `writer`, flushed when the batch is full or FLUSH_DELAY_MS after its first record. */
export function bufferEvent(ctx: Pick<ExecutionContext, "waitUntil">, writer: BatchWriter, event: EventInput & { id: string }): void {
  // One buffer per isolate: a record for another writer (a test, a changed setting) first sends the batch to its own.
  if (pendingWriter !== writer && pending.length > 0) ctx.waitUntil(flushEvents(ctx));
  pending.push({ ...event, createdAt: nowIso() });
  pendingWriter = writer;
  if (pending.length >= MAX_BATCH) {
    ctx.waitUntil(flushEvents(ctx));
  } else if (!timerArmed) {
    timerArmed = true;
    ctx.waitUntil(
      new Promise((resolve) => setTimeout(resolve, FLUSH_DELAY_MS)).then(() => {
        timerArmed = false;
        return flushEvents(ctx);
      }),
    );
  }
}

export interface EventQuery {
  organizationId: string;
  environmentId?: string;
  kind?: EventKind;
  identifier?: string;
  surfaceSlug?: string;
  outcome?: string;
  from?: string;
  to?: string;
  /** Cursor: return events strictly older than this `createdAt|id`. */
  before?: string;
  limit: number;
}

export async function queryEvents(db: D1Database, query: EventQuery): Promise<{ events: StoredEvent[]; nextCursor: string | null }> {
  await flushEvents();
  const where = ["organization_id = ?"];
  const params: unknown[] = [query.organizationId];
  const add = (clause: string, value: unknown) => {
    where.push(clause);
    params.push(value);
  };
  if (query.environmentId) add("environment_id = ?", query.environmentId);
  if (query.kind) add("kind = ?", query.kind);
  if (query.identifier) add("identifier = ?", query.identifier);
  if (query.surfaceSlug) add("surface_slug = ?", query.surfaceSlug);
  if (query.outcome) add("outcome = ?", query.outcome);
  if (query.from) add("created_at >= ?", query.from);
  if (query.to) add("created_at <= ?", query.to);
  if (query.before) {
    const older = olderThanCursor(query.before);
    where.push(older.clause);
    params.push(...older.params);
  }
  const { results } = await db
    .prepare(`SELECT * FROM events WHERE ${where.join(" AND ")} ORDER BY created_at DESC, id DESC LIMIT ?`)
    .bind(...params, query.limit + 1)
    .all<{ id: string; environment_id: string; kind: EventKind; created_at: string; identifier: string | null; surface_slug: string | null; outcome: string | null; record: string }>();
  const { page, nextCursor } = keysetPage(results, query.limit);
  return {
    events: page.map((row) => ({
      id: row.id,
      environmentId: row.environment_id,
      kind: row.kind,
      createdAt: row.created_at,
      identifier: row.identifier,
      surfaceSlug: row.surface_slug,
      outcome: row.outcome,
      record: JSON.parse(row.record) as Record<string, unknown>,
    })),
    nextCursor,
  };
}

/**
 * Offer impressions in D1: the `offers` entries of surface decision records (decision stage: `[{group, slot, offer,
 * variant, tokenId, amount, currency}]`, counted with json_each) over [from, to], per offer and variant.
 */
export async function queryOfferImpressions(
  db: D1Database,
  query: { organizationId: string; environmentId: string; from: string; to: string },
): Promise<{ offer: string; variant: string | null; count: number }[]> {
  const { results } = await db
    .prepare(
      `SELECT json_extract(shown.value, '$.offer') AS offer, json_extract(shown.value, '$.variant') AS variant, COUNT(*) AS count
       FROM events e, json_each(e.record, '$.offers') shown
       WHERE e.organization_id = ? AND e.environment_id = ? AND e.created_at >= ? AND e.created_at <= ? AND e.kind = 'surface_decision'
         AND json_type(e.record, '$.offers') = 'array'
       GROUP BY 1, 2`,
    )
    .bind(query.organizationId, query.environmentId, query.from, query.to)
    .all<{ offer: string | null; variant: string | null; count: number }>();
  return results.filter((row): row is { offer: string; variant: string | null; count: number } => typeof row.offer === "string");
}
