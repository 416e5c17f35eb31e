/**
 * The meter Durable Object under concurrency: it must never over-grant, and idempotent retries change state once.
 */
import { env } from "cloudflare:workers";
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { meterStub } from "../../../durable-objects/meter/client";
import type { MeterObject } from "../../../durable-objects/meter/MeterObject";
import type { MeterRequest } from "../../../workers/engine/types";

let sequence = 0;
const freshStub = () => meterStub(env.METER, `org_test:default`, `user-${Date.now()}-${sequence++}`);
const counter = (overrides: Partial<MeterRequest> = {}): MeterRequest => ({
  counterId: "default:feat_test0001.enabled",
  limit: 3,
  period: "month",
  uniqueResources: false,
  consume: true,
  ...overrides,
});
const evaluate = (stub: DurableObjectStub<MeterObject>, input: Partial<Parameters<MeterObject["evaluate"]>[0]> = {}) =>
  stub.evaluate({ counters: [counter()], timeZone: "UTC", ...input });

describe("meter object", () => {
  it("grants exactly the limit to 200 concurrent consumers", async () => {
    const stub = freshStub();
    const results = await Promise.all(Array.from({ length: 200 }, () => evaluate(stub)));
    const granted = results.filter((result) => "readings" in result && result.readings[0]!.hasAccess);
    expect(granted).toHaveLength(3);
    const read = await evaluate(stub, { counters: [counter({ consume: false })] });
    expect(read).toMatchObject({ readings: [{ consumedUnits: 3, remainingUnits: 0, hasAccess: false }] });
  });

  it("counts each resource once under a unique-resources meter, concurrently", async () => {
    const stub = freshStub();
    const unique = counter({ uniqueResources: true });
    // 50 readers of 10 articles: only the first 3 distinct articles are granted, re-reads of them always are.
    const calls = Array.from({ length: 50 }, (_, i) => evaluate(stub, { counters: [unique], resourceId: `article-${i % 10}` }));
    const results = await Promise.all(calls);
    const grantedResources = new Set(
      results.flatMap((result, i) => ("readings" in result && result.readings[0]!.hasAccess ? [`article-${i % 10}`] : [])),
    );
    expect(grantedResources.size).toBe(3);
    for (const resource of grantedResources) {
      const again = await evaluate(stub, { counters: [unique], resourceId: resource });
      expect(again).toMatchObject({ readings: [{ hasAccess: true, resourceIdUsed: true, consumedInRequest: false, consumedUnits: 3 }] });
    }
    const fresh = await evaluate(stub, { counters: [unique], resourceId: "article-new" });
    expect(fresh).toMatchObject({ readings: [{ hasAccess: false, excessUnitsInRequest: 1, consumedUnits: 3 }] });
  });

  it("consumes all or nothing across the counters of one request", async () => {
    const stub = freshStub();
    const small = counter({ counterId: "default:feat_small001.enabled", limit: 1 });
    const large = counter({ counterId: "default:feat_large001.enabled", limit: 10 });
    await evaluate(stub, { counters: [small, large] });
    const second = await evaluate(stub, { counters: [small, large] });
    expect(second).toMatchObject({ readings: [{ hasAccess: false, consumedUnits: 1 }, { hasAccess: false, consumedUnits: 1, consumedInRequest: false }] });
  });

  it("applies an idempotency key once under concurrent retries and refuses it for another body", async () => {
    const stub = freshStub();
    const results = await Promise.all(Array.from({ length: 50 }, () => evaluate(stub, { idempotencyKey: "retry-1", requestHash: "h1" })));
    for (const result of results) expect(result).toEqual(results[0]);
    expect(results[0]).toMatchObject({ readings: [{ consumedUnits: 1, consumedInRequest: true }] });
    expect(await evaluate(stub, { counters: [counter({ consume: false })] })).toMatchObject({ readings: [{ consumedUnits: 1 }] });
    expect(await evaluate(stub, { idempotencyKey: "retry-1", requestHash: "h2" })).toEqual({ conflict: true });
  });

  it("keeps its counts when evicted mid-sequence", async () => {
    const stub = freshStub();
    await evaluate(stub);
    await evaluate(stub);
    await evictDurableObject(stub);
    expect(await evaluate(stub)).toMatchObject({ readings: [{ consumedUnits: 3, hasAccess: true }] });
    expect(await evaluate(stub)).toMatchObject({ readings: [{ consumedUnits: 3, hasAccess: false }] });
  });

  it("starts a new period at the boundary (injected clock), in the configured time zone", async () => {
    const stub = freshStub();
    const endOfJanuary = Date.UTC(2026, 0, 31, 23, 59);
    for (let i = 0; i < 3; i++) await evaluate(stub, { now: endOfJanuary });
    expect(await evaluate(stub, { now: endOfJanuary })).toMatchObject({ readings: [{ hasAccess: false, periodStart: "2026-01-01T00:00:00.000Z" }] });
    const february = await evaluate(stub, { now: Date.UTC(2026, 1, 1, 0, 0, 1) });
    expect(february).toMatchObject({ readings: [{ hasAccess: true, consumedUnits: 1, periodStart: "2026-02-01T00:00:00.000Z" }] });

    // 23:30 UTC on Jan 31 is already February in Berlin (UTC+1): a fresh period there.
    const berlin = freshStub();
    const lateJanuaryUtc = Date.UTC(2026, 0, 31, 23, 30);
    const first = await evaluate(berlin, { now: lateJanuaryUtc, timeZone: "Europe/Berlin" });
    expect(first).toMatchObject({ readings: [{ periodStart: "2026-01-31T23:00:00.000Z" }] });
  });

  it("never lets counter updates go below zero and counts a resource once", async () => {
    const stub = freshStub();
    const base = { counterId: "default:feat_test0001.enabled", limit: 5, period: "lifetime" as const, uniqueResources: true, timeZone: "UTC" };
    expect(await stub.updateCounter({ ...base, update: 2 })).toMatchObject({ reading: { consumedUnits: 2 } });
    expect(await stub.updateCounter({ ...base, update: -10 })).toMatchObject({ reading: { consumedUnits: 0 } });
    expect(await stub.updateCounter({ ...base, update: 1, resourceId: "r1" })).toMatchObject({ reading: { consumedUnits: 1 } });
    expect(await stub.updateCounter({ ...base, update: 1, resourceId: "r1" })).toMatchObject({ reading: { consumedUnits: 1, resourceIdUsed: true } });
  });

  it("never drives a credit balance below zero under concurrency", async () => {
    const stub = freshStub();
    await stub.grantCredits({ creditId: "tokens", amount: 50 });
    const results = await Promise.all(Array.from({ length: 100 }, () => stub.deductCredits({ creditId: "tokens", cost: 3 })));
    const succeeded = results.filter((result) => "ok" in result && result.ok);
    expect(succeeded).toHaveLength(16);
    expect(results.filter((result) => "ok" in result && !result.ok)[0]).toMatchObject({ reason: "insufficient_credits", balance: 2 });
    expect(await stub.getBalance("tokens")).toBe(2);
    const grant = { creditId: "tokens", amount: 10, period: "month" as const, timeZone: "UTC", now: Date.UTC(2026, 3, 2) };
    expect(await stub.ensurePeriodicGrant(grant)).toEqual({ granted: true, balance: 12 });
    expect(await stub.ensurePeriodicGrant({ ...grant, now: Date.UTC(2026, 3, 20) })).toEqual({ granted: false, balance: 12 });
    expect(await stub.ensurePeriodicGrant({ ...grant, now: Date.UTC(2026, 4, 1) })).toEqual({ granted: true, balance: 22 });
  });

  it("carries an anonymous identity's counters over exactly once (copy_once)", async () => {
    const anonymous = freshStub();
    const user = freshStub();
    await evaluate(anonymous);
    await evaluate(anonymous);
    const exported = await anonymous.exportCounters();
    expect(await user.importOnce("anon->user", exported)).toEqual({ linked: true, counters: 1 });
    expect(await user.importOnce("anon->user", exported)).toEqual({ linked: false, counters: 0 });
    expect(await evaluate(user, { counters: [counter({ consume: false })] })).toMatchObject({ readings: [{ consumedUnits: 2 }] });
  });

  it("prunes finished periods and old idempotency keys in its alarm", async () => {
    const stub = freshStub();
    await evaluate(stub, { now: Date.UTC(2020, 0, 5), idempotencyKey: "old", requestHash: "h" });
    await evaluate(stub, { counters: [counter({ counterId: "default:feat_life0001.enabled", period: "lifetime" })] });
    await runDurableObjectAlarm(stub);
    const remaining = await runInDurableObject(stub, (_instance, state) => ({
      counters: state.storage.sql.exec("SELECT counter_id FROM counters").toArray().map((row) => row.counter_id),
      keys: state.storage.sql.exec("SELECT COUNT(*) AS n FROM idempotency").one().n,
    }));
    expect(remaining).toEqual({ counters: ["default:feat_life0001.enabled"], keys: 0 });
  });
});
