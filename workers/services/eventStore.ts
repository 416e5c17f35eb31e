/**
 * Where decision records go and where the console reads them from — one interface, two sinks, chosen by the
 * `EVENT_SINK` setting (docs/scale.md, "Decision events"):
 *
 * - `d1` (the default, and what `npm start` runs): records batched into D1's events table with per-minute metric
 *   rollups beside them (services/events.ts, services/metrics.ts), deleted after EVENT_RETENTION_DAYS by the hourly cron
 *   (services/retention.ts). Every record costs D1 rows (the row and its indexes) — fine for a small deployment.
 * - `cloudflare`: each decision writes its metrics as Workers Analytics Engine data points at once
 *   (services/analyticsEngine.ts), and its whole record goes through a queue into a Pipelines stream → an Iceberg table
 *   in R2 (services/decisionLog.ts). The console's metrics and offer impressions come from Analytics Engine's SQL API;
 *   its event list from R2 SQL (services/r2SqlLog.ts), merged with what stays in D1 (audit entries, payment and
 *   usage events, counter updates, redemptions — rare, or written by their own flows — and any decision record the
 *   log's queue dead-lettered).
 *
 * Either way the hot path only buffers: nothing a decision answers waits for a sink.
 */
import { LRUCache } from "lru-cache";
import { ApiError } from "../errors";
import { holdDataPointsOf, queryAnalyticsImpressions, queryAnalyticsMetrics, writeDataPointsLater, writeHeldDataPoints, type AnalyticsSqlSettings } from "./analyticsEngine";
import { writeDecisionLog, type LogMessage, type LogPipeline } from "./decisionLog";
import { bufferEvent, flushEvents, flushEventsAndRollups, queryEvents, queryOfferImpressions, recordEvent, type BatchWriter, type EventInput, type EventKind, type EventQuery, type StoredEvent } from "./events";
import { queryMetrics, ROLLUP_WRITE_INTERVAL_MS, type EnvironmentMetrics } from "./metrics";
import { queryDecisionLog, type R2SqlSettings } from "./r2SqlLog";

export type EventSinkName = "d1" | "cloudflare";

/** The kinds recorded through `record` (buffered decision records): the ones the production sink logs. */
export const LOGGED_KINDS: readonly EventKind[] = ["access_check", "surface_decision", "endpoint"];

export interface ImpressionCount {
  offer: string;
  variant: string | null;
  count: number;
}

export interface EventStore {
  readonly sink: EventSinkName;
  /** A decision record, after the response: buffered, never waited for, never thrown. */
  record(ctx: Pick<ExecutionContext, "waitUntil">, event: EventInput & { id: string }): void;
  /** A page of records, newest first. */
  events(query: EventQuery): Promise<{ events: StoredEvent[]; nextCursor: string | null }>;
  /** An environment's decision metrics over [from, to]. */
  metrics(query: { organizationId: string; environmentId: string; from: string; to: string }): Promise<EnvironmentMetrics>;
  /** Offer impressions over [from, to], per offer and variant. */
  offerImpressions(query: { organizationId: string; environmentId: string; from: string; to: string }): Promise<ImpressionCount[]>;
}

/** The production sink's bindings and settings (workers/env.d.ts: optional, declared only where it is deployed). */
export interface CloudflareSinkEnv {
  EVENT_SINK?: string;
  DECISION_METRICS?: AnalyticsEngineDataset;
  DECISION_LOG_QUEUE?: Queue<LogMessage>;
  DECISION_LOG?: LogPipeline;
  CF_ACCOUNT_ID?: string;
  /** Secret: Account Analytics Read + R2 SQL Read + R2 Data Catalog Read. */
  EVENTS_API_TOKEN?: string;
  ANALYTICS_SQL_API?: string;
  DECISION_METRICS_DATASET?: string;
  R2_SQL_API?: string;
  DECISION_LOG_BUCKET?: string;
  DECISION_LOG_TABLE?: string;
  /** Milliseconds rollup rows wait before they are written as points (10,000 by default, at most 25,000; tests use 0). */
  ANALYTICS_WRITE_INTERVAL_MS?: string;
}

const d1Stores = new WeakMap<D1Database, EventStore>();

