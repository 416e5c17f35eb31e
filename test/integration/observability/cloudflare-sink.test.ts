/**
 * The production event sink (`EVENT_SINK = "cloudflare"`): decisions are summed into per-minute metric rows written as
 * Analytics Engine data points, and their records are sent to the Pipelines stream (what it refuses goes through the
 * log's queue, and what that refuses to D1); the console reads metrics, the offer funnel's impressions and the event
 * list back through the SQL APIs — here the local fake of them (test/fake-cloudflare-events). Nothing is lost when
 * the stream or the queue refuses; the hot path never waits.
 */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { dataPointOf, holdDataPointsOf, MAX_POINTS_PER_FLUSH, queryAnalyticsMetrics, writeHeldDataPoints } from "../../../workers/services/analyticsEngine";
import { DEAD_LETTER_ATTEMPTS, DECISION_LOG_DEAD_LETTER_QUEUE, DECISION_LOG_MAX_RETRIES, DECISION_LOG_QUEUE, logMessagesOf, MAX_LOGGED_RECORD_BYTES, unpackRecordText } from "../../../workers/services/decisionLog";
import { latencyBucket, LATENCY_BUCKETS_MS } from "../../../workers/services/metrics";
import { logQuerySql } from "../../../workers/services/r2SqlLog";
import { call, createOrganization, publish, waitForBackgroundWork, type TestOrganization } from "../../support/api";
import { redemptionShop } from "../offers/redemptionShop";
import { cloudflareSink, DATASET, failFakeOnce, FAKE_EVENTS_TOKEN, ingestLogRows, ingestPoints, type CloudflareSink } from "../../support/cloudflareSink";
import wranglerToml from "../../../wrangler.toml?raw";
import { expectConsoleError } from "../../support/console";
import { helloWorld } from "../../support/examples";

const decide = (sink: CloudflareSink, org: TestOrganization, path: string, identifier: string) =>
  sink.call("POST", path, { key: org.live.secretKey, body: { surfaceSlug: "hello-world", identity: { anonymousIdentifier: identifier } } });

/** The series' totals over the range. */
function totals(series: Record<string, number | string>[]): Record<string, number> {
  const sums: Record<string, number> = {};
  for (const point of series) for (const [name, value] of Object.entries(point)) if (typeof value === "number") sums[name] = (sums[name] ?? 0) + value;
  return sums;
}

/** The decision rows D1 holds for an environment. */
async function decisionsInD1(environmentId: string): Promise<string[]> {
  const { results } = await env.DB.prepare("SELECT id FROM events WHERE environment_id = ? AND kind IN ('access_check', 'surface_decision') ORDER BY id")
    .bind(environmentId)
    .all<{ id: string }>();
  return results.map((row) => row.id);
}

/** What the points written for an environment count of one metric (each point's double1, summed). */
const countedPoints = (sink: CloudflareSink, environmentId: string, metric: string) =>
  sink.points.filter((point) => point.indexes?.[0] === environmentId && point.blobs?.[0] === metric).reduce((sum, point) => sum + point.doubles![0]!, 0);

const idsOf = (records: object[]) => records.map((record) => (record as { id: string }).id).sort();

