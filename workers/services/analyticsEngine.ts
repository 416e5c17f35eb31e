/**
 * Decision metrics on Workers Analytics Engine — the metrics half of the production event sink (services/eventStore.ts,
 * `EVENT_SINK = "cloudflare"`). Each decision writes its data points at once, in its own invocation (writeDataPoint
 * never waits: the runtime sends them after the response), and the admin metrics and the offer funnel read them back
 * through Analytics Engine's SQL API. Points cost per point written, not per row and index, and are kept three months
 * by Cloudflare; the embedded default (D1 rollups, services/metrics.ts) answers the same queries with the same shapes.
 *
 * The dataset's layout — every point's `index1` is its environment (Analytics Engine samples per index, so one busy
 * environment is sampled without touching the others' counts; every sum below weighs a row by `_sample_interval`):
 *
 * | point (`blob1`)    | blob2 | blob3   | blob4        | blob5…              | doubles                                    |
 * |--------------------|-------|---------|--------------|---------------------|--------------------------------------------|
 * | `decision`         | kind  | outcome | organization | surface, meter      | 1, denied, fallback, failures, impressions, then one per STAGES entry (ms, −1 when the stage did not run) |
 * | `denial`           | kind  | outcome | organization | feature, property, reason | 1                                    |
 * | `workflow_failure` | kind  | outcome | organization | failure kind        | 1                                          |
 * | `offer_impression` | kind  | outcome | organization | offer, variant      | 1                                          |
 *
 * A decision writes at most 1 + MAX_DETAIL_POINTS points (Analytics Engine takes 25 per invocation): the totals on
 * the `decision` point stay exact; the breakdowns beyond the first MAX_DETAIL_POINTS details of one decision are not
 * counted.
 */
import { ApiError } from "../errors";
import type { EnvironmentMetrics, MetricsSeriesPoint } from "./metrics";
import { stepSecondsFor } from "./metrics";
import type { EventInput } from "./events";

/** The decision stages whose durations a `decision` point carries (double6 onwards), in this order: never reorder. */
export const STAGES = [
  "auth",
  "middleware",
  "context",
  "config",
  "identity",
  "plans",
  "provisioning",
  "meter",
  "feature_workflows",
  "surface_workflows",
  "crawl",
  "offers",
  "render",
] as const;

/** The kinds of records that are decisions: their metrics are written; any other kind writes none. */
const DECISION_KINDS: ReadonlySet<string> = new Set(["access_check", "surface_decision"]);
/** Detail points (denials, workflow failures, offer impressions) one decision may add to its `decision` point. */
export const MAX_DETAIL_POINTS = 20;
const MAX_BLOB_LENGTH = 200;
/** The first double of the stage durations (double6). */
const FIRST_STAGE_DOUBLE = 6;

const asArray = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);
const asObject = (value: unknown): Record<string, unknown> => (value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : {});
const blob = (value: unknown): string => String(value ?? "").slice(0, MAX_BLOB_LENGTH);

/** The data points of one record (none for a record that is not a decision). Pure: the tests read them as written. */
export function dataPointsOf(event: Pick<EventInput, "organizationId" | "environmentId" | "kind" | "outcome" | "surfaceSlug" | "record">): AnalyticsEngineDataPoint[] {
  if (!DECISION_KINDS.has(event.kind)) return [];
  const { record } = event;
  const failures = asArray(record.workflows).filter((run) => asObject(run).ok === false);
  const offers = asArray(record.offers);
  const denials = asArray(record.denials);
  const meterStatus = String(asObject(record.meter).status ?? "none");
  const timings = asObject(record.timings);
  const stageDurations = STAGES.map((stage) => {
    const ms = timings[stage];
    return typeof ms === "number" && Number.isFinite(ms) && ms >= 0 ? ms : -1;
  });
  const common = [event.kind, event.outcome ?? "", event.organizationId].map(blob);
  const point = (type: string, ...details: unknown[]): AnalyticsEngineDataPoint => ({ indexes: [event.environmentId], blobs: [type, ...common, ...details.map(blob)], doubles: [1] });
  const decision: AnalyticsEngineDataPoint = {
    indexes: [event.environmentId],
    blobs: ["decision", ...common, blob(event.surfaceSlug), blob(meterStatus)],
    doubles: [1, event.outcome === "denied" ? 1 : 0, meterStatus === "fallback" ? 1 : 0, failures.length, offers.length, ...stageDurations],
  };
  const details: AnalyticsEngineDataPoint[] = [
    ...denials.slice(0, 10).map((denial) => {
      const { featureSlug, property, reason } = asObject(denial);
      return point("denial", featureSlug, property, reason);
    }),
    ...failures.slice(0, 5).map((run) => point("workflow_failure", asObject(run).kind ?? "unknown")),
    ...offers.map((shown) => point("offer_impression", asObject(shown).offer, asObject(shown).variant ?? "")),
  ];
  return [decision, ...details.slice(0, MAX_DETAIL_POINTS)];
}