export function d1EventStore(db: D1Database): EventStore {
  let store = d1Stores.get(db);
  if (store) return store;
  store = {
    sink: "d1",
    record: (ctx, event) => recordEvent(ctx, db, event),
    events: (query) => queryEvents(db, query),
    metrics: async (query) => {
      // This isolate's records and rollups still in its buffers count too.
      await flushEventsAndRollups(db);
      return queryMetrics(db, query);
    },
    offerImpressions: async (query) => {
      await flushEvents();
      return queryOfferImpressions(db, query);
    },
  };
  d1Stores.set(db, store);
  return store;
}

/** What `EVENT_SINK = "cloudflare"` needs, or the names missing. */
function cloudflareSettings(
  env: CloudflareSinkEnv,
): { analytics: AnalyticsSqlSettings; log: R2SqlSettings; dataset: AnalyticsEngineDataset; queue: Queue<LogMessage>; pipeline: LogPipeline | undefined; pointsIntervalMs: number } | string[] {
  const required = {
    DECISION_METRICS: env.DECISION_METRICS,
    DECISION_LOG_QUEUE: env.DECISION_LOG_QUEUE,
    CF_ACCOUNT_ID: env.CF_ACCOUNT_ID,
    EVENTS_API_TOKEN: env.EVENTS_API_TOKEN,
    DECISION_METRICS_DATASET: env.DECISION_METRICS_DATASET,
    DECISION_LOG_BUCKET: env.DECISION_LOG_BUCKET,
    DECISION_LOG_TABLE: env.DECISION_LOG_TABLE,
  };
  const missing = Object.entries(required)
    .filter(([, value]) => !value)
    .map(([name]) => name);
  if (missing.length > 0) return missing;
  const accountId = env.CF_ACCOUNT_ID!;
  return {
    dataset: env.DECISION_METRICS!,
    queue: env.DECISION_LOG_QUEUE!,
    // Without it (a deployment still creating its stream) the records wait in the queue, whose consumer keeps them in D1.
    pipeline: env.DECISION_LOG,
    pointsIntervalMs: intervalOf(env.ANALYTICS_WRITE_INTERVAL_MS),
    analytics: { apiBase: env.ANALYTICS_SQL_API || "https://api.cloudflare.com/client/v4", accountId, token: env.EVENTS_API_TOKEN!, dataset: env.DECISION_METRICS_DATASET! },
    log: {
      apiBase: env.R2_SQL_API || "https://api.sql.cloudflarestorage.com/api/v1",
      accountId,
      token: env.EVENTS_API_TOKEN!,
      bucket: env.DECISION_LOG_BUCKET!,
      warehouse: `${accountId}_${env.DECISION_LOG_BUCKET!}`,
      table: env.DECISION_LOG_TABLE!,
    },
  };
}

/** `ANALYTICS_WRITE_INTERVAL_MS` as milliseconds (0 to 60 s); anything else is the default. */
function intervalOf(configured: string | undefined): number {
  const ms = Number(configured);
  // At most 25 s: the timer that writes a quiet isolate's rows runs in a request's waitUntil, which lasts about 30 s.
  return configured !== undefined && configured.trim() !== "" && Number.isInteger(ms) && ms >= 0 && ms <= 25_000 ? ms : ROLLUP_WRITE_INTERVAL_MS;
}

/**
 * The production sink. Its writer is one object per queue binding, so the isolate's buffer (services/events.ts) keeps
 * one batch for it: a flushed batch is summed into the metrics' held rows (written to Analytics Engine every few
 * seconds) and sent to the decision log.
 */
const cloudflareWriters = new WeakMap<Queue<LogMessage>, BatchWriter>();

/**
 * Derived event ids (records under an Idempotency-Key) this isolate has logged in the last 10 minutes: a retry that
 * reaches the same isolate is not counted or logged twice. One that reaches another isolate is — the list shows one.
 */
const seenKeyedIds = new LRUCache<string, true>({ max: 10_000, ttl: 10 * 60 * 1000 });

