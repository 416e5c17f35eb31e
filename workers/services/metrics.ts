/**
 * Per-minute metrics of an environment's decisions, rolled up in D1 (`metric_rollups`, schema/0013_observability.sql)
 * from each flushed batch of decision records (services/events.ts) and read back by the admin metrics API. Plain
 * functions taking the database.
 */

/** The records whose metrics are rolled up: the decisions. */
const DECISION_KINDS: ReadonlySet<string> = new Set(["access_check", "surface_decision"]);

/** Rollups are kept this long; older ones are deleted by `pruneRollups`. */
export const ROLLUP_RETENTION_MS = 31 * 24 * 60 * 60 * 1000;

/**
 * Upper bounds (ms) of the stage latency buckets: 1, 1.5, 2, 3, 5, 7 per decade from 0.01 ms to 70 s. A stage duration
 * falls in the first bucket whose bound is at least it; one past the last bound falls in the overflow bucket
 * (index = the array's length). Fixed, so the buckets of every minute add up and percentiles read back from them.
 */
export const LATENCY_BUCKETS_MS: readonly number[] = [-2, -1, 0, 1, 2, 3, 4].flatMap((exponent) =>
  [1, 1.5, 2, 3, 5, 7].map((mantissa) => Number((mantissa * 10 ** exponent).toPrecision(2))),
);

/** The bucket of a duration (ms). */
export function latencyBucket(ms: number): number {
  const index = LATENCY_BUCKETS_MS.findIndex((bound) => ms <= bound);
  return index === -1 ? LATENCY_BUCKETS_MS.length : index;
}

/** Metrics counted once per minute, without a dimension: the series of the metrics API. */
const SERIES_METRICS = {
  decisions: "decisions",
  accessChecks: "access_checks",
  surfaceDecisions: "surface_decisions",
  denied: "denied",
  meterFallbacks: "meter_fallbacks",
  workflowFailures: "workflow_failures",
  offerImpressions: "offer_impressions",
} as const;
type SeriesName = keyof typeof SERIES_METRICS;

// One record cannot make a batch's rollups large: what a record adds per dimension is capped.
const MAX_DIMENSIONS_PER_RECORD = 100;
const MAX_DIMENSION_LENGTH = 200;

/** What the rollups read of a record (a decision record as services/events.ts buffers it). */
export interface RolledUpRecord {
  environmentId: string;
  kind: string;
  /** ISO-8601. */
  createdAt: string;
  outcome?: string | null;
  record: Record<string, unknown>;
}

/** One row's increment: [environmentId, minute, metric, dimension, bucket, count]. */
export type RollupRow = [string, string, string, string, number, number];

/** The start of the minute of an ISO-8601 instant, as stored (`2026-11-25T23:56:00.000Z`). */
export function minuteOf(iso: string): string {
  return new Date(Math.floor(Date.parse(iso) / 60_000) * 60_000).toISOString();
}

const asArray = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);
const asObject = (value: unknown): Record<string, unknown> => (value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : {});
const dimension = (value: unknown): string => String(value ?? "").slice(0, MAX_DIMENSION_LENGTH);

/**
 * The increments of a batch of records, summed per row (decision records only). `offers`: also the impressions per
 * offer and variant (metric `offer_impression`, dimension `[offer, variant]`) — Analytics Engine's funnel reads them;
 * D1's reads the records themselves.
 */
export function rollupsOf(records: readonly RolledUpRecord[], { offers = false } = {}): RollupRow[] {
  const rows = new Map<string, RollupRow>();
  for (const event of records) {
    if (!DECISION_KINDS.has(event.kind)) continue;
    const minute = minuteOf(event.createdAt);
    const add = (metric: string, count: number, dim = "", bucket = 0) => {
      if (count <= 0) return;
      const key = `${event.environmentId}\u0000${minute}\u0000${metric}\u0000${dim}\u0000${bucket}`;
      const row = rows.get(key);
      if (row) row[5] += count;
      else rows.set(key, [event.environmentId, minute, metric, dim, bucket, count]);
    };
    const series = (name: SeriesName, count = 1) => add(SERIES_METRICS[name], count);
    const { record } = event;
    series("decisions");
    series(event.kind === "access_check" ? "accessChecks" : "surfaceDecisions");
    if (event.outcome === "denied") series("denied");
    if (asObject(record.meter).status === "fallback") series("meterFallbacks");
    const failures = asArray(record.workflows).filter((run) => asObject(run).ok === false);
    series("workflowFailures", failures.length);
    for (const run of failures.slice(0, MAX_DIMENSIONS_PER_RECORD)) add("workflow_failure", 1, dimension(asObject(run).kind ?? "unknown"));
    series("offerImpressions", asArray(record.offers).length);
    if (offers) {
      for (const shown of asArray(record.offers).slice(0, MAX_DIMENSIONS_PER_RECORD)) {
        const { offer, variant } = asObject(shown);
        if (typeof offer === "string") add("offer_impression", 1, JSON.stringify([dimension(offer), variant === undefined || variant === null ? null : dimension(variant)]));
      }
    }
    for (const denial of asArray(record.denials).slice(0, MAX_DIMENSIONS_PER_RECORD)) {
      const { featureSlug, property, reason } = asObject(denial);
      add("denial", 1, JSON.stringify([dimension(featureSlug), dimension(property), dimension(reason)]));
    }
    for (const [stage, ms] of Object.entries(asObject(record.timings)).slice(0, MAX_DIMENSIONS_PER_RECORD)) {
      if (typeof ms === "number" && Number.isFinite(ms) && ms >= 0) add("stage", 1, dimension(stage), latencyBucket(ms));
    }
  }
  return [...rows.values()];
}

