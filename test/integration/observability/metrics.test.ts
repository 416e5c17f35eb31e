/**
 * Decision metrics per minute: rolled up from each flushed batch of decision records in the same D1 batch, read back
 * per environment over a range of at most 7 days.
 */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { flushEvents, recordEvent } from "../../../workers/services/events";
import { LATENCY_BUCKETS_MS, latencyBucket, pruneRollups, ROLLUP_RETENTION_MS, writeHeldRollups } from "../../../workers/services/metrics";
import { call, createOrganization, publish, waitForBackgroundWork, type TestOrganization } from "../../support/api";
import { eventsFor } from "../../support/events";
import { helloWorld } from "../../support/examples";
import { faultyMeter, workerWith } from "../../support/faults";

const metricsOf = (key: string, environmentId: string, query = "") => call("GET", `/api/v1/admin/environments/${environmentId}/metrics${query}`, { key });

/** The series' totals over the range. */
function totals(series: Record<string, number | string>[]): Record<string, number> {
  const sums: Record<string, number> = {};
  for (const point of series) for (const [name, value] of Object.entries(point)) if (typeof value === "number") sums[name] = (sums[name] ?? 0) + value;
  return sums;
}

let org: TestOrganization;
beforeAll(async () => {
  org = await createOrganization("Metrics");
  await publish(org.adminKey, helloWorld(), [org.live.id]);
});

