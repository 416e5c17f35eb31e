/**
 * The Worker with the production event sink (`EVENT_SINK = "cloudflare"`) against the local fake of Cloudflare's
 * event APIs (test/fake-cloudflare-events): the Analytics Engine and Pipelines bindings — which do nothing locally —
 * are stand-ins that deliver to the fake, as Cloudflare's would deliver to the dataset and the Iceberg table; the
 * decision log's queue is held, so a test runs its consumer when it chooses. Everything else is the real Worker.
 */
import { env } from "cloudflare:workers";
import { inject, vi } from "vitest";
import worker from "../../workers/index";
import { writeHeldDataPoints } from "../../workers/services/analyticsEngine";
import { DECISION_LOG_DEAD_LETTER_QUEUE, DECISION_LOG_QUEUE, type LogMessage, type LogPipeline } from "../../workers/services/decisionLog";
import { callThrough, type CallOptions, type CallResult } from "./api";
import { trackedExecutionContext } from "./background";
import { queuedMessage, runQueueBatch } from "./queues";
import type { QueueResult } from "cloudflare:test";

export const FAKE_EVENTS_TOKEN = "test-events-api-token";
export const LOG_TABLE = "decisions.log";
export const DATASET = "decision_events";

export interface CloudflareSink {
  env: Env;
  /** Calls the Worker with the sink's bindings. */
  call(method: string, path: string, options?: CallOptions): Promise<CallResult>;
  /** Every data point written, in order. */
  points: AnalyticsEngineDataPoint[];
  /** Log messages the Worker queued and no consumer ran yet. */
  queued: LogMessage[];
  /** Writes every metric row the isolate holds for this sink's dataset now, and waits until the fake has them. */
  writePoints(): Promise<void>;
  /** Runs the log queue's consumer on everything queued (as attempt `attempts`); returns its ack/retry state. */
  consumeLog(attempts?: number): Promise<{ result: QueueResult; messages: LogMessage[]; retryDelays: (number | undefined)[] }>;
  /** Runs the dead-letter consumer on these messages. */
  consumeDeadLetters(messages: LogMessage[]): Promise<QueueResult>;
  /** The next `count` queue sends (or pipeline sends) throw. */
  failQueue(count: number): void;
  failPipeline(count: number): void;
  /** Records the pipeline accepted. */
  sentToPipeline: object[];
}

