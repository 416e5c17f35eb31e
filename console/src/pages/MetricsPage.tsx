/**
 * #/metrics — the picked environment's decisions over time (GET …/metrics, summed per step by the server), where they were
 * denied, how long each stage took, and the offer funnel (GET …/offers/funnel) over the same range.
 */
import { useEffect, useMemo, useState } from "react";
import type { ChartData, ChartOptions } from "chart.js";
import { segment, useApi } from "../api";
import { Page, Panel } from "../components/Page";
import { ProblemBox } from "../components/ProblemBox";
import { ChartCanvas, PALETTE } from "../components/observability/ChartCanvas";
import { useEnvironment, useSession } from "../session";
import "../components/observability/observability.css";

/** One step of the series: `minute` is its start, each count its sum over the step. */
interface StepPoint {
  minute: string;
  decisions: number;
  accessChecks: number;
  surfaceDecisions: number;
  denied: number;
  meterFallbacks: number;
  workflowFailures: number;
  offerImpressions: number;
}

interface Metrics {
  from: string;
  to: string;
  /** The width of each point in seconds (the server picks it from the range: a minute, 5 minutes or an hour). */
  step: number;
  series: StepPoint[];
  denials: { featureSlug: string; property: string; reason: string; count: number }[];
  workflowFailures: { kind: string; count: number }[];
  stageLatency: { stage: string; count: number; p50: number; p95: number; p99: number }[];
}

interface FunnelRow {
  offer: string;
  variant: string | null;
  impressions: number;
  started: number;
  completed: number;
  failed: number;
  conversion: number | null;
}

const MINUTE = 60_000;
/** The ranges offered; the server sums each into points of its own step. */
const RANGES = [
  { key: "1h", label: "1 hour", ms: 60 * MINUTE },
  { key: "6h", label: "6 hours", ms: 6 * 60 * MINUTE },
  { key: "24h", label: "24 hours", ms: 24 * 60 * MINUTE },
  { key: "7d", label: "7 days", ms: 7 * 24 * 60 * MINUTE },
] as const;
type RangeKey = (typeof RANGES)[number]["key"];

const COUNTS = ["decisions", "accessChecks", "surfaceDecisions", "denied", "meterFallbacks", "workflowFailures", "offerImpressions"] as const;
type Count = (typeof COUNTS)[number];

/** The server's points as chart columns, labelled by their start in local time. */
function columns(series: StepPoint[], long: boolean): { labels: string[]; sums: Record<Count, number[]> } {
  const labels = series.map((point) => {
    const date = new Date(point.minute);
    return long
      ? date.toLocaleString(undefined, { weekday: "short", hour: "2-digit", minute: "2-digit", hour12: false })
      : date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", hour12: false });
  });
  const sums = Object.fromEntries(COUNTS.map((count) => [count, series.map((point) => point[count] ?? 0)])) as Record<Count, number[]>;
  return { labels, sums };
}

/** "per minute", "per 5 min", "per 1 h": what one point of the charts counts. */
function perStep(seconds: number): string {
  const minutes = Math.round(seconds / 60);
  if (minutes <= 1) return "per minute";
  return minutes >= 60 ? `per ${minutes / 60} h` : `per ${minutes} min`;
}

const total = (values: number[]) => values.reduce((sum, value) => sum + value, 0);