describe("metrics", () => {
  it("counts an environment's decisions, denials by reason and meter fallbacks per minute", async () => {
    const decide = (path: string, identifier: string) => call("POST", path, { key: org.live.secretKey, body: { surfaceSlug: "hello-world", identity: { anonymousIdentifier: identifier } } });
    // Three uses of the lifetime allowance, then a denial (limit_reached).
    for (let use = 0; use < 4; use++) expect((await decide("/api/v1/surface-decisions", "metrics-heavy")).status).toBe(200);
    expect((await decide("/api/v1/access-checks", "metrics-light")).status).toBe(200);
    const failing = workerWith({ meter: faultyMeter("error", ["metrics-unmetered"]) });
    expect((await failing("POST", "/api/v1/surface-decisions", { key: org.live.secretKey, body: { surfaceSlug: "hello-world", identity: { anonymousIdentifier: "metrics-unmetered" } } })).status).toBe(200);
    await waitForBackgroundWork();

    const result = await metricsOf(org.live.secretKey, org.live.id);
    expect(result.status).toBe(200);
    const records = (await eventsFor(org.live.secretKey, `environmentId=${org.live.id}&limit=100`, 6)).filter((event) => ["access_check", "surface_decision"].includes(event.kind));
    const sum = totals(result.body.series);
    expect(sum).toEqual({
      decisions: 6,
      accessChecks: 1,
      surfaceDecisions: 5,
      denied: records.filter((event) => event.outcome === "denied").length,
      meterFallbacks: 1,
      workflowFailures: 0,
      offerImpressions: 0,
    });
    expect(sum.denied).toBeGreaterThanOrEqual(2); // the 4th use, and the fallback (closed) of the unreachable meter

    // Denials by feature, property and reason: what the records say, largest first.
    const expected = new Map<string, number>();
    for (const event of records) {
      for (const { featureSlug, property, reason } of event.record.denials) {
        const key = JSON.stringify([featureSlug, property, reason]);
        expected.set(key, (expected.get(key) ?? 0) + 1);
      }
    }
    expect(result.body.denials.map(({ featureSlug, property, reason, count }: any) => [JSON.stringify([featureSlug, property, reason]), count])).toEqual(
      [...expected].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])),
    );
    expect(result.body.denials).toContainEqual({ featureSlug: "widget", property: "enabled", reason: "limit_reached", count: 1 });
    expect(result.body.denials).toContainEqual({ featureSlug: "widget", property: "enabled", reason: "meter_unavailable", count: 1 });

    // Every decision's stages are timed.
    const stages = result.body.stageLatency.map((entry: { stage: string }) => entry.stage);
    expect(stages.length).toBeGreaterThan(0);
    for (const entry of result.body.stageLatency) expect(entry.count).toBeLessThanOrEqual(6);

    // The default range: the last hour, one point per minute.
    const span = Date.parse(result.body.to) - Date.parse(result.body.from);
    expect(span).toBe(60 * 60 * 1000);
    expect(result.body.step).toBe(60);
    expect(result.body.series).toHaveLength(61);
    expect(result.body.series[0]).toEqual({ minute: expect.stringMatching(/:00\.000Z$/), decisions: 0, accessChecks: 0, surfaceDecisions: 0, denied: 0, meterFallbacks: 0, workflowFailures: 0, offerImpressions: 0 });
  });

  it("rolls up workflow failures by kind, offer impressions and stage latency percentiles from the records' own values", async () => {
    const background: Promise<unknown>[] = [];
    const ctx = { waitUntil: (work: Promise<unknown>) => void background.push(work) };
    const timings = [...Array(18).fill(3), 50, 500];
    timings.forEach((ms, i) =>
      recordEvent(ctx, env.DB, {
        id: `evt_metrics_known_${org.id}_${i}`,
        organizationId: org.id,
        environmentId: org.preview.id,
        kind: i % 2 ? "access_check" : "surface_decision",
        identifier: `known-${i}`,
        outcome: "granted",
        record: {
          timings: { lookup: ms, render: 0.2 },
          workflows: i < 3 ? [{ slug: "grant", ok: false, kind: i === 0 ? "timeout" : "threw" }, { slug: "other", ok: true }] : [],
          offers: i < 5 ? [{ offer: "upgrade" }, { offer: "trial" }] : [],
          meter: { status: "ok" },
        },
      }),
    );
    // Not a decision: no metric counts it.
    recordEvent(ctx, env.DB, { id: `evt_metrics_update_${org.id}`, organizationId: org.id, environmentId: org.preview.id, kind: "counter_update", record: { timings: { lookup: 1 } } });
    await flushEvents();
    await Promise.all(background);

    const result = await metricsOf(org.adminKey, org.preview.id);
    expect(result.status).toBe(200);
    expect(totals(result.body.series)).toEqual({ decisions: 20, accessChecks: 10, surfaceDecisions: 10, denied: 0, meterFallbacks: 0, workflowFailures: 3, offerImpressions: 10 });
    expect(result.body.workflowFailures).toEqual([
      { kind: "threw", count: 2 },
      { kind: "timeout", count: 1 },
    ]);
    expect(result.body.denials).toEqual([]);
    expect(result.body.stageLatency).toEqual([
      { stage: "lookup", count: 20, p50: 3, p95: 50, p99: 500 },
      { stage: "render", count: 20, p50: 0.2, p95: 0.2, p99: 0.2 },
    ]);
  });

  it("keeps each environment's and organization's metrics apart", async () => {
    const stranger = await createOrganization("Metrics stranger");
    const own = await metricsOf(stranger.adminKey, stranger.live.id);
    expect(own.status).toBe(200);
    expect(totals(own.body.series).decisions).toBe(0);
    expect(own.body.stageLatency).toEqual([]);

    const foreign = await metricsOf(stranger.adminKey, org.live.id);
    expect(foreign.status).toBe(404);
    expect(foreign.body.code).toBe("not_found");
    const otherEnvironment = await metricsOf(org.preview.secretKey, org.live.id);
    expect(otherEnvironment.status).toBe(403);
    const reader = await call("POST", "/api/v1/admin/organization/keys", { key: org.adminKey, body: { name: "metrics reader", role: "read-only" } });
    expect((await metricsOf(reader.body.key, org.live.id)).status).toBe(200);
  });

  it("takes a range of at most 7 days, from before to", async () => {
    const to = new Date();
    const iso = (ms: number) => new Date(ms).toISOString();
    const week = await metricsOf(org.adminKey, org.live.id, `?from=${iso(to.getTime() - 7 * 24 * 60 * 60 * 1000)}&to=${to.toISOString()}`);
    expect(week.status).toBe(200);
    // Beyond a day, a point per hour: from the hour of `from` to the hour of `to`.
    expect(week.body.step).toBe(3600);
    expect(week.body.series).toHaveLength(7 * 24 + 1);
    expect(totals(week.body.series).decisions).toBe(6);

    const tooLong = await metricsOf(org.adminKey, org.live.id, `?from=${iso(to.getTime() - 7 * 24 * 60 * 60 * 1000 - 60_000)}&to=${to.toISOString()}`);
    expect(tooLong.status).toBe(400);
    expect(tooLong.body).toMatchObject({ code: "validation_failed", details: [{ path: "query.to", message: "the range is at most 7 days" }] });
    const backwards = await metricsOf(org.adminKey, org.live.id, `?from=${to.toISOString()}&to=${iso(to.getTime() - 60_000)}`);
    expect(backwards.status).toBe(400);
    expect(backwards.body.details).toEqual([{ path: "query.from", message: "must be before to" }]);
    expect((await metricsOf(org.adminKey, org.live.id, "?from=yesterday")).status).toBe(400);

    // `from` alone: the hour from it. One still to come answers zeros.
    const future = Date.now() + 24 * 60 * 60 * 1000;
    const ahead = await metricsOf(org.adminKey, org.live.id, `?from=${iso(future)}`);
    expect(ahead.status, JSON.stringify(ahead.body)).toBe(200);
    expect(ahead.body.to).toBe(iso(future + 60 * 60 * 1000));
    expect(ahead.body.series).toHaveLength(61);
    expect(totals(ahead.body.series).decisions).toBe(0);
    const lastHourFrom = await metricsOf(org.adminKey, org.live.id, `?from=${iso(to.getTime() - 30 * 60_000)}`);
    expect(lastHourFrom.body.to).toBe(iso(to.getTime() + 30 * 60_000));

    // A range in the past holds none of today's decisions.
    const past = await metricsOf(org.adminKey, org.live.id, `?from=${iso(to.getTime() - 3 * 60 * 60 * 1000)}&to=${iso(to.getTime() - 2 * 60 * 60 * 1000)}`);
    expect(totals(past.body.series).decisions).toBe(0);
  });

  it("sums the series per step: a minute up to 6 hours, 5 minutes up to a day, an hour beyond", async () => {
    const stepped = await createOrganization("Metrics steps");
    await publish(stepped.adminKey, helloWorld(), [stepped.live.id]);
    // Rollups at known minutes (as the flushes write them), within the retention: a day that began two days ago.
    const day0 = Math.floor(Date.now() / 86_400_000) * 86_400_000 - 2 * 86_400_000;
    const at = (hours: number, minutes = 0) => new Date(day0 + hours * 3_600_000 + minutes * 60_000).toISOString();
    const rows: [string, string, number][] = [
      [at(10, 5), "decisions", 2],
      [at(10, 9), "decisions", 3],
      [at(10, 9), "denied", 1],
      [at(10, 10), "decisions", 4],
      [at(11), "decisions", 5],
    ];
    for (const [minute, metric, count] of rows) {
      await env.DB.prepare("INSERT INTO metric_rollups (environment_id, minute, metric, count) VALUES (?, ?, ?, ?)").bind(stepped.live.id, minute, metric, count).run();
    }
    const over = (from: string, to: string) => metricsOf(stepped.adminKey, stepped.live.id, `?from=${from}&to=${to}`);

    const sixHours = await over(at(9), at(15));
    expect(sixHours.body.step).toBe(60);
    expect(sixHours.body.series).toHaveLength(6 * 60 + 1);
    expect(sixHours.body.series.find((point: any) => point.minute === at(10, 9))).toMatchObject({ decisions: 3, denied: 1 });

    const day = await over(at(0), at(24));
    expect(day.body.step).toBe(300);
    expect(day.body.series).toHaveLength(24 * 12 + 1);
    const fiveMinutes = day.body.series.filter((point: any) => point.decisions > 0).map((point: any) => [point.minute, point.decisions, point.denied]);
    expect(fiveMinutes).toEqual([
      [at(10, 5), 5, 1],
      [at(10, 10), 4, 0],
      [at(11), 5, 0],
    ]);

    const twoDays = await over(at(0, 30), at(48, 30));
    expect(twoDays.body.step).toBe(3600);
    // From the hour of `from` to the hour of `to`.
    expect(twoDays.body.series).toHaveLength(49);
    expect(twoDays.body.series[0].minute).toBe(at(0));
    expect(twoDays.body.series.filter((point: any) => point.decisions > 0).map((point: any) => [point.minute, point.decisions])).toEqual([
      [at(10), 9],
      [at(11), 5],
    ]);
  });

  it("counts a decision replayed under its Idempotency-Key once, in one flush or in two", async () => {
    const replayed = await createOrganization("Metrics replays");
    await publish(replayed.adminKey, helloWorld(), [replayed.live.id]);
    const check = (idempotencyKey: string) =>
      call("POST", "/api/v1/surface-decisions", {
        key: replayed.live.secretKey,
        headers: { "idempotency-key": idempotencyKey },
        body: { surfaceSlug: "hello-world", identity: { anonymousIdentifier: "replayer" } },
      });
    const first = await check("once-across-flushes");
    await waitForBackgroundWork();
    await flushEvents();
    const again = await check("once-across-flushes");
    expect(again.body.eventId).toBe(first.body.eventId);
    // Both in the same flush.
    const [one, other] = [await check("once-in-a-flush"), await check("once-in-a-flush")];
    expect(other.body.eventId).toBe(one.body.eventId);
    await waitForBackgroundWork();
    await flushEvents();
    const result = await metricsOf(replayed.adminKey, replayed.live.id);
    expect(totals(result.body.series)).toMatchObject({ decisions: 2, surfaceDecisions: 2 });
    expect(result.body.stageLatency.every((stage: { count: number }) => stage.count <= 2)).toBe(true);
  });

  it("counts once the records of a batch D1 wrote but reported as failed, then written again in parts", async () => {
    const retried = await createOrganization("Metrics retried batch");
    let failedAfterWriting = 0;
    // As D1 may answer: the batch is committed, and the call fails all the same.
    const flaky = new Proxy(env.DB, {
      get(target, property) {
        if (property === "batch") {
          return async (statements: D1PreparedStatement[]) => {
            const results = await target.batch(statements);
            if (failedAfterWriting++ === 0) throw new Error("D1_ERROR: Network connection lost.");
            return results;
          };
        }
        const value = Reflect.get(target, property, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const background: Promise<unknown>[] = [];
    const ctx = { waitUntil: (work: Promise<unknown>) => void background.push(work) };
    for (let i = 0; i < 4; i++) {
      recordEvent(ctx, flaky, {
        id: `evt_metrics_retried_${retried.id}_${i}`,
        organizationId: retried.id,
        environmentId: retried.live.id,
        kind: "access_check",
        identifier: `retried-${i}`,
        outcome: i === 0 ? "denied" : "granted",
        record: { timings: { lookup: 1 }, denials: i === 0 ? [{ featureSlug: "widget", property: "enabled", reason: "off" }] : [] },
      });
    }
    await flushEvents();
    await Promise.all(background);
    expect(failedAfterWriting).toBe(3); // the whole batch, then its two halves
    const result = await metricsOf(retried.adminKey, retried.live.id);
    expect(totals(result.body.series)).toMatchObject({ decisions: 4, accessChecks: 4, denied: 1 });
    expect(result.body.denials).toEqual([{ featureSlug: "widget", property: "enabled", reason: "off", count: 1 }]);
    expect(result.body.stageLatency).toEqual([expect.objectContaining({ stage: "lookup", count: 4 })]);
  });

  it("holds a first attempt's rollups in the isolate, off the records' batch, and writes them when the metrics are read", async () => {
    const held = await createOrganization("Metrics held rollups");
    // Whatever earlier tests left held goes to D1 now, so this test's rollups are held afresh (10 s before they are due).
    await writeHeldRollups(env.DB, { force: true });
    const batches: string[][] = [];
    const watched = new Proxy(env.DB, {
      get(target, property) {
        if (property === "batch") {
          return async (statements: D1PreparedStatement[]) => {
            batches.push(statements.map((statement) => String((statement as unknown as { statement?: string }).statement ?? "")));
            return target.batch(statements);
          };
        }
        const value = Reflect.get(target, property, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const ctx = { waitUntil: () => {} };
    for (let i = 0; i < 3; i++) {
      recordEvent(ctx, watched, { id: `evt_metrics_held_${held.id}_${i}`, organizationId: held.id, environmentId: held.live.id, kind: "access_check", outcome: "granted", record: { timings: { lookup: 1 } } });
    }
    await flushEvents();
    expect(batches).toHaveLength(1);
    expect(batches[0]!.filter((sql) => sql.includes("INTO events"))).toHaveLength(3);
    expect(batches[0]!.filter((sql) => sql.includes("metric_rollups"))).toEqual([]);
    const stored = await env.DB.prepare("SELECT COUNT(*) AS rows FROM metric_rollups WHERE environment_id = ?").bind(held.live.id).first<{ rows: number }>();
    expect(stored?.rows).toBe(0);
    // Reading the metrics writes this isolate's held rollups first.
    const result = await metricsOf(held.adminKey, held.live.id);
    expect(totals(result.body.series)).toMatchObject({ decisions: 3, accessChecks: 3 });
  });

  it("places durations in fixed log-scale buckets and deletes rollups past their retention", async () => {
    expect(LATENCY_BUCKETS_MS.slice(0, 7)).toEqual([0.01, 0.015, 0.02, 0.03, 0.05, 0.07, 0.1]);
    expect([0, 0.01, 0.011, 3, 3.1, 70_000, 70_001].map(latencyBucket)).toEqual([0, 0, 1, 15, 16, 41, 42]);

    const old = new Date(Date.now() - ROLLUP_RETENTION_MS - 60_000).toISOString();
    const recent = new Date(Date.now() - ROLLUP_RETENTION_MS + 60 * 60_000).toISOString();
    const environmentId = `env_retention_${org.id}`;
    for (const minute of [old, recent]) {
      await env.DB.prepare("INSERT INTO metric_rollups (environment_id, minute, metric, count) VALUES (?, ?, 'decisions', 1)").bind(environmentId, minute).run();
    }
    await pruneRollups(env.DB, Date.now());
    const { results } = await env.DB.prepare("SELECT minute FROM metric_rollups WHERE environment_id = ?").bind(environmentId).all<{ minute: string }>();
    expect(results.map((row) => row.minute)).toEqual([recent]);
  });
});