describe("the production event sink", () => {
  let org: TestOrganization;
  let sink: CloudflareSink;
  const eventIds: string[] = [];

  beforeAll(async () => {
    org = await createOrganization("Cloudflare sink");
    await publish(org.adminKey, helloWorld(), [org.live.id]);
    sink = cloudflareSink();
    // Three uses of the lifetime allowance, a fourth denied, and an access check.
    for (let use = 0; use < 4; use++) {
      const response = await decide(sink, org, "/api/v1/surface-decisions", "sink-heavy");
      expect(response.status).toBe(200);
      eventIds.push(response.body.eventId);
    }
    const check = await decide(sink, org, "/api/v1/access-checks", "sink-light");
    expect(check.status).toBe(200);
    eventIds.push(check.body.eventId);
    await waitForBackgroundWork();
    await sink.writePoints();
  });

  it("writes the decisions' metrics as rollup points, their records to the stream, and nothing to D1 or the queue", async () => {
    const mine = sink.points.filter((point) => point.indexes?.[0] === org.live.id);
    expect(countedPoints(sink, org.live.id, "decisions")).toBe(5);
    expect(countedPoints(sink, org.live.id, "access_checks")).toBe(1);
    expect(countedPoints(sink, org.live.id, "surface_decisions")).toBe(4);
    // One point per row, not per decision: all five decisions' counts in a minute or two.
    expect(mine.filter((point) => point.blobs?.[0] === "decisions").length).toBeLessThanOrEqual(2);
    expect(mine.every((point) => /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:00$/.test(String(point.blobs?.[1])))).toBe(true);
    expect(idsOf(sink.sentToPipeline.filter((record) => (record as { environment_id: string }).environment_id === org.live.id))).toEqual([...eventIds].sort());
    expect(sink.queued).toEqual([]);
    expect(await decisionsInD1(org.live.id)).toEqual([]);
  });

  it("answers the metrics from Analytics Engine with the D1 default's shape", async () => {
    const result = await sink.call("GET", `/api/v1/admin/environments/${org.live.id}/metrics`, { key: org.live.secretKey });
    expect(result.status).toBe(200);
    const sum = totals(result.body.series);
    expect(sum).toMatchObject({ decisions: 5, accessChecks: 1, surfaceDecisions: 4, meterFallbacks: 0, workflowFailures: 0, offerImpressions: 0 });
    expect(sum.denied).toBeGreaterThanOrEqual(1);
    expect(result.body.step).toBe(60);
    expect(result.body.series).toHaveLength(61);
    expect(result.body.denials).toContainEqual({ featureSlug: "widget", property: "enabled", reason: "limit_reached", count: expect.any(Number) });
    const meter = result.body.stageLatency.find((stage: { stage: string }) => stage.stage === "meter");
    expect(meter).toMatchObject({ count: 5 });
    expect(LATENCY_BUCKETS_MS).toContain(meter.p50);
    expect(meter.p99).toBeGreaterThanOrEqual(meter.p50);
    // Another organization's key reads nothing of it.
    const other = await createOrganization("Cloudflare sink, another tenant");
    const foreign = await sink.call("GET", `/api/v1/admin/environments/${org.live.id}/metrics`, { key: other.live.secretKey });
    expect(foreign.status).toBe(404);
  });

  it("lists the records from the log merged with what stays in D1, pages included", async () => {
    const all = await sink.call("GET", `/api/v1/admin/events?environmentId=${org.live.id}&limit=100`, { key: org.live.secretKey });
    expect(all.status).toBe(200);
    const decisions = all.body.events.filter((event: { kind: string }) => event.kind !== "admin");
    expect(decisions.map((event: { id: string }) => event.id).sort()).toEqual([...eventIds].sort());
    expect(decisions.find((event: { id: string }) => event.id === eventIds[0]).record).toMatchObject({ plans: ["anonymous"], meter: { status: "ok" } });
    // Newest first, ties by id, across both stores.
    const order = all.body.events.map((event: { createdAt: string; id: string }) => `${event.createdAt}|${event.id}`);
    expect(order).toEqual([...order].sort().reverse());

    // Two at a time: the same records, none twice.
    const paged: string[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 20; page++) {
      const query: string = `environmentId=${org.live.id}&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const result = await sink.call("GET", `/api/v1/admin/events?${query}`, { key: org.live.secretKey });
      expect(result.status).toBe(200);
      paged.push(...result.body.events.map((event: { id: string }) => event.id));
      cursor = result.body.nextCursor;
      if (!cursor) break;
    }
    expect(paged).toEqual(all.body.events.map((event: { id: string }) => event.id));

    const surface = await sink.call("GET", `/api/v1/admin/events?environmentId=${org.live.id}&kind=surface_decision&outcome=denied`, { key: org.live.secretKey });
    expect(surface.body.events.length).toBeGreaterThanOrEqual(1);
    expect(surface.body.events.every((event: { kind: string; outcome: string }) => event.kind === "surface_decision" && event.outcome === "denied")).toBe(true);
    const one = await sink.call("GET", `/api/v1/admin/events?environmentId=${org.live.id}&identifier=sink-light`, { key: org.live.secretKey });
    expect(one.body.events.map((event: { id: string }) => event.id)).toEqual([eventIds[4]]);
  });

  it("quotes what a console user typed and refuses what it cannot search for", async () => {
    const quoted = await sink.call("GET", `/api/v1/admin/events?environmentId=${org.live.id}&identifier=${encodeURIComponent("x' OR '1'='1")}`, { key: org.live.secretKey });
    expect(quoted.status).toBe(200);
    expect(quoted.body.events).toEqual([]);
    const control = await sink.call("GET", `/api/v1/admin/events?environmentId=${org.live.id}&identifier=${encodeURIComponent("a\u0000b")}`, { key: org.live.secretKey });
    expect(control.status).toBe(400);
    expect(control.body).toMatchObject({ status: "error", code: "validation_failed" });
    expect(logQuerySql("decisions.log", { organizationId: "org_1", identifier: "o'brien", limit: 10 }, ["access_check"])).toContain("identifier = 'o''brien'");
  });

  it("keeps another organization's records out of its list", async () => {
    const other = await createOrganization("Cloudflare sink, a reader");
    const foreign = await sink.call("GET", `/api/v1/admin/events?identifier=sink-heavy`, { key: other.adminKey });
    expect(foreign.status).toBe(200);
    expect(foreign.body.events).toEqual([]);
  });

  it("answers a failing SQL API with a 502 in the error shape", async () => {
    expectConsoleError("The analytics API answered 500");
    expectConsoleError("The decision log (R2 SQL) answered: injected failure");
    await failFakeOnce("/client/v4", 500);
    const metrics = await sink.call("GET", `/api/v1/admin/environments/${org.live.id}/metrics`, { key: org.live.secretKey });
    expect(metrics.status).toBe(502);
    expect(metrics.body).toMatchObject({ status: "error", code: "upstream_error" });
    await failFakeOnce("/r2sql", 503);
    const events = await sink.call("GET", `/api/v1/admin/events?environmentId=${org.live.id}`, { key: org.live.secretKey });
    expect(events.status).toBe(502);
    expect(events.body).toMatchObject({ status: "error", code: "upstream_error" });
  });
});

describe("nothing is lost", () => {
  const setup = async (name: string, overrides: Partial<Record<string, unknown>> = {}) => {
    const org = await createOrganization(name);
    await publish(org.adminKey, helloWorld(), [org.live.id]);
    return { org, sink: cloudflareSink(overrides) };
  };

  it("queues what the stream refused, and the queue's consumer sends it", async () => {
    const { org, sink } = await setup("Sink: stream refuses once");
    sink.failPipeline(1);
    const response = await decide(sink, org, "/api/v1/surface-decisions", "stream-refuses");
    expect(response.status).toBe(200);
    await waitForBackgroundWork();
    expect(sink.queued.flatMap((message) => message.records.map((record) => record.id))).toContain(response.body.eventId);
    const { result, messages } = await sink.consumeLog();
    expect(result.explicitAcks).toHaveLength(messages.length);
    expect(idsOf(sink.sentToPipeline)).toContain(response.body.eventId);
    expect(await decisionsInD1(org.live.id)).toEqual([]);
  });

  it("writes to D1 what the stream and the queue both refused; the list shows each record once", async () => {
    const { org, sink } = await setup("Sink: stream and queue down");
    sink.failPipeline(1);
    sink.failQueue(1);
    const response = await decide(sink, org, "/api/v1/surface-decisions", "all-down");
    expect(response.status).toBe(200);
    await waitForBackgroundWork();
    expect(await decisionsInD1(org.live.id)).toEqual([response.body.eventId]);
    const listed = await sink.call("GET", `/api/v1/admin/events?environmentId=${org.live.id}&kind=surface_decision`, { key: org.live.secretKey });
    expect(listed.body.events.map((event: { id: string }) => event.id)).toEqual([response.body.eventId]);
    // Its metrics are counted, stream or not.
    await sink.writePoints();
    expect(countedPoints(sink, org.live.id, "decisions")).toBe(1);
  });

  it("retries a send the stream keeps refusing with a growing delay, and its dead letters land in D1 — listed once even when the log has them too", async () => {
    const { org, sink } = await setup("Sink: stream down");
    sink.failPipeline(1);
    const response = await decide(sink, org, "/api/v1/surface-decisions", "stream-down");
    await waitForBackgroundWork();
    const queued = [...sink.queued];
    sink.failPipeline(1);
    const first = await sink.consumeLog(1);
    expect(first.retryDelays).toEqual(first.messages.map(() => 10));
    expect(first.result.explicitAcks).toEqual([]);
    sink.failPipeline(1);
    sink.queued.push(...queued);
    expect((await sink.consumeLog(3)).retryDelays).toEqual(queued.map(() => 40));
    // It kept failing: the queue moved it to the dead-letter queue, whose consumer keeps it in D1.
    const dead = await sink.consumeDeadLetters(queued);
    expect(dead.explicitAcks).toHaveLength(queued.length);
    expect(await decisionsInD1(org.live.id)).toEqual([response.body.eventId]);
    const listed = await sink.call("GET", `/api/v1/admin/events?environmentId=${org.live.id}&kind=surface_decision`, { key: org.live.secretKey });
    expect(listed.body.events.map((event: { id: string }) => event.id)).toEqual([response.body.eventId]);
    // A send that the stream had in fact taken before it failed puts the record in the log too: still listed once.
    sink.queued.push(...queued);
    await sink.consumeLog(1);
    expect(idsOf(sink.sentToPipeline)).toContain(response.body.eventId);
    const again = await sink.call("GET", `/api/v1/admin/events?environmentId=${org.live.id}&kind=surface_decision`, { key: org.live.secretKey });
    expect(again.body.events.map((event: { id: string }) => event.id)).toEqual([response.body.eventId]);
  });

  it("without a stream binding the records wait in the queue, whose consumer keeps them in D1", async () => {
    const { org, sink } = await setup("Sink: no stream", { DECISION_LOG: undefined });
    const response = await decide(sink, org, "/api/v1/access-checks", "no-stream");
    await waitForBackgroundWork();
    expect(sink.queued).toHaveLength(1);
    const { result } = await sink.consumeLog();
    expect(result.retryMessages).toEqual([]);
    expect(await decisionsInD1(org.live.id)).toEqual([response.body.eventId]);
  });

  it("a sink missing its settings records into D1, and its reads say what is missing", async () => {
    const { org, sink } = await setup("Sink: misconfigured", { EVENTS_API_TOKEN: undefined, DECISION_METRICS: undefined });
    expectConsoleError('The event sink "cloudflare" is not configured');
    const response = await decide(sink, org, "/api/v1/surface-decisions", "misconfigured");
    expect(response.status).toBe(200);
    await waitForBackgroundWork();
    expect(await decisionsInD1(org.live.id)).toEqual([response.body.eventId]);
    const metrics = await sink.call("GET", `/api/v1/admin/environments/${org.live.id}/metrics`, { key: org.live.secretKey });
    expect(metrics.status).toBe(503);
    expect(metrics.body).toMatchObject({ status: "error", code: "service_unavailable" });
    expect(metrics.body.message).toContain("DECISION_METRICS");
    expect(metrics.body.message).toContain("EVENTS_API_TOKEN");
  });

  it("queue messages stay under the queue's size: large records compressed, a huge one bounded", async () => {
    const base = { organizationId: "org_1", environmentId: "env_1", kind: "surface_decision" as const, createdAt: new Date().toISOString() };
    const incompressible = (count: number) => Array.from({ length: count }, () => crypto.randomUUID()).join(",");
    const huge = { ...base, id: "evt_huge", record: { features: incompressible(10_000) } };
    const small = Array.from({ length: 40 }, (_, i) => ({ ...base, id: `evt_${i}`, record: { features: incompressible(100) } }));
    const messages = await logMessagesOf([huge, ...small]);
    expect(messages.length).toBeGreaterThan(1);
    for (const message of messages) expect(new TextEncoder().encode(JSON.stringify(message)).byteLength).toBeLessThan(128 * 1024);
    expect(messages.flatMap((message) => message.records.map((record) => record.id))).toEqual(["evt_huge", ...small.map((event) => event.id)]);
    expect(JSON.parse(await unpackRecordText(messages[0]!.records[0]!.record))).toMatchObject({ truncated: { limit: MAX_LOGGED_RECORD_BYTES, fields: ["features"] } });
    // A record whose JSON grows when escaped (quotes everywhere) is bounded by its escaped size.
    const quoted = { ...base, id: "evt_quoted", record: { words: Array.from({ length: 24_500 }, () => "a") } };
    const [alone] = await logMessagesOf([quoted]);
    expect(new TextEncoder().encode(JSON.stringify(alone)).byteLength).toBeLessThan(128 * 1024);
    // A large record of repeated shapes goes compressed, and reads back whole.
    const repetitive = { features: Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`f${i}`, { enabled: { hasAccess: true, value: "on", reason: "plan" } }])) };
    const [packed] = await logMessagesOf([{ ...base, id: "evt_big", record: repetitive }]);
    const text = packed!.records[0]!.record;
    expect(text.startsWith("gz:")).toBe(true);
    expect(text.length).toBeLessThan(JSON.stringify(repetitive).length / 5);
    expect(JSON.parse(await unpackRecordText(text))).toEqual(repetitive);
    expect(await unpackRecordText('{"small":true}')).toBe('{"small":true}');
    // What does not compress (random base64: signatures, tokens) is logged as it is.
    const randomText = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(6_000))));
    const random = { ...base, id: "evt_random", record: { signature: randomText } };
    const [plain] = await logMessagesOf([random]);
    expect(plain!.records[0]!.record.startsWith("{")).toBe(true);
  });

  it("a compressed record reads back whole from the log and from D1 after the dead-letter queue", async () => {
    const org = await createOrganization("Sink: compressed");
    const sink = cloudflareSink();
    const record = { features: Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`f${i}`, { enabled: { hasAccess: i % 2 === 0, value: "on" } }])) };
    const event = (id: string) => ({ id, organizationId: org.id, environmentId: org.live.id, kind: "access_check" as const, createdAt: new Date().toISOString(), identifier: "big", record });
    const [logged] = await logMessagesOf([event("evt_big_log")]);
    expect(logged!.records[0]!.record.startsWith("gz:")).toBe(true);
    await ingestLogRows(logged!.records as unknown as Record<string, unknown>[]);
    const fromLog = await sink.call("GET", `/api/v1/admin/events?environmentId=${org.live.id}&identifier=big`, { key: org.adminKey });
    expect(fromLog.body.events.map((listed: { id: string; record: unknown }) => [listed.id, listed.record])).toEqual([["evt_big_log", record]]);
    const dead = await logMessagesOf([event("evt_big_dead")]);
    expect((await sink.consumeDeadLetters(dead)).explicitAcks).toHaveLength(1);
    const row = await env.DB.prepare("SELECT record FROM events WHERE id = 'evt_big_dead'").first<{ record: string }>();
    expect(JSON.parse(row!.record)).toEqual(record);
  });

  it("the log's queue settings in wrangler.toml's production block are the consumer's constants", () => {
    const block = wranglerToml.slice(wranglerToml.indexOf("# Production event sink"));
    const consumers = block
      .split(/^# \[\[/m)
      .filter((section) => section.startsWith("queues.consumers]]"))
      .map((section) => Object.fromEntries([...section.matchAll(/^# (\w+) = "?([^"\n]*)"?\s*$/gm)].map(([, key, value]) => [key, value])));
    expect(consumers).toEqual([
      expect.objectContaining({ queue: DECISION_LOG_QUEUE, max_retries: String(DECISION_LOG_MAX_RETRIES), dead_letter_queue: DECISION_LOG_DEAD_LETTER_QUEUE }),
      expect.objectContaining({ queue: DECISION_LOG_DEAD_LETTER_QUEUE, max_retries: String(DEAD_LETTER_ATTEMPTS - 1) }),
    ]);
    expect(block).toMatch(new RegExp(`# binding = "DECISION_LOG_QUEUE"\\s*\\n# queue = "${DECISION_LOG_QUEUE}"`));
  });
});

describe("Analytics Engine data points", () => {
  it("are the rollup rows, at most MAX_POINTS_PER_FLUSH per flush (Analytics Engine takes 25 per invocation)", () => {
    const written: AnalyticsEngineDataPoint[] = [];
    const dataset: AnalyticsEngineDataset = { writeDataPoint: (point) => void written.push(point!) };
    const createdAt = "2026-11-26T07:01:30.000Z";
    const denials = Array.from({ length: 30 }, (_, i) => ({ featureSlug: `f${i}`, property: "enabled", reason: "limit_reached" }));
    holdDataPointsOf(dataset, [{ environmentId: "env_1", kind: "surface_decision", createdAt, outcome: "denied", record: { denials, offers: [{ offer: "o1", variant: "a" }, { offer: "o2" }], timings: { meter: 1.2 } } }]);
    // Not yet due: rows wait for the interval.
    expect(writeHeldDataPoints(dataset)).toBeGreaterThan(MAX_POINTS_PER_FLUSH);
    expect(written).toEqual([]);
    const left = writeHeldDataPoints(dataset, { force: true });
    expect(written).toHaveLength(MAX_POINTS_PER_FLUSH);
    while (writeHeldDataPoints(dataset, { force: true }) > 0);
    expect(written.length).toBe(MAX_POINTS_PER_FLUSH + left);
    expect(written).toContainEqual({ indexes: ["env_1"], blobs: ["decisions", "2026-11-26 07:01:00", ""], doubles: [1, 0] });
    expect(written).toContainEqual({ indexes: ["env_1"], blobs: ["denial", "2026-11-26 07:01:00", JSON.stringify(["f7", "enabled", "limit_reached"])], doubles: [1, 0] });
    expect(written).toContainEqual({ indexes: ["env_1"], blobs: ["stage", "2026-11-26 07:01:00", "meter"], doubles: [1, latencyBucket(1.2)] });
    expect(written).toContainEqual({ indexes: ["env_1"], blobs: ["offer_impression", "2026-11-26 07:01:00", JSON.stringify(["o2", null])], doubles: [1, 0] });
    expect(written.filter((point) => point.blobs?.[0] === "denial")).toHaveLength(30);
    expect(dataPointOf(["env_1", "2026-11-26T07:01:00.000Z", "denied", "", 0, 3])).toEqual({ indexes: ["env_1"], blobs: ["denied", "2026-11-26 07:01:00", ""], doubles: [3, 0] });
  });

  it("weighs sampled points by their sample interval", async () => {
    const settings = { apiBase: `${inject("cloudflareEventsBase")}/client/v4`, accountId: "acct", token: FAKE_EVENTS_TOKEN, dataset: DATASET };
    const environmentId = `env_sampled_${crypto.randomUUID().slice(0, 8)}`;
    const now = Date.now();
    const minute = new Date(Math.floor(now / 60_000) * 60_000).toISOString();
    const point = (metric: string, dimension: string, bucket: number, count: number, sampleInterval: number) => ({ ...dataPointOf([environmentId, minute, metric, dimension, bucket, count]), sampleInterval, timestamp: now });
    await ingestPoints([
      point("decisions", "", 0, 1, 10),
      point("access_checks", "", 0, 1, 10),
      point("decisions", "", 0, 1, 1),
      point("access_checks", "", 0, 1, 1),
      point("denied", "", 0, 1, 1),
      point("stage", "meter", latencyBucket(1), 1, 10),
      point("stage", "meter", latencyBucket(100), 1, 1),
    ]);
    const metrics = await queryAnalyticsMetrics(settings, { environmentId, from: new Date(now - 60_000).toISOString(), to: new Date(now + 60_000).toISOString() });
    expect(totals(metrics.series as unknown as Record<string, number>[])).toMatchObject({ decisions: 11, accessChecks: 11, denied: 1 });
    // Ten of eleven took 1 ms: the median is 1, the 95th and 99th the slow one.
    expect(metrics.stageLatency).toEqual([{ stage: "meter", count: 11, p50: 1, p95: 100, p99: 100 }]);
  });
});

describe("the production sink, reviewed", () => {
  it("a retry the meter replayed is neither counted nor logged again", async () => {
    const org = await createOrganization("Sink: replays");
    await publish(org.adminKey, helloWorld(), [org.live.id]);
    const sink = cloudflareSink();
    const send = () =>
      sink.call("POST", "/api/v1/surface-decisions", {
        key: org.live.secretKey,
        headers: { "idempotency-key": "replayed-once" },
        body: { surfaceSlug: "hello-world", identity: { anonymousIdentifier: "replaying" } },
      });
    const first = await send();
    const again = await send();
    expect(again.body.eventId).toBe(first.body.eventId);
    await waitForBackgroundWork();
    await sink.writePoints();
    expect(countedPoints(sink, org.live.id, "decisions")).toBe(1);
    expect(sink.sentToPipeline.filter((record) => (record as { id: string }).id === first.body.eventId)).toHaveLength(1);
  });

  it("a keyed retry of a decision that calls no meter is not counted or logged twice by the isolate that logged it", async () => {
    const org = await createOrganization("Sink: unmetered replays");
    const document = helloWorld();
    document.plans.anonymous.features.widget.enabled = "on";
    await publish(org.adminKey, document, [org.live.id]);
    const sink = cloudflareSink();
    const send = () =>
      sink.call("POST", "/api/v1/surface-decisions", {
        key: org.live.secretKey,
        headers: { "idempotency-key": "unmetered-once" },
        body: { surfaceSlug: "hello-world", identity: { anonymousIdentifier: "unmetered" } },
      });
    const first = await send();
    await waitForBackgroundWork();
    const again = await send();
    expect(again.body.eventId).toBe(first.body.eventId);
    await waitForBackgroundWork();
    await sink.writePoints();
    expect(countedPoints(sink, org.live.id, "decisions")).toBe(1);
    expect(sink.sentToPipeline.filter((record) => (record as { id: string }).id === first.body.eventId)).toHaveLength(1);
  });

  it("reads the log's default window back from `to` or the cursor, not only from now", () => {
    const now = Date.parse("2026-11-26T00:00:00.000Z");
    const to = "2026-10-01T00:00:00.000Z";
    expect(logQuerySql("decisions.log", { organizationId: "org_1", to, limit: 10 }, ["access_check"], now)).toContain("__ingest_ts >= '2026-09-23T23:59:00.000Z'");
    expect(logQuerySql("decisions.log", { organizationId: "org_1", before: `${to}|evt_x`, limit: 10 }, ["access_check"], now)).toContain("__ingest_ts >= '2026-09-23T23:59:00.000Z'");
    expect(logQuerySql("decisions.log", { organizationId: "org_1", limit: 10 }, ["access_check"], now)).toContain("__ingest_ts >= '2026-11-18T23:59:00.000Z'");
  });

  it("pages through duplicated log rows without stopping early or repeating a record", async () => {
    const org = await createOrganization("Sink: duplicates");
    const sink = cloudflareSink();
    const row = (id: string, createdAt: string) => ({ id, organization_id: org.id, environment_id: org.live.id, kind: "surface_decision", created_at: createdAt, identifier: "dup", surface_slug: "s", outcome: "granted", record: "{}" });
    const now = Date.now();
    const at = (secondsAgo: number) => new Date(now - secondsAgo * 1000).toISOString();
    // c delivered twice (a send retried after the stream had taken it), then b and a.
    await ingestLogRows([row("evt_c", at(3)), row("evt_c", at(3)), row("evt_b", at(2) ), row("evt_a", at(1))].reverse());
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 10; page++) {
      const result: { body: { events: { id: string }[]; nextCursor: string | null } } = await sink.call("GET", `/api/v1/admin/events?environmentId=${org.live.id}&kind=surface_decision&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, { key: org.adminKey });
      seen.push(...result.body.events.map((event) => event.id));
      cursor = result.body.nextCursor;
      if (!cursor) break;
    }
    expect(seen).toEqual(["evt_a", "evt_b", "evt_c"]);
  });

  it("answers 502 when the log's created_at is not an instant, and normalizes bounds and cursors for both stores", async () => {
    const org = await createOrganization("Sink: odd rows");
    const sink = cloudflareSink();
    await ingestLogRows([{ id: "evt_odd", organization_id: org.id, environment_id: org.live.id, kind: "access_check", created_at: "1767225600123456", identifier: "odd", surface_slug: null, outcome: "granted", record: "{}" }]);
    expectConsoleError("not an ISO-8601 instant");
    const odd = await sink.call("GET", `/api/v1/admin/events?environmentId=${org.live.id}`, { key: org.adminKey });
    expect(odd.status).toBe(502);
    expect(odd.body).toMatchObject({ status: "error", code: "upstream_error" });
    // A cursor no list answered is a 400 in either store.
    for (const store of [sink.call, call]) {
      const bad = await store("GET", `/api/v1/admin/events?cursor=${encodeURIComponent("not-a-cursor")}`, { key: org.adminKey });
      expect(bad.status).toBe(400);
      expect(bad.body).toMatchObject({ code: "validation_failed" });
    }
  });

  it("bounds given to the second match records stored to the millisecond (the D1 default too)", async () => {
    const org = await createOrganization("Sink: bounds");
    await publish(org.adminKey, helloWorld(), [org.live.id]);
    const response = await call("POST", "/api/v1/access-checks", { key: org.live.secretKey, body: { identity: { anonymousIdentifier: "bounded" } } });
    await waitForBackgroundWork();
    const { results } = await env.DB.prepare("SELECT created_at FROM events WHERE id = ?").bind(response.body.eventId).all<{ created_at: string }>();
    const second = results[0]!.created_at.slice(0, 19) + "Z";
    const listed = await call("GET", `/api/v1/admin/events?environmentId=${org.live.id}&kind=access_check&from=${second}&to=${encodeURIComponent(new Date(Date.parse(second) + 1000).toISOString().slice(0, 19) + "Z")}`, { key: org.adminKey });
    expect(listed.body.events.map((event: { id: string }) => event.id)).toEqual([response.body.eventId]);
  });

  it("a quiet isolate writes its held points on a timer, within the request's budget of points", async () => {
    const org = await createOrganization("Sink: quiet");
    await publish(org.adminKey, helloWorld(), [org.live.id]);
    // Rows wait 300 ms: the flush (after 250 ms) finds them not yet due, so only the timer can write them.
    const sink = cloudflareSink({ ANALYTICS_WRITE_INTERVAL_MS: "300" });
    await decide(sink, org, "/api/v1/surface-decisions", "quiet-one");
    await waitForBackgroundWork();
    // No later decision, no forced write: the timer wrote them.
    expect(countedPoints(sink, org.live.id, "decisions")).toBe(1);
    // One request's writes (its flush and its timer) stay within MAX_POINTS_PER_FLUSH.
    const dataset: AnalyticsEngineDataset = { writeDataPoint: () => undefined };
    const invocation = {};
    const denials = Array.from({ length: 40 }, (_, i) => ({ featureSlug: `f${i}`, property: "enabled", reason: "limit_reached" }));
    holdDataPointsOf(dataset, [{ environmentId: "env_q", kind: "surface_decision", createdAt: new Date().toISOString(), outcome: "denied", record: { denials } }]);
    const held = writeHeldDataPoints(dataset, { force: true, invocation });
    expect(writeHeldDataPoints(dataset, { force: true, invocation })).toBe(held);
    expect(writeHeldDataPoints(dataset, { force: true, invocation: {} })).toBe(held - MAX_POINTS_PER_FLUSH);
  });
});

describe("the offer funnel on the production sink", () => {
  it("counts impressions from Analytics Engine per offer and variant, redemptions from D1", async () => {
    const shop = await redemptionShop();
    const sink = cloudflareSink();
    const shown = new Map<string, number>();
    for (let index = 0; index < 3; index++) {
      const response = await sink.call("POST", "/api/v1/surface-decisions", {
        key: shop.key,
        body: { surfaceSlug: "article-page", identity: { anonymousIdentifier: `funnel-${index}-${crypto.randomUUID()}` }, resource: { id: `article-${index}` } },
      });
      expect(response.status).toBe(200);
      for (const slot of response.body.offers.paywall.slots) {
        if (slot.offer) shown.set(JSON.stringify([slot.offer.offer, slot.offer.variant]), (shown.get(JSON.stringify([slot.offer.offer, slot.offer.variant])) ?? 0) + 1);
      }
    }
    expect(shown.size).toBeGreaterThan(0);
    await waitForBackgroundWork();
    await sink.writePoints();
    const funnel = await sink.call("GET", `/api/v1/admin/environments/${shop.environmentId}/offers/funnel`, { key: shop.org.adminKey });
    expect(funnel.status).toBe(200);
    const impressions = new Map(funnel.body.data.map((row: { offer: string; variant: string | null; impressions: number }) => [JSON.stringify([row.offer, row.variant]), row.impressions]));
    expect(impressions).toEqual(shown);
    // The D1 default knows none of them: they were never written there.
    const d1 = await call("GET", `/api/v1/admin/environments/${shop.environmentId}/offers/funnel`, { key: shop.org.adminKey });
    expect(d1.body.data).toEqual([]);
  });
});
