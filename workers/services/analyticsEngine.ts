/**
 * Decision metrics on Workers Analytics Engine — the metrics half of the production event sink (services/eventStore.ts,
 * `EVENT_SINK = "cloudflare"`). The isolate sums its decisions into the same per-minute rollup rows as D1's metrics
 * (services/metrics.ts rollupsOf, plus impressions per offer) and writes them as data points every
 * ROLLUP_WRITE_INTERVAL_MS: a data point is priced like a decision ($0.25 per million), so one per decision would cost
 * most of what the decision does; one per row per ten seconds is a few per thousand decisions on a busy isolate. The
 * admin metrics and the offer funnel read them back with Analytics Engine's SQL API, in the shapes D1 answers.
 *
 * A point is one rollup row: `index1` its environment (Analytics Engine samples per index, so a busy environment is
 * sampled without touching the others; every sum weighs a row by `_sample_interval`), `blob1` the metric, `blob2` its
 * minute (`YYYY-MM-DD hh:mm:ss`, UTC — what toDateTime reads), `blob3` the dimension, `double1` the count, `double2`
 * the latency bucket. Environment ids are unique across the platform, and the admin routes check that the caller may
 * read the environment before anything is queried.
 *
 * Analytics Engine takes 25 points per invocation: the writes of one invocation (its flushes, and the timer a quiet
 * isolate's rows wait on) share a budget of MAX_POINTS_PER_FLUSH, the rest waiting for the next. What an isolate holds
 * when it is evicted — at most the last interval's counts — is lost, as with D1's rollups: metrics are for charts; the
 * records themselves go to the decision log.
 */
import { ApiError } from "../errors";
import { HeldRollups, MAX_LISTED, metricsFromRows, minuteOf, ROLLUP_WRITE_INTERVAL_MS, rollupsOf, SERIES_METRIC_NAMES, stepSecondsFor, type DimensionRow, type EnvironmentMetrics, type RolledUpRecord, type RollupRow, type SeriesRow, type StageRow } from "./metrics";

/** Points one invocation writes (Analytics Engine accepts 25 per invocation; the flushes run in requests'). */
export const MAX_POINTS_PER_FLUSH = 20;

/** Points written so far by each invocation (its execution context), for the budget above. */
const writtenBy = new WeakMap<object, number>();

/** Rows held per dataset binding (one per deployment; tests bind their own). */
const heldPerDataset = new WeakMap<AnalyticsEngineDataset, HeldRollups>();

function heldFor(dataset: AnalyticsEngineDataset): HeldRollups {
  let held = heldPerDataset.get(dataset);
  if (!held) heldPerDataset.set(dataset, (held = new HeldRollups()));
  return held;
}

/** `2026-11-26T07:01:00.000Z` → `2026-11-26 07:01:00`. */
const pointMinute = (isoMinute: string) => `${isoMinute.slice(0, 10)} ${isoMinute.slice(11, 19)}`;

/** A rollup row as a data point. Pure: the tests read them as written. */
export function dataPointOf(row: RollupRow): AnalyticsEngineDataPoint {
  const [environmentId, minute, metric, dimension, bucket, count] = row;
  return { indexes: [environmentId], blobs: [metric, pointMinute(minute), dimension], doubles: [count, bucket] };
}

/**
 * Rows held with no flush to come (a quiet isolate) would wait for the next decision: the first record after the
 * dataset's rows were written arms a timer in its request's `waitUntil`, which writes whatever is held once the
 * interval has passed (within that request's budget).
 */
const timerArmedAt = new WeakMap<AnalyticsEngineDataset, number>();
/** A timer older than this never fired (its request's context was cancelled): the next record arms another. */
const STALE_TIMER_MS = 35_000;

export function writeDataPointsLater(ctx: Pick<ExecutionContext, "waitUntil">, dataset: AnalyticsEngineDataset, intervalMs = ROLLUP_WRITE_INTERVAL_MS): void {
  const armedAt = timerArmedAt.get(dataset);
  const now = Date.now();
  if (armedAt !== undefined && now - armedAt < intervalMs + STALE_TIMER_MS) return;
  timerArmedAt.set(dataset, now);
  ctx.waitUntil(
    new Promise((resolve) => setTimeout(resolve, intervalMs)).then(() => {
      if (timerArmedAt.get(dataset) === now) timerArmedAt.delete(dataset);
      writeHeldDataPoints(dataset, { force: true, invocation: ctx });
    }),
  );
}

