/**
 * The production event sink (`EVENT_SINK = "cloudflare"`): decisions write Analytics Engine data points and their
 * records go through the log's queue into the Pipelines stream; the console reads metrics, the offer funnel's
 * impressions and the event list back through the SQL APIs — here the local fake of them (test/fake-cloudflare-events).
 * Nothing is lost when the queue or the pipeline refuses; the hot path never waits.
 */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { dataPointsOf, MAX_DETAIL_POINTS, queryAnalyticsMetrics, STAGES } from "../../../workers/services/analyticsEngine";
import { DECISION_LOG_MAX_RETRIES, logMessagesOf, MAX_LOGGED_RECORD_BYTES } from "../../../workers/services/decisionLog";
import { logQuerySql } from "../../../workers/services/r2SqlLog";
import { createOrganization, publish, waitForBackgroundWork, type TestOrganization } from "../../support/api";
import { cloudflareSink, DATASET, failFakeOnce, FAKE_EVENTS_TOKEN, ingestPoints, type CloudflareSink } from "../../support/cloudflareSink";
import { helloWorld } from "../../support/examples";
import { expectConsoleError } from "../../support/console";
import { inject } from "vitest";

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

describe("the production event sink", () => {
  let org: TestOrganization;
  let sink: CloudflareSink;
  const eventIds: string[] = [];
  /** What the Worker queued for the log, before its consumer ran (in beforeAll: every test reads the log delivered). */
  let queuedRecords: { id: string; environment_id: string }[] = [];
  let consumed: Awaited<ReturnType<CloudflareSink["consumeLog"]>>;

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
    await sink.delivered();
    queuedRecords = sink.queued.flatMap((message) => message.records);
    consumed = await sink.consumeLog();
  });

  it("writes one decision point per decision and nothing of them to D1", async () => {
    const decisions = sink.points.filter((point) => point.blobs?.[0] === "decision" && point.indexes?.[0] === org.live.id);
    expect(decisions).toHaveLength(5);
    expect(decisions.map((point) => point.blobs?.[1]).sort()).toEqual(["access_check", "surface_decision", "surface_decision", "surface_decision", "surface_decision"]);
    expect(decisions.every((point) => point.blobs?.[3] === org.id)).toBe(true);
    expect(await decisionsInD1(org.live.id)).toEqual([]);
    // The records went to the log's queue, and its consumer sent them to the pipeline.
    const logged = queuedRecords.filter((record) => record.environment_id === org.live.id);
    expect(logged.map((record) => record.id).sort()).toEqual([...eventIds].sort());
    expect(consumed.result.explicitAcks.length).toBe(consumed.messages.length);
    expect(sink.sentToPipeline.map((record) => (record as { id: string }).id).sort()).toEqual([...eventIds].sort());
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
    expect(meter.p50).toBeGreaterThanOrEqual(0);
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
  it("writes a batch to D1 when the log's queue refuses it; the list shows each record once", async () => {
    const org = await createOrganization("Sink: queue down");
    await publish(org.adminKey, helloWorld(), [org.live.id]);
    const sink = cloudflareSink();
    sink.failQueue(1);
    const response = await decide(sink, org, "/api/v1/surface-decisions", "queue-down");
    expect(response.status).toBe(200);
    await waitForBackgroundWork();
    expect(await decisionsInD1(org.live.id)).toEqual([response.body.eventId]);
    const listed = await sink.call("GET", `/api/v1/admin/events?environmentId=${org.live.id}&kind=surface_decision`, { key: org.live.secretKey });
    expect(listed.body.events.map((event: { id: string }) => event.id)).toEqual([response.body.eventId]);
    // Its metrics were written at once, queue or not.
    await sink.delivered();
    expect(sink.points.filter((point) => point.indexes?.[0] === org.live.id && point.blobs?.[0] === "decision")).toHaveLength(1);
  });

  it("retries a send the pipeline refused, and the dead letters land in D1 — listed once even when the log has them too", async () => {
    const org = await createOrganization("Sink: pipeline down");
    await publish(org.adminKey, helloWorld(), [org.live.id]);
    const sink = cloudflareSink();
    const response = await decide(sink, org, "/api/v1/surface-decisions", "pipeline-down");
    await waitForBackgroundWork();
    sink.failPipeline(1);
    const first = await sink.consumeLog(1);
    expect(first.result.retryMessages).toHaveLength(first.messages.length);
    expect(first.retryDelays).toEqual(first.messages.map(() => 10));
    expect((await (sink.failPipeline(1), sink.queued.push(...first.messages), sink.consumeLog(3))).retryDelays).toEqual(first.messages.map(() => 40));
    expect(first.result.explicitAcks).toEqual([]);
    // It kept failing: the queue moved it to the dead-letter queue, whose consumer keeps it in D1.
    const dead = await sink.consumeDeadLetters(first.messages);
    expect(dead.explicitAcks).toHaveLength(first.messages.length);
    expect(await decisionsInD1(org.live.id)).toEqual([response.body.eventId]);
    const listed = await sink.call("GET", `/api/v1/admin/events?environmentId=${org.live.id}&kind=surface_decision`, { key: org.live.secretKey });
    expect(listed.body.events.map((event: { id: string }) => event.id)).toEqual([response.body.eventId]);
    // A send that was in fact ingested before it failed puts the record in the log too: still listed once.
    sink.queued.push(...first.messages);
    await sink.consumeLog(1);
    const again = await sink.call("GET", `/api/v1/admin/events?environmentId=${org.live.id}&kind=surface_decision`, { key: org.live.secretKey });
    expect(again.body.events.map((event: { id: string }) => event.id)).toEqual([response.body.eventId]);
  });

  it("keeps the records in D1 when the deployment has no pipeline binding", async () => {
    const org = await createOrganization("Sink: no pipeline");
    await publish(org.adminKey, helloWorld(), [org.live.id]);
    const sink = cloudflareSink({ DECISION_LOG: undefined });
    const response = await decide(sink, org, "/api/v1/access-checks", "no-pipeline");
    await waitForBackgroundWork();
    const { result } = await sink.consumeLog();
    expect(result.retryMessages).toEqual([]);
    expect(await decisionsInD1(org.live.id)).toEqual([response.body.eventId]);
  });

  it("a sink missing its settings records into D1, and its reads say what is missing", async () => {
    const org = await createOrganization("Sink: misconfigured");
    await publish(org.adminKey, helloWorld(), [org.live.id]);
    const sink = cloudflareSink({ EVENTS_API_TOKEN: undefined, DECISION_METRICS: undefined });
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

  it("queue messages stay under the queue's size, a huge record bounded", () => {
    const huge = { id: "evt_huge", organizationId: "org_1", environmentId: "env_1", kind: "surface_decision" as const, createdAt: new Date().toISOString(), record: { features: "x".repeat(300 * 1024) } };
    const small = Array.from({ length: 60 }, (_, i) => ({ ...huge, id: `evt_${i}`, record: { features: "y".repeat(4 * 1024) } }));
    const messages = logMessagesOf([huge, ...small]);
    for (const message of messages) expect(new TextEncoder().encode(JSON.stringify(message)).byteLength).toBeLessThan(128 * 1024);
    expect(messages.flatMap((message) => message.records.map((record) => record.id))).toEqual(["evt_huge", ...small.map((event) => event.id)]);
    expect(JSON.parse(messages[0]!.records[0]!.record)).toMatchObject({ truncated: { limit: MAX_LOGGED_RECORD_BYTES, fields: ["features"] } });
    expect(DECISION_LOG_MAX_RETRIES).toBeGreaterThan(0);
  });
});

describe("Analytics Engine data points", () => {
  it("lays out a decision as documented, and stays within 25 points however many details it has", () => {
    const record = {
      denials: Array.from({ length: 30 }, (_, i) => ({ featureSlug: `f${i}`, property: "enabled", reason: "limit_reached" })),
      workflows: Array.from({ length: 8 }, () => ({ ok: false, kind: "timeout" })),
      offers: Array.from({ length: 12 }, (_, i) => ({ offer: `o${i}`, variant: "a" })),
      meter: { status: "fallback" },
      timings: { identity: 0.5, meter: 1.25, render: 0 },
    };
    const points = dataPointsOf({ organizationId: "org_1", environmentId: "env_1", kind: "surface_decision", outcome: "denied", surfaceSlug: "home", record });
    expect(points).toHaveLength(1 + MAX_DETAIL_POINTS);
    expect(points[0]).toEqual({
      indexes: ["env_1"],
      blobs: ["decision", "surface_decision", "denied", "org_1", "home", "fallback"],
      doubles: [1, 1, 1, 8, 12, ...STAGES.map((stage) => ({ identity: 0.5, meter: 1.25, render: 0 })[stage as string] ?? -1)],
    });
    expect(points[0]!.doubles).toHaveLength(5 + STAGES.length);
    expect(points[0]!.doubles!.length).toBeLessThanOrEqual(20);
    expect(points.filter((point) => point.blobs?.[0] === "denial")).toHaveLength(10);
    expect(points.filter((point) => point.blobs?.[0] === "workflow_failure")).toHaveLength(5);
    expect(points[1]).toEqual({ indexes: ["env_1"], blobs: ["denial", "surface_decision", "denied", "org_1", "f0", "enabled", "limit_reached"], doubles: [1] });
    expect(dataPointsOf({ organizationId: "org_1", environmentId: "env_1", kind: "admin", record: {} })).toEqual([]);
  });

  it("weighs sampled points by their sample interval", async () => {
    const settings = { apiBase: `${inject("cloudflareEventsBase")}/client/v4`, accountId: "acct", token: FAKE_EVENTS_TOKEN, dataset: DATASET };
    const environmentId = `env_sampled_${crypto.randomUUID().slice(0, 8)}`;
    const now = Date.now();
    const decision = (outcome: string, meterMs: number) => ({
      ...dataPointsOf({ organizationId: "org_s", environmentId, kind: "access_check", outcome, record: { timings: { meter: meterMs } } })[0]!,
      timestamp: now,
    });
    await ingestPoints([
      { ...decision("granted", 1), sampleInterval: 10 },
      { ...decision("denied", 100), sampleInterval: 1 },
    ]);
    const metrics = await queryAnalyticsMetrics(settings, { organizationId: "org_s", environmentId, from: new Date(now - 60_000).toISOString(), to: new Date(now + 60_000).toISOString() });
    expect(totals(metrics.series as unknown as Record<string, number>[])).toMatchObject({ decisions: 11, accessChecks: 11, denied: 1 });
    // Ten of eleven took 1 ms: the median and the 90th are 1, the 99th the slow one.
    expect(metrics.stageLatency).toEqual([{ stage: "meter", count: 11, p50: 1, p95: 100, p99: 100 }]);
    // Another organization's name on the same environment id reads nothing.
    const foreign = await queryAnalyticsMetrics(settings, { organizationId: "org_other", environmentId, from: new Date(now - 60_000).toISOString(), to: new Date(now + 60_000).toISOString() });
    expect(totals(foreign.series as unknown as Record<string, number>[]).decisions).toBe(0);
  });
});