const timeOptions: ChartOptions<"bar" | "line"> = {
  interaction: { mode: "index", intersect: false },
  scales: { x: { stacked: true, ticks: { maxTicksLimit: 12, autoSkip: true } }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
  plugins: { legend: { position: "bottom" } },
};
const barTimeOptions: ChartOptions<"bar"> = {
  interaction: { mode: "index", intersect: false },
  scales: { x: { stacked: true, ticks: { maxTicksLimit: 12, autoSkip: true } }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
  plugins: { legend: { position: "bottom" } },
};
const horizontalBarOptions: ChartOptions<"bar"> = {
  indexAxis: "y",
  scales: { x: { beginAtZero: true, ticks: { precision: 0 } } },
  plugins: { legend: { display: false } },
};
const groupedBarOptions: ChartOptions<"bar"> = {
  scales: { y: { beginAtZero: true } },
  plugins: { legend: { position: "bottom" } },
};

export default function MetricsPage() {
  const api = useApi();
  const { environmentId } = useSession();
  const environment = useEnvironment();
  const [range, setRange] = useState<RangeKey>("1h");
  const [refresh, setRefresh] = useState(0);
  const [metrics, setMetrics] = useState<Metrics | null>(null);
  const [funnel, setFunnel] = useState<FunnelRow[] | null>(null);
  const [metricsProblem, setMetricsProblem] = useState<unknown>(null);
  const [funnelProblem, setFunnelProblem] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);
  const chosen = RANGES.find((candidate) => candidate.key === range)!;

  useEffect(() => {
    if (!environmentId) return;
    let current = true;
    const to = new Date();
    const from = new Date(to.getTime() - chosen.ms);
    const query = new URLSearchParams({ from: from.toISOString(), to: to.toISOString() }).toString();
    const base = `/api/v1/admin/environments/${segment(environmentId)}`;
    setLoading(true);
    Promise.allSettled([api.get<Metrics>(`${base}/metrics?${query}`), api.get<{ data?: FunnelRow[]; rows?: FunnelRow[] }>(`${base}/offers/funnel?${query}`)]).then(
      ([metricsResult, funnelResult]) => {
        if (!current) return;
        setLoading(false);
        if (metricsResult.status === "fulfilled") {
          setMetrics(metricsResult.value);
          setMetricsProblem(null);
        } else {
          setMetrics(null);
          setMetricsProblem(metricsResult.reason);
        }
        if (funnelResult.status === "fulfilled") {
          setFunnel(funnelResult.value.data ?? funnelResult.value.rows ?? []);
          setFunnelProblem(null);
        } else {
          setFunnel(null);
          setFunnelProblem(funnelResult.reason);
        }
      },
    );
    return () => {
      current = false;
    };
  }, [api, environmentId, chosen, refresh]);

  const buckets = useMemo(() => (metrics ? columns(metrics.series, chosen.ms > 24 * 60 * MINUTE) : null), [metrics, chosen]);

  // Stacked bars (the two kinds of decisions add up to all of them), with the denied ones as a line over them.
  const decisionsData = useMemo<ChartData<"bar" | "line">>(
    () => ({
      labels: buckets?.labels ?? [],
      datasets: [
        { type: "line", label: "Denied", data: buckets?.sums.denied ?? [], borderColor: PALETTE[1], backgroundColor: PALETTE[1], pointRadius: 1, tension: 0, stack: "denied" },
        { type: "line", label: "Offer impressions", data: buckets?.sums.offerImpressions ?? [], borderColor: PALETTE[3], backgroundColor: PALETTE[3], pointRadius: 1, tension: 0, hidden: true, stack: "impressions" },
        { type: "bar", label: "Access checks", data: buckets?.sums.accessChecks ?? [], backgroundColor: PALETTE[0], stack: "decisions" },
        { type: "bar", label: "Surface decisions", data: buckets?.sums.surfaceDecisions ?? [], backgroundColor: PALETTE[2], stack: "decisions" },
      ],
    }),
    [buckets],
  );
  const problemsData = useMemo<ChartData<"bar">>(
    () => ({
      labels: buckets?.labels ?? [],
      datasets: [
        { label: "Meter fallbacks", data: buckets?.sums.meterFallbacks ?? [], backgroundColor: PALETTE[4] },
        { label: "Workflow failures", data: buckets?.sums.workflowFailures ?? [], backgroundColor: PALETTE[1] },
      ],
    }),
    [buckets],
  );
  const denials = useMemo(() => (metrics?.denials ?? []).slice(0, 20), [metrics]);
  const denialsData = useMemo<ChartData<"bar">>(
    () => ({
      labels: denials.map((denial) => `${denial.featureSlug}.${denial.property} (${denial.reason})`),
      datasets: [{ label: "Denials", data: denials.map((denial) => denial.count), backgroundColor: PALETTE[1] }],
    }),
    [denials],
  );
  const workflowFailuresData = useMemo<ChartData<"bar">>(
    () => ({
      labels: (metrics?.workflowFailures ?? []).map((failure) => failure.kind),
      datasets: [{ label: "Failed runs", data: (metrics?.workflowFailures ?? []).map((failure) => failure.count), backgroundColor: PALETTE[1] }],
    }),
    [metrics],
  );
  const latencyData = useMemo<ChartData<"bar">>(
    () => ({
      labels: (metrics?.stageLatency ?? []).map((stage) => stage.stage),
      datasets: (["p50", "p95", "p99"] as const).map((percentile, index) => ({
        label: `${percentile} (ms)`,
        data: (metrics?.stageLatency ?? []).map((stage) => stage[percentile]),
        backgroundColor: PALETTE[index === 0 ? 0 : index === 1 ? 5 : 3],
      })),
    }),
    [metrics],
  );
  const funnelLabel = (row: FunnelRow) => (row.variant ? `${row.offer} / ${row.variant}` : row.offer);
  const funnelData = useMemo<ChartData<"bar">>(
    () => ({
      labels: (funnel ?? []).map(funnelLabel),
      datasets: [
        { label: "Impressions", data: (funnel ?? []).map((row) => row.impressions), backgroundColor: PALETTE[0] },
        { label: "Started", data: (funnel ?? []).map((row) => row.started), backgroundColor: PALETTE[4] },
        { label: "Completed", data: (funnel ?? []).map((row) => row.completed), backgroundColor: PALETTE[2] },
      ],
    }),
    [funnel],
  );

  const totals = buckets ? Object.fromEntries(COUNTS.map((count) => [count, total(buckets.sums[count])])) as Record<Count, number> : null;
  const noDecisions = !totals || totals.decisions === 0;
  const name = environment ? environment.name || environment.slug : null;
  const perBucket = metrics ? perStep(metrics.step) : "";

  return (
    <Page
      title="Metrics"
      subtitle={name ? `Decisions of ${name}, ${metrics ? perStep(metrics.step) : "per minute"} over the range.` : "Pick an environment to see its metrics."}
      actions={
        <div className="metrics-ranges" role="group" aria-label="Range">
          {RANGES.map((candidate) => (
            <button
              key={candidate.key}
              type="button"
              className={candidate.key === range ? "primary" : undefined}
              aria-pressed={candidate.key === range}
              onClick={() => setRange(candidate.key)}
              data-testid={`metrics-range-${candidate.key}`}
            >
              {candidate.key}
            </button>
          ))}
          <button type="button" onClick={() => setRefresh((value) => value + 1)} disabled={loading} data-testid="metrics-refresh">
            {loading ? "Loading…" : "Refresh"}
          </button>
        </div>
      }
    >
      <ProblemBox problem={metricsProblem} />
      {totals ? (
        <div className="metrics-totals" data-testid="metrics-totals">
          <div>
            <strong>{totals.decisions}</strong> decisions
          </div>
          <div>
            <strong>{totals.denied}</strong> denied
          </div>
          <div>
            <strong>{totals.meterFallbacks}</strong> meter fallbacks
          </div>
          <div>
            <strong>{totals.workflowFailures}</strong> workflow failures
          </div>
          <div>
            <strong>{totals.offerImpressions}</strong> offer impressions
          </div>
          <div className="muted">over the last {chosen.label}</div>
        </div>
      ) : null}
      <div className="metrics-grid">
        <Panel title={`Decisions ${perBucket}`}>
          <ChartCanvas name="decisions" type="bar" data={decisionsData as ChartData<"bar">} options={timeOptions as ChartOptions<"bar">} empty={noDecisions ? "No decisions in this range." : undefined} />
        </Panel>
        <Panel title={`Meter fallbacks and workflow failures ${perBucket}`}>
          <ChartCanvas
            name="problems"
            type="bar"
            data={problemsData}
            options={barTimeOptions}
            empty={!totals || totals.meterFallbacks + totals.workflowFailures === 0 ? "No meter fallback and no workflow failure in this range." : undefined}
          />
        </Panel>
        <Panel title="Denials by feature and reason">
          <ChartCanvas
            name="denials"
            type="bar"
            data={denialsData}
            options={horizontalBarOptions}
            height={Math.max(160, denials.length * 22 + 40)}
            empty={denials.length === 0 ? "Nothing denied in this range." : undefined}
          />
        </Panel>
        <Panel title="Workflow failures by kind">
          <ChartCanvas
            name="workflow-failures"
            type="bar"
            data={workflowFailuresData}
            options={horizontalBarOptions}
            height={160}
            empty={(metrics?.workflowFailures ?? []).length === 0 ? "No workflow failed in this range." : undefined}
          />
        </Panel>
        <Panel title="Stage latency (ms)">
          <ChartCanvas
            name="latency"
            type="bar"
            data={latencyData}
            options={groupedBarOptions}
            empty={(metrics?.stageLatency ?? []).length === 0 ? "No stage timings in this range." : undefined}
          />
        </Panel>
        <Panel title="Offer funnel">
          <ProblemBox problem={funnelProblem} />
          <ChartCanvas name="funnel" type="bar" data={funnelData} options={groupedBarOptions} empty={!funnel || funnel.length === 0 ? "No offer shown in this range." : undefined} />
          {funnel && funnel.length ? (
            <table className="data-table metrics-funnel" data-testid="metrics-funnel">
              <thead>
                <tr>
                  <th>Offer</th>
                  <th>Variant</th>
                  <th>Impressions</th>
                  <th>Started</th>
                  <th>Completed</th>
                  <th>Failed</th>
                  <th>Conversion</th>
                </tr>
              </thead>
              <tbody>
                {funnel.map((row) => (
                  <tr key={`${row.offer}/${row.variant ?? ""}`}>
                    <td>{row.offer}</td>
                    <td>{row.variant ?? <span className="muted">—</span>}</td>
                    <td>{row.impressions}</td>
                    <td>{row.started}</td>
                    <td>{row.completed}</td>
                    <td>{row.failed}</td>
                    <td>{row.conversion === null ? "—" : `${(row.conversion * 100).toFixed(1)} %`}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : null}
        </Panel>
      </div>
    </Page>
  );
}