/**
 * One statement adding the rollups of `records` (null when they have none), for the same D1 batch as the records: the
 * batch is all or nothing, so a record's counts are written exactly when the record's batch is.
 *
 * `ifInserted`: the statement must come right after the INSERT OR IGNORE of its one record, and adds the counts only
 * when that insert stored a row (`changes()` is the row count of the connection's last completed INSERT, UPDATE or
 * DELETE — D1 runs a batch's statements in order on one connection): a record already stored (a derived event id
 * written again, a batch written though reported failed) is not counted twice.
 */
export function rollupStatement(db: D1Database, records: readonly RolledUpRecord[], { ifInserted = false } = {}): D1PreparedStatement | null {
  const rows = rollupsOf(records);
  return rows.length === 0 ? null : upsertRows(db, rows, ifInserted);
}

function upsertRows(db: D1Database, rows: readonly RollupRow[], ifInserted: boolean): D1PreparedStatement {
  return db
    .prepare(
      // An upsert's SELECT needs a WHERE clause (`WHERE true` when unconditional), or SQLite reads its ON as a join
      // constraint.
      `INSERT INTO metric_rollups (environment_id, minute, metric, dimension, bucket, count)
       SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]')
       FROM json_each(?) WHERE ${ifInserted ? "changes() = 1" : "true"}
       ON CONFLICT (environment_id, metric, minute, dimension, bucket) DO UPDATE SET count = metric_rollups.count + excluded.count`,
    )
    .bind(JSON.stringify(rows));
}

// ---------------------------------------------------------------------------------------------------------------
// The rollups of records written on a first attempt (random ids: nothing of theirs can be in D1 yet) are summed in the
// isolate and written every ROLLUP_WRITE_INTERVAL_MS, not with every flush: a batch of a busy isolate adds a few
// dozen rows' increments, and the same rows (this minute's counters and latency buckets) again in the next batch, so
// writing them once per interval costs D1 one statement instead of one per flush. What an isolate holds when it is
// evicted — at most the last interval's counts — is lost: metrics are for charts, the records themselves are not
// affected. The metrics route writes this isolate's rollups first, as the events query flushes its records.

/** How long summed rollups may wait in an isolate before they are written. */
export const ROLLUP_WRITE_INTERVAL_MS = 10_000;
/** Rows an isolate keeps while D1 refuses them; past this, the oldest minutes' increments are dropped (and logged). */
const MAX_HELD_ROLLUP_ROWS = 20_000;

const rowKey = (row: RollupRow) => `${row[0]}\u0000${row[1]}\u0000${row[2]}\u0000${row[3]}\u0000${row[4]}`;

/**
 * Rollup rows summed in an isolate until they are written: D1's (below) and Analytics Engine's
 * (services/analyticsEngine.ts) each keep their own.
 */
export class HeldRollups {
  private readonly rows = new Map<string, RollupRow>();
  private since: number | undefined;

  get size(): number {
    return this.rows.size;
  }

  /** Whether rows have waited `intervalMs` (or any are held, with `force`). */
  due(now: number, { force = false, intervalMs = ROLLUP_WRITE_INTERVAL_MS } = {}): boolean {
    return this.since !== undefined && this.rows.size > 0 && (force || now - this.since >= intervalMs);
  }