export function cloudflareEventStore(db: D1Database, settings: Exclude<ReturnType<typeof cloudflareSettings>, string[]>): EventStore {
  let writer = cloudflareWriters.get(settings.queue);
  if (!writer) {
    const { dataset, pipeline, queue, pointsIntervalMs } = settings;
    writer = {
      write: async (batch, invocation) => {
        // A retry the meter replayed was counted and logged with its first attempt; so was a keyed retry this isolate
        // logged already (a decision that calls no meter cannot tell it is a retry: its derived id can).
        const fresh = batch.filter((event) => !event.replayed && !(event.idempotent && seenKeyedIds.has(event.id)));
        for (const event of fresh) if (event.idempotent) seenKeyedIds.set(event.id, true);
        if (fresh.length === 0) return;
        holdDataPointsOf(dataset, fresh);
        // Outside an invocation (a query flushing the buffer) the rows wait for one: its budget is what counts.
        if (invocation) writeHeldDataPoints(dataset, { intervalMs: pointsIntervalMs, invocation });
        await writeDecisionLog({ pipeline, queue, db }, fresh);
      },
    };
    cloudflareWriters.set(settings.queue, writer);
  }
  const logWriter = writer;
  return {
    sink: "cloudflare",
    record(ctx, event) {
      bufferEvent(ctx, logWriter, event);
      writeDataPointsLater(ctx, settings.dataset, settings.pointsIntervalMs);
    },
    async events(query) {
      // What stays in D1 and what the log holds are two sorted streams of one order (created_at, id): a page is the
      // first `limit` of both merged, and its cursor works on both. A kind only one of them holds reads that one.
      const inLog = query.kind === undefined || LOGGED_KINDS.includes(query.kind);
      const [fromD1, fromLog] = await Promise.all([queryEvents(db, query), inLog ? queryDecisionLog(settings.log, query, LOGGED_KINDS) : Promise.resolve([])]);
      // A dead-lettered record is in D1 and, once its send succeeded after all, in the log: kept once.
      const byId = new Map<string, StoredEvent>();
      for (const event of [...fromD1.events, ...fromLog]) if (!byId.has(event.id)) byId.set(event.id, event);
      const merged = [...byId.values()].sort((a, b) => (a.createdAt === b.createdAt ? compare(b.id, a.id) : compare(b.createdAt, a.createdAt)));
      const page = merged.slice(0, query.limit);
      // More behind this page: the merge has more, the log answered its limit + 1 rows (counted before duplicates
      // were dropped), or D1 said it has.
      const last = page.at(-1);
      const more = (merged.length > query.limit || fromLog.length > query.limit || fromD1.nextCursor !== null) && last !== undefined;
      return { events: page, nextCursor: more ? `${last.createdAt}|${last.id}` : null };
    },
    metrics: (query) => queryAnalyticsMetrics(settings.analytics, query),
    offerImpressions: (query) => queryAnalyticsImpressions(settings.analytics, query),
  };
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

let warnedMisconfigured = false;

/** The store of each bindings object: the Worker's `env` is one object per isolate, so its settings are read once. */
const storesByEnv = new WeakMap<object, EventStore>();

/**
 * The store `EVENT_SINK` names. A production sink with bindings or settings missing keeps the records in D1 (the hot
 * path must not fail, and nothing is lost) and says so once per isolate; its reads answer 503 naming what is missing.
 */
export function eventStoreOf(env: Pick<Env, "DB"> & CloudflareSinkEnv): EventStore {
  let store = storesByEnv.get(env);
  if (!store) storesByEnv.set(env, (store = storeFor(env)));
  return store;
}

function storeFor(env: Pick<Env, "DB"> & CloudflareSinkEnv): EventStore {
  const sink = (env.EVENT_SINK ?? "d1").trim() || "d1";
  if (sink === "d1") return d1EventStore(env.DB);
  const settings = sink === "cloudflare" ? cloudflareSettings(env) : [`EVENT_SINK (${JSON.stringify(sink)} is neither "d1" nor "cloudflare")`];
  if (!Array.isArray(settings)) return cloudflareEventStore(env.DB, settings);
  if (!warnedMisconfigured) {
    warnedMisconfigured = true;
    console.warn(JSON.stringify({ event: "event_sink_misconfigured", sink, missing: settings }));
  }
  const unavailable = (): never => {
    throw new ApiError("service_unavailable", `The event sink "${sink}" is not configured: ${settings.join(", ")} missing`);
  };
  const d1 = d1EventStore(env.DB);
  return { sink: "d1", record: d1.record, events: async () => unavailable(), metrics: async () => unavailable(), offerImpressions: async () => unavailable() };
}