export function cloudflareSink(overrides: Partial<Record<string, unknown>> = {}): CloudflareSink {
  const base = inject("cloudflareEventsBase");
  const inFlight: Promise<unknown>[] = [];
  const points: AnalyticsEngineDataPoint[] = [];
  const queued: LogMessage[] = [];
  const sentToPipeline: object[] = [];
  let queueFailures = 0;
  let pipelineFailures = 0;
  const post = (path: string, body: unknown) =>
    fetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) }).then((response) => {
      if (!response.ok) throw new Error(`fake ingest ${path}: ${response.status}`);
    });

  const dataset: AnalyticsEngineDataset = {
    writeDataPoint(point) {
      if (!point) return;
      // A copy, as the runtime serializes it when the call is made.
      const copy = JSON.parse(JSON.stringify(point)) as AnalyticsEngineDataPoint;
      points.push(copy);
      inFlight.push(post("/__ingest/analytics", { dataset: DATASET, points: [copy] }));
    },
  };
  const pipeline: LogPipeline = {
    async send(records) {
      if (pipelineFailures > 0) {
        pipelineFailures--;
        throw new Error("injected: the pipeline is throttling");
      }
      const copy = JSON.parse(JSON.stringify(records)) as object[];
      await post("/__ingest/pipeline", { table: LOG_TABLE, records: copy });
      sentToPipeline.push(...copy);
    },
  };
  const queue = {
    async send(body: LogMessage) {
      await queue.sendBatch([{ body }]);
    },
    async sendBatch(messages: Iterable<{ body: LogMessage }>) {
      if (queueFailures > 0) {
        queueFailures--;
        throw new Error("injected: the queue is unavailable");
      }
      for (const message of messages) queued.push(JSON.parse(JSON.stringify(message.body)) as LogMessage);
    },
  } as unknown as Queue<LogMessage>;

  const sinkEnv = {
    ...env,
    EVENT_SINK: "cloudflare",
    DECISION_METRICS: dataset,
    DECISION_LOG_QUEUE: queue,
    DECISION_LOG: pipeline,
    CF_ACCOUNT_ID: "0123456789abcdef0123456789abcdef",
    EVENTS_API_TOKEN: FAKE_EVENTS_TOKEN,
    DECISION_METRICS_DATASET: DATASET,
    DECISION_LOG_BUCKET: "decision-log",
    DECISION_LOG_TABLE: LOG_TABLE,
    ANALYTICS_SQL_API: `${base}/client/v4`,
    R2_SQL_API: `${base}/r2sql`,
    // Rows are written as points at the first flush (and the quiet-isolate timer fires at once): nothing waits 10 s.
    ANALYTICS_WRITE_INTERVAL_MS: "0",
    ...overrides,
  } as unknown as Env;

  return {
    env: sinkEnv,
    call: (method, path, options) => callThrough(async (request) => worker.fetch(request, sinkEnv, trackedExecutionContext()), method, path, options),
    points,
    queued,
    sentToPipeline,
    async writePoints() {
      while (writeHeldDataPoints(dataset, { force: true }) > 0);
      while (inFlight.length > 0) await Promise.all(inFlight.splice(0));
    },
    async consumeLog(attempts = 1) {
      const messages = queued.splice(0);
      const retryDelays: (number | undefined)[] = [];
      const result = await runQueueBatch(
        DECISION_LOG_QUEUE,
        messages.map((body) => queuedMessage(body, attempts)),
        {
          bindings: sinkEnv,
          inspect: (batch) => {
            for (const message of batch.messages) {
              const retry = message.retry.bind(message);
              vi.spyOn(message, "retry").mockImplementation((options) => {
                retryDelays.push(options?.delaySeconds);
                retry(options);
              });
            }
          },
        },
      );
      return { result, messages, retryDelays };
    },
    consumeDeadLetters: (messages) =>
      runQueueBatch(
        DECISION_LOG_DEAD_LETTER_QUEUE,
        messages.map((body) => queuedMessage(body)),
        { bindings: sinkEnv },
      ),
    failQueue: (count) => void (queueFailures = count),
    failPipeline: (count) => void (pipelineFailures = count),
  };
}

/** Makes the fake's next request under `path` (e.g. `/client/v4`, `/r2sql`) fail once with `status`. */
export async function failFakeOnce(path: string, status: number): Promise<void> {
  const response = await fetch(`${inject("cloudflareEventsBase")}/__control/fail`, { method: "POST", body: JSON.stringify({ path, status }) });
  if (!response.ok) throw new Error("could not arm the fake's failure");
}

/** Puts rows straight into the fake's log table (as the stream would deliver them). */
export async function ingestLogRows(rows: Record<string, unknown>[]): Promise<void> {
  const response = await fetch(`${inject("cloudflareEventsBase")}/__ingest/pipeline`, { method: "POST", body: JSON.stringify({ table: LOG_TABLE, records: rows }) });
  if (!response.ok) throw new Error("could not ingest log rows");
}

/** Writes points straight into the fake's dataset (e.g. sampled ones, which the runtime would never write locally). */
export async function ingestPoints(points: (AnalyticsEngineDataPoint & { sampleInterval?: number; timestamp?: number })[]): Promise<void> {
  const response = await fetch(`${inject("cloudflareEventsBase")}/__ingest/analytics`, { method: "POST", body: JSON.stringify({ dataset: DATASET, points }) });
  if (!response.ok) throw new Error("could not ingest points");
}