  add(rows: readonly RollupRow[]): void {
    for (const row of rows) {
      const key = rowKey(row);
      const held = this.rows.get(key);
      if (held) held[5] += row[5];
      else this.rows.set(key, [...row]);
    }
    if (this.rows.size > 0) this.since ??= Date.now();
    if (this.rows.size > MAX_HELD_ROLLUP_ROWS) {
      // Map order is insertion order: the first rows are the oldest minutes'.
      const dropped = this.rows.size - MAX_HELD_ROLLUP_ROWS;
      for (const key of [...this.rows.keys()].slice(0, dropped)) this.rows.delete(key);
      console.warn(JSON.stringify({ event: "metric_rollups_dropped", rows: dropped }));
    }
  }

  /** Takes the oldest `max` rows (all by default); the rest stay held, due at once. */
  take(max = Infinity): RollupRow[] {
    const taken: RollupRow[] = [];
    for (const [key, row] of this.rows) {
      if (taken.length >= max) break;
      taken.push(row);
      this.rows.delete(key);
    }
    if (this.rows.size === 0) this.since = undefined;
    return taken;
  }
}

const d1Held = new HeldRollups();

/** Sums the rollups of records just written (first attempt, random ids) into this isolate's held rollups. */
export function holdRollupsOf(records: readonly RolledUpRecord[]): void {
  d1Held.add(rollupsOf(records));
}

/**
 * Writes the held rollups when they have waited ROLLUP_WRITE_INTERVAL_MS (or now, with `force`), in one statement.
 * When D1 refuses, they are held again for the next write: never thrown (a flush's other work goes on).
 */
export async function writeHeldRollups(db: D1Database, { force = false } = {}): Promise<void> {
  if (!d1Held.due(Date.now(), { force })) return;
  const rows = d1Held.take();
  try {
    await upsertRows(db, rows, false).run();
  } catch (error) {
    d1Held.add(rows);
    console.warn(JSON.stringify({ event: "metric_rollups_not_written", rows: rows.length, error: String(error) }));
  }
}

/** Deletes the rollups older than ROLLUP_RETENTION_MS (an indexed range of old minutes). */
export async function pruneRollups(db: D1Database, now: number): Promise<void> {
  await db
    .prepare("DELETE FROM metric_rollups WHERE minute < ?")
    .bind(new Date(now - ROLLUP_RETENTION_MS).toISOString())
    .run();
}

/** The start of the step (ISO-8601), and each series' sum over it. */
export type MetricsSeriesPoint = { minute: string } & Record<SeriesName, number>;

/**
 * The width of the series' points for a range: a minute up to 6 hours, 5 minutes up to a day, an hour beyond (a week
 * is 169 points, not 10,081): what a chart can draw, summed by D1 rather than sent minute by minute.
 */
export function stepSecondsFor(rangeMs: number): number {
  if (rangeMs <= 6 * 60 * 60 * 1000) return 60;
  if (rangeMs <= 24 * 60 * 60 * 1000) return 5 * 60;
  return 60 * 60;
}

export interface EnvironmentMetrics {
  from: string;
  to: string;
  /** The width of each series point, in seconds (stepSecondsFor). */
  step: number;
  /** One point per step of the range (steps aligned on multiples of the step since the epoch), empty steps as zeros. */
  series: MetricsSeriesPoint[];
  /** Largest first, at most MAX_LISTED. */
  denials: { featureSlug: string; property: string; reason: string; count: number }[];
  workflowFailures: { kind: string; count: number }[];
  /** Percentiles (ms) read from the buckets: the upper bound of the bucket the percentile falls in. */
  stageLatency: { stage: string; count: number; p50: number; p95: number; p99: number }[];
}

export const MAX_LISTED = 100;

/**
 * The metrics of an environment over [from, to] (ISO-8601), its series per step (stepSecondsFor the range). Every
 * query names its metric first after the environment, as the table's key is ordered: it reads only its metric's rows of
 * the range, not every metric's.
 */