/** Sums a flushed batch's decisions into the dataset's held rows. */
export function holdDataPointsOf(dataset: AnalyticsEngineDataset, records: readonly RolledUpRecord[]): void {
  heldFor(dataset).add(rollupsOf(records, { offers: true }));
}

/**
 * Writes held rows as points once they have waited `intervalMs` (`force`: now) — at most what is left of
 * `invocation`'s budget of MAX_POINTS_PER_FLUSH (without one, MAX_POINTS_PER_FLUSH) — and answers how many are still
 * held. A point the runtime refuses is logged, never thrown.
 */
export function writeHeldDataPoints(
  dataset: AnalyticsEngineDataset,
  { force = false, intervalMs = ROLLUP_WRITE_INTERVAL_MS, invocation }: { force?: boolean; intervalMs?: number; invocation?: object } = {},
): number {
  const held = heldFor(dataset);
  if (!held.due(Date.now(), { force, intervalMs })) return held.size;
  const used = invocation ? (writtenBy.get(invocation) ?? 0) : 0;
  if (used >= MAX_POINTS_PER_FLUSH) return held.size;
  const rows = held.take(MAX_POINTS_PER_FLUSH - used);
  if (invocation) writtenBy.set(invocation, used + rows.length);
  for (const row of rows) {
    try {
      dataset.writeDataPoint(dataPointOf(row));
    } catch (error) {
      console.warn(JSON.stringify({ event: "analytics_point_not_written", environmentId: row[0], metric: row[2], error: String(error) }));
    }
  }
  return held.size;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading: Analytics Engine's SQL API (POST {apiBase}/accounts/{account}/analytics_engine/sql, the query as the body,
// a bearer token with Account Analytics: Read). Only values the platform made go into a query — an environment id
// checked against SAFE_VALUE, minutes and steps it computed — so nothing a tenant typed is ever spliced into SQL.

export interface AnalyticsSqlSettings {
  /** `https://api.cloudflare.com/client/v4` in production; tests point it at a local fake. */
  apiBase: string;
  accountId: string;
  token: string;
  /** The dataset's name, as bound in wrangler.toml. */
  dataset: string;
}

const SAFE_VALUE = /^[A-Za-z0-9_-]{1,96}$/;
const DATASET_NAME = /^[A-Za-z0-9_]{1,64}$/;

function environmentLiteral(environmentId: string): string {
  if (!SAFE_VALUE.test(environmentId)) throw new ApiError("bad_request", "The analytics query was given an environment id it cannot use");
  return `'${environmentId}'`;
}

/** Runs one query and answers its rows (`FORMAT JSON`'s `data`); any failure is a 502 naming the analytics API. */
export async function analyticsSql(settings: AnalyticsSqlSettings, query: string): Promise<Record<string, unknown>[]> {
  let response: Response;
  try {
    response = await fetch(`${settings.apiBase.replace(/\/+$/, "")}/accounts/${encodeURIComponent(settings.accountId)}/analytics_engine/sql`, {
      method: "POST",
      headers: { authorization: `Bearer ${settings.token}`, "content-type": "text/plain" },
      body: `${query} FORMAT JSON`,
      signal: AbortSignal.timeout(10_000),
    });
  } catch (error) {
    throw new ApiError("upstream_error", `The analytics API could not be reached: ${String(error)}`);
  }
  const text = await response.text();
  if (!response.ok) throw new ApiError("upstream_error", `The analytics API answered ${response.status}: ${text.slice(0, 300)}`);
  try {
    const body = JSON.parse(text) as { data?: unknown };
    if (!Array.isArray(body.data)) throw new Error("no data");
    return body.data as Record<string, unknown>[];
  } catch {
    throw new ApiError("upstream_error", "The analytics API answered something that is not a FORMAT JSON result");
  }
}

/** Numbers may come back as strings (64-bit integers are quoted in ClickHouse's JSON). */
const numberOf = (value: unknown): number => {
  const number = typeof value === "number" ? value : Number(value);
  return Number.isFinite(number) ? number : 0;
};

/** The WHERE clause of one metric's rows over the minutes of [from, to]. */
function rowsOf(settings: AnalyticsSqlSettings, environmentId: string, metrics: readonly string[], from: string, to: string): string {
  if (!DATASET_NAME.test(settings.dataset)) throw new ApiError("service_unavailable", "The analytics dataset name is not a plain identifier");
  const first = minuteOf(from);
  // A minute's points are written after it starts: the timestamp bound lets Analytics Engine skip older data.
  return `FROM ${settings.dataset} WHERE index1 = ${environmentLiteral(environmentId)} AND blob1 IN (${metrics.map((metric) => `'${metric}'`).join(", ")})
    AND blob2 >= '${pointMinute(first)}' AND blob2 <= '${pointMinute(minuteOf(to))}' AND timestamp >= toDateTime(${Math.floor(Date.parse(first) / 1000)})`;
}

/** The environment's metrics over [from, to]: the D1 rollups' shapes and steps (services/metrics.ts metricsFromRows). */
export async function queryAnalyticsMetrics(settings: AnalyticsSqlSettings, query: { environmentId: string; from: string; to: string }): Promise<EnvironmentMetrics> {
  const step = stepSecondsFor(Date.parse(query.to) - Date.parse(query.from));
  const of = (metrics: readonly string[]) => rowsOf(settings, query.environmentId, metrics, query.from, query.to);
  const count = "SUM(_sample_interval * double1) AS count";
  const [series, denials, failures, stages] = await Promise.all([
    analyticsSql(settings, `SELECT intDiv(toUInt32(toDateTime(blob2)), ${step}) * ${step} AS start, blob1 AS metric, ${count} ${of(SERIES_METRIC_NAMES)} GROUP BY start, metric`),
    analyticsSql(settings, `SELECT blob3 AS dimension, ${count} ${of(["denial"])} GROUP BY dimension ORDER BY count DESC, dimension LIMIT ${MAX_LISTED}`),
    analyticsSql(settings, `SELECT blob3 AS dimension, ${count} ${of(["workflow_failure"])} GROUP BY dimension ORDER BY count DESC, dimension LIMIT ${MAX_LISTED}`),
    analyticsSql(settings, `SELECT blob3 AS dimension, double2 AS bucket, ${count} ${of(["stage"])} GROUP BY dimension, bucket ORDER BY dimension, bucket`),
  ]);
  return metricsFromRows(query, {
    series: series.map((row): SeriesRow => ({ start: numberOf(row.start), metric: String(row.metric), count: numberOf(row.count) })),
    denials: dimensionRows(denials).filter((row) => jsonOf(row.dimension) !== undefined),
    failures: dimensionRows(failures),
    stages: stages.map((row): StageRow => ({ dimension: String(row.dimension), bucket: numberOf(row.bucket), count: numberOf(row.count) })),
  });
}

const dimensionRows = (rows: Record<string, unknown>[]): DimensionRow[] => rows.map((row) => ({ dimension: String(row.dimension ?? ""), count: numberOf(row.count) }));

/** The value of a dimension written as JSON, or undefined for one that is not. */
function jsonOf(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * Offer impressions of an environment over the minutes of [from, to], per offer and variant (null: none). Counted per
 * minute, so a bound inside a minute counts that whole minute.
 */
export async function queryAnalyticsImpressions(
  settings: AnalyticsSqlSettings,
  query: { environmentId: string; from: string; to: string },
): Promise<{ offer: string; variant: string | null; count: number }[]> {
  const rows = await analyticsSql(settings, `SELECT blob3 AS dimension, SUM(_sample_interval * double1) AS count ${rowsOf(settings, query.environmentId, ["offer_impression"], query.from, query.to)} GROUP BY dimension`);
  return dimensionRows(rows).flatMap(({ dimension, count }) => {
    const parsed = jsonOf(dimension);
    if (!Array.isArray(parsed)) return [];
    const [offer, variant] = parsed as unknown[];
    return typeof offer === "string" ? [{ offer, variant: typeof variant === "string" ? variant : null, count }] : [];
  });
}