/** Writes a record's points; a refused point is logged, never thrown (the decision has been answered already). */
export function writeDataPoints(dataset: AnalyticsEngineDataset, event: Parameters<typeof dataPointsOf>[0]): void {
  for (const point of dataPointsOf(event)) {
    try {
      dataset.writeDataPoint(point);
    } catch (error) {
      console.warn(JSON.stringify({ event: "analytics_point_not_written", environmentId: event.environmentId, error: String(error) }));
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Reading: Analytics Engine's SQL API (POST {apiBase}/accounts/{account}/analytics_engine/sql, the query as the body,
// a bearer token with Account Analytics: Read). Only values the platform made go into a query — ids checked against
// SAFE_VALUE, instants as integers — so nothing a tenant typed is ever spliced into SQL.

export interface AnalyticsSqlSettings {
  /** `https://api.cloudflare.com/client/v4` in production; tests point it at a local fake. */
  apiBase: string;
  accountId: string;
  token: string;
  /** The dataset's name, as bound in wrangler.toml. */
  dataset: string;
}

const SAFE_VALUE = /^[A-Za-z0-9_.:-]{1,128}$/;

function literal(value: string): string {
  if (!SAFE_VALUE.test(value)) throw new ApiError("bad_request", "The analytics query was given a value it cannot use");
  return `'${value}'`;
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
const seconds = (iso: string) => Math.floor(Date.parse(iso) / 1000);

/**
 * The environment's metrics over [from, to], from its points: the same shape and steps as the D1 rollups answer
 * (services/metrics.ts queryMetrics), its minutes whole (a range starts at the start of its first minute and ends at
 * the end of its last, as the rollups are per minute). Stage percentiles are exact (quantileExactWeighted over the
 * durations), where the rollups answer the bound of a latency bucket.
 */
export async function queryAnalyticsMetrics(
  settings: AnalyticsSqlSettings,
  query: { organizationId: string; environmentId: string; from: string; to: string },
): Promise<EnvironmentMetrics> {
  const step = stepSecondsFor(Date.parse(query.to) - Date.parse(query.from));
  const first = Math.floor(seconds(query.from) / 60) * 60;
  const end = Math.floor(seconds(query.to) / 60) * 60 + 60;
  const dataset = settings.dataset;
  if (!/^[A-Za-z0-9_]{1,64}$/.test(dataset)) throw new ApiError("service_unavailable", "The analytics dataset name is not a plain identifier");
  const within = (type: string) =>
    `index1 = ${literal(query.environmentId)} AND blob4 = ${literal(query.organizationId)} AND blob1 = '${type}' AND timestamp >= toDateTime(${first}) AND timestamp < toDateTime(${end})`;
  const weight = "_sample_interval";
  const stageColumns = STAGES.flatMap((stage, index) => {
    const column = `double${FIRST_STAGE_DOUBLE + index}`;
    const ran = `if(${column} >= 0, ${weight}, 0)`;
    return [
      `SUM(${ran}) AS ${stage}_count`,
      ...[50, 95, 99].map((percent) => `quantileExactWeighted(0.${percent})(${column}, ${ran}) AS ${stage}_p${percent}`),
    ];
  });
  const [series, denials, failures, stages] = await Promise.all([
    analyticsSql(
      settings,
      `SELECT intDiv(toUInt32(timestamp), ${step}) * ${step} AS start, SUM(${weight} * double1) AS decisions,
       SUM(if(blob2 = 'access_check', ${weight}, 0)) AS accessChecks, SUM(if(blob2 = 'surface_decision', ${weight}, 0)) AS surfaceDecisions,
       SUM(${weight} * double2) AS denied, SUM(${weight} * double3) AS meterFallbacks, SUM(${weight} * double4) AS workflowFailures,
       SUM(${weight} * double5) AS offerImpressions
       FROM ${dataset} WHERE ${within("decision")} GROUP BY start ORDER BY start`,
    ),
    analyticsSql(
      settings,
      `SELECT blob5 AS featureSlug, blob6 AS property, blob7 AS reason, SUM(${weight}) AS count FROM ${dataset} WHERE ${within("denial")}
       GROUP BY featureSlug, property, reason ORDER BY count DESC, featureSlug, property, reason LIMIT 100`,
    ),
    analyticsSql(
      settings,
      `SELECT blob5 AS kind, SUM(${weight}) AS count FROM ${dataset} WHERE ${within("workflow_failure")} GROUP BY kind ORDER BY count DESC, kind LIMIT 100`,
    ),
    analyticsSql(settings, `SELECT ${stageColumns.join(", ")} FROM ${dataset} WHERE ${within("decision")}`),
  ]);
  const stepMs = step * 1000;
  const points = new Map<number, MetricsSeriesPoint>();
  for (let start = Math.floor((first * 1000) / stepMs) * stepMs; start < end * 1000; start += stepMs) {
    points.set(start, { minute: new Date(start).toISOString(), decisions: 0, accessChecks: 0, surfaceDecisions: 0, denied: 0, meterFallbacks: 0, workflowFailures: 0, offerImpressions: 0 });
  }
  for (const row of series) {
    const point = points.get(numberOf(row.start) * 1000);
    if (!point) continue;
    for (const name of ["decisions", "accessChecks", "surfaceDecisions", "denied", "meterFallbacks", "workflowFailures", "offerImpressions"] as const) point[name] = numberOf(row[name]);
  }
  const totals = stages[0] ?? {};
  return {
    from: query.from,
    to: query.to,
    step,
    series: [...points.values()],
    denials: denials.map((row) => ({ featureSlug: String(row.featureSlug ?? ""), property: String(row.property ?? ""), reason: String(row.reason ?? ""), count: numberOf(row.count) })),
    workflowFailures: failures.map((row) => ({ kind: String(row.kind ?? ""), count: numberOf(row.count) })),
    stageLatency: STAGES.filter((stage) => numberOf(totals[`${stage}_count`]) > 0).map((stage) => ({
      stage,
      count: numberOf(totals[`${stage}_count`]),
      p50: numberOf(totals[`${stage}_p50`]),
      p95: numberOf(totals[`${stage}_p95`]),
      p99: numberOf(totals[`${stage}_p99`]),
    })),
  };
}

/** Offer impressions of an environment over [from, to] (ISO-8601, inclusive), per offer and variant (null: none). */
export async function queryAnalyticsImpressions(
  settings: AnalyticsSqlSettings,
  query: { organizationId: string; environmentId: string; from: string; to: string },
): Promise<{ offer: string; variant: string | null; count: number }[]> {
  const dataset = settings.dataset;
  if (!/^[A-Za-z0-9_]{1,64}$/.test(dataset)) throw new ApiError("service_unavailable", "The analytics dataset name is not a plain identifier");
  const rows = await analyticsSql(
    settings,
    `SELECT blob5 AS offer, blob6 AS variant, SUM(_sample_interval) AS count FROM ${dataset}
     WHERE index1 = ${literal(query.environmentId)} AND blob4 = ${literal(query.organizationId)} AND blob1 = 'offer_impression'
     AND timestamp >= toDateTime(${seconds(query.from)}) AND timestamp <= toDateTime(${seconds(query.to)}) GROUP BY offer, variant`,
  );
  return rows.map((row) => ({ offer: String(row.offer ?? ""), variant: row.variant ? String(row.variant) : null, count: numberOf(row.count) }));
}