export async function queryMetrics(db: D1Database, query: { environmentId: string; from: string; to: string }): Promise<EnvironmentMetrics> {
  const first = minuteOf(query.from);
  const last = minuteOf(query.to);
  const step = stepSecondsFor(Date.parse(query.to) - Date.parse(query.from));
  const range = "environment_id = ? AND metric = ? AND minute >= ? AND minute <= ?";
  const of = (metric: string, sql: string) => db.prepare(sql).bind(query.environmentId, metric, first, last);
  const seriesMetrics = Object.values(SERIES_METRICS);
  const [series, denials, failures, stages] = await db.batch([
    // Summed per step by D1: the start of the step in seconds since the epoch (minutes are stored as ISO-8601 text).
    // The step is one of stepSecondsFor's integers, written into the SQL: a bound number arrives as a REAL, and the
    // division must be an integer one.
    db
      .prepare(
        `SELECT (CAST(strftime('%s', minute) AS INTEGER) / ${step}) * ${step} AS start, metric, SUM(count) AS count FROM metric_rollups
         WHERE environment_id = ? AND metric IN (${seriesMetrics.map(() => "?").join(", ")}) AND minute >= ? AND minute <= ?
         GROUP BY start, metric`,
      )
      .bind(query.environmentId, ...seriesMetrics, first, last),
    of("denial", `SELECT dimension, SUM(count) AS count FROM metric_rollups WHERE ${range} GROUP BY dimension ORDER BY count DESC, dimension LIMIT ${MAX_LISTED}`),
    of("workflow_failure", `SELECT dimension, SUM(count) AS count FROM metric_rollups WHERE ${range} GROUP BY dimension ORDER BY count DESC, dimension LIMIT ${MAX_LISTED}`),
    of("stage", `SELECT dimension, bucket, SUM(count) AS count FROM metric_rollups WHERE ${range} GROUP BY dimension, bucket ORDER BY dimension, bucket`),
  ]);
  return metricsFromRows(query, {
    series: (series?.results ?? []) as SeriesRow[],
    denials: (denials?.results ?? []) as DimensionRow[],
    failures: (failures?.results ?? []) as DimensionRow[],
    stages: (stages?.results ?? []) as StageRow[],
  });
}

/** The rows a metrics query reads, whichever store answers it (D1's rollups, Analytics Engine's points). */
export type SeriesRow = { start: number; metric: string; count: number };
export type DimensionRow = { dimension: string; count: number };
export type StageRow = { dimension: string; bucket: number; count: number };

/** The series metrics' stored names. */
export const SERIES_METRIC_NAMES: readonly string[] = Object.values(SERIES_METRICS);

/** The metrics of [from, to] from its rows: one point per step, denials and failures listed, stage percentiles. */
export function metricsFromRows(query: { from: string; to: string }, rows: { series: SeriesRow[]; denials: DimensionRow[]; failures: DimensionRow[]; stages: StageRow[] }): EnvironmentMetrics {
  const step = stepSecondsFor(Date.parse(query.to) - Date.parse(query.from));
  return {
    from: query.from,
    to: query.to,
    step,
    series: seriesOf(minuteOf(query.from), minuteOf(query.to), step, rows.series),
    denials: rows.denials.map(({ dimension, count }) => {
      const [featureSlug = "", property = "", reason = ""] = JSON.parse(dimension) as string[];
      return { featureSlug, property, reason, count };
    }),
    workflowFailures: rows.failures.map(({ dimension, count }) => ({ kind: dimension, count })),
    stageLatency: stageLatencyOf(rows.stages),
  };
}

/** One point per step from the step of `first` to the step of `last`; `rows` carry their step's start in seconds. */
function seriesOf(first: string, last: string, step: number, rows: { start: number; metric: string; count: number }[]): MetricsSeriesPoint[] {
  const names = Object.keys(SERIES_METRICS) as SeriesName[];
  const nameOf = new Map(names.map((name) => [SERIES_METRICS[name] as string, name]));
  const stepMs = step * 1000;
  const stepOf = (iso: string) => Math.floor(Date.parse(iso) / stepMs) * stepMs;
  const points = new Map<number, MetricsSeriesPoint>();
  for (let start = stepOf(first); start <= stepOf(last); start += stepMs) {
    points.set(start, { minute: new Date(start).toISOString(), ...(Object.fromEntries(names.map((name) => [name, 0])) as Record<SeriesName, number>) });
  }
  for (const row of rows) {
    const point = points.get(row.start * 1000);
    const name = nameOf.get(row.metric);
    if (point && name) point[name] = row.count;
  }
  return [...points.values()];
}

function stageLatencyOf(rows: { dimension: string; bucket: number; count: number }[]): EnvironmentMetrics["stageLatency"] {
  const byStage = new Map<string, { bucket: number; count: number }[]>();
  for (const row of rows) {
    const buckets = byStage.get(row.dimension) ?? [];
    buckets.push({ bucket: row.bucket, count: row.count });
    byStage.set(row.dimension, buckets);
  }
  return [...byStage].map(([stage, buckets]) => {
    const count = buckets.reduce((sum, bucket) => sum + bucket.count, 0);
    const percentile = (fraction: number): number => {
      const rank = Math.max(1, Math.ceil(fraction * count));
      let seen = 0;
      for (const bucket of buckets) {
        seen += bucket.count;
        if (seen >= rank) return LATENCY_BUCKETS_MS[Math.min(bucket.bucket, LATENCY_BUCKETS_MS.length - 1)]!;
      }
      return LATENCY_BUCKETS_MS.at(-1)!;
    };
    return { stage, count, p50: percentile(0.5), p95: percentile(0.95), p99: percentile(0.99) };
  });
}
