/**
 * The meter object's one-call-per-decision RPC: atomic consumption under concurrency, unique resources,
 * all-or-nothing, idempotency, eviction and period rollover.
 */
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { EvaluateInput, MeterObject } from "../../../durable-objects/meter/MeterObject";
import { at, counter, freshMeter, only, readingsOf } from "./helpers";

type Stub = DurableObjectStub<MeterObject>;
const WIDGET = "default:feat_widget001.enabled";
const ARTICLES = "default:feat_articles1.enabled";

async function evaluate(stub: Stub, input: Partial<EvaluateInput> & Pick<EvaluateInput, "counters">) {
  return readingsOf((await stub.evaluate({ timeZone: "UTC", ...input })) as Awaited<ReturnType<MeterObject["evaluate"]>>);
}

async function read(stub: Stub, counterId: string, limit: number, extra: Parameters<typeof counter>[2] = {}, input: Partial<EvaluateInput> = {}) {
  return only(await evaluate(stub, { counters: [counter(counterId, limit, { ...extra, consume: false })], ...input }));
}

describe("evaluate: consumption under concurrency", () => {
  it("grants exactly 3 of 200 concurrent consumes against limit 3, and the counter reads 3", async () => {
    const { stub } = freshMeter();
    const results = await Promise.all(Array.from({ length: 200 }, () => evaluate(stub, { counters: [counter(WIDGET, 3)] })));
    const readings = results.map(only);
    const granted = readings.filter((reading) => reading.hasAccess);
    expect(granted).toHaveLength(3);
    expect(granted.every((reading) => reading.consumedInRequest && reading.consumedUnitsInRequest === 1)).toBe(true);
    expect(granted.map((reading) => reading.consumedUnits).sort()).toEqual([1, 2, 3]);
    const denied = readings.filter((reading) => !reading.hasAccess);
    expect(denied).toHaveLength(197);
    for (const reading of denied) {
      expect(reading).toMatchObject({ consumedUnits: 3, remainingUnits: 0, totalUnits: 3, consumedInRequest: false, consumedUnitsInRequest: 0, excessUnitsInRequest: 1 });
    }
    expect(await read(stub, WIDGET, 3)).toEqual({
      counterId: WIDGET,
      hasAccess: false,
      consumedUnits: 3,
      remainingUnits: 0,
      totalUnits: 3,
      periodStart: new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), 1)).toISOString(),
      uniqueResources: false,
      resourceIdUsed: false,
      consumedInRequest: false,
      consumedUnitsInRequest: 0,
      excessUnitsInRequest: 0,
    });
  });

  it("reads without consuming (access checks only read)", async () => {
    const { stub } = freshMeter();
    for (let i = 0; i < 5; i++) expect(await read(stub, WIDGET, 3)).toMatchObject({ hasAccess: true, consumedUnits: 0, remainingUnits: 3 });
    const first = only(await evaluate(stub, { counters: [counter(WIDGET, 3)] }));
    expect(first).toMatchObject({ hasAccess: true, consumedUnits: 1, remainingUnits: 2, consumedInRequest: true });
    expect(await read(stub, WIDGET, 3)).toMatchObject({ hasAccess: true, consumedUnits: 1, remainingUnits: 2, consumedInRequest: false });
  });

  it("evaluates against the limit passed in (a new config version may raise or lower it)", async () => {
    const { stub } = freshMeter();
    for (let i = 0; i < 3; i++) await evaluate(stub, { counters: [counter(WIDGET, 3)] });
    expect(only(await evaluate(stub, { counters: [counter(WIDGET, 3)] })).hasAccess).toBe(false);
    expect(only(await evaluate(stub, { counters: [counter(WIDGET, 5)] }))).toMatchObject({ hasAccess: true, consumedUnits: 4, remainingUnits: 1 });
    expect(await read(stub, WIDGET, 2)).toMatchObject({ hasAccess: false, consumedUnits: 4, remainingUnits: 0, totalUnits: 2 });
  });

  it("denies a limit of 0", async () => {
    const { stub } = freshMeter();
    expect(only(await evaluate(stub, { counters: [counter(WIDGET, 0)] }))).toMatchObject({ hasAccess: false, consumedUnits: 0, excessUnitsInRequest: 1 });
  });
});

describe("evaluate: unique resources", () => {
  it("under concurrency grants re-reads of seen resources and denies new ones beyond the limit", async () => {
    const { stub } = freshMeter();
    const unique = counter(ARTICLES, 3, { uniqueResources: true });
    // 200 concurrent reads of 10 articles: exactly 3 distinct articles get counted.
    const resources = Array.from({ length: 200 }, (_, i) => `article-${i % 10}`);
    const results = await Promise.all(resources.map((resourceId) => evaluate(stub, { counters: [unique], resourceId })));
    const readings = results.map(only);
    const grantedResources = new Set(resources.filter((_, i) => readings[i]!.hasAccess));
    expect(grantedResources.size).toBe(3);
    // Every read of a granted resource was granted (the first consumed, the others re-read it).
    for (const [i, resourceId] of resources.entries()) {
      expect(readings[i]!.hasAccess).toBe(grantedResources.has(resourceId));
    }
    expect(readings.filter((reading) => reading.consumedInRequest)).toHaveLength(3);
    expect(readings.filter((reading) => reading.resourceIdUsed)).toHaveLength(resources.filter((r) => grantedResources.has(r)).length - 3);

    for (const resourceId of grantedResources) {
      expect(only(await evaluate(stub, { counters: [unique], resourceId }))).toMatchObject({
        hasAccess: true,
        resourceIdUsed: true,
        consumedInRequest: false,
        consumedUnitsInRequest: 0,
        excessUnitsInRequest: 0,
        consumedUnits: 3,
        remainingUnits: 0,
        uniqueResources: true,
      });
    }
    expect(only(await evaluate(stub, { counters: [unique], resourceId: "article-new" }))).toMatchObject({
      hasAccess: false,
      resourceIdUsed: false,
      excessUnitsInRequest: 1,
      consumedUnits: 3,
    });
    // A read-only check of a seen resource keeps access even though the meter is full.
    const [seen] = [...grantedResources];
    expect(await read(stub, ARTICLES, 3, { uniqueResources: true }, { resourceId: seen })).toMatchObject({ hasAccess: true, resourceIdUsed: true });
    expect(await read(stub, ARTICLES, 3, { uniqueResources: true }, { resourceId: "article-other" })).toMatchObject({ hasAccess: false, resourceIdUsed: false });
  });

  it("counts a normal unit on a unique meter when no resource id is given", async () => {
    const { stub } = freshMeter();
    const unique = counter(ARTICLES, 2, { uniqueResources: true });
    expect(only(await evaluate(stub, { counters: [unique] }))).toMatchObject({ hasAccess: true, consumedUnits: 1, resourceIdUsed: false });
    expect(only(await evaluate(stub, { counters: [unique] }))).toMatchObject({ hasAccess: true, consumedUnits: 2 });
    expect(only(await evaluate(stub, { counters: [unique] }))).toMatchObject({ hasAccess: false, consumedUnits: 2 });
  });

  it("forgets the seen resources when the period rolls over", async () => {
    const { stub } = freshMeter();
    const unique = counter(ARTICLES, 1, { uniqueResources: true });
    const may = at("2026-05-20T10:00:00Z");
    const june = at("2026-06-02T10:00:00Z");
    expect(only(await evaluate(stub, { counters: [unique], resourceId: "a", now: may })).consumedInRequest).toBe(true);
    expect(only(await evaluate(stub, { counters: [unique], resourceId: "a", now: may })).resourceIdUsed).toBe(true);
    expect(only(await evaluate(stub, { counters: [unique], resourceId: "a", now: june }))).toMatchObject({
      hasAccess: true,
      resourceIdUsed: false,
      consumedInRequest: true,
      consumedUnits: 1,
      periodStart: "2026-06-01T00:00:00.000Z",
    });
  });
});

describe("evaluate: all or nothing", () => {
  it("consumes neither counter when one of them is full", async () => {
    const { stub } = freshMeter();
    const small = counter("default:feat_small001.enabled", 1);
    const large = counter("default:feat_large001.enabled", 10);
    const first = await evaluate(stub, { counters: [small, large] });
    expect(first.map((reading) => [reading.hasAccess, reading.consumedUnits])).toEqual([
      [true, 1],
      [true, 1],
    ]);
    const second = await evaluate(stub, { counters: [small, large] });
    expect(second[0]).toMatchObject({ hasAccess: false, consumedUnits: 1, consumedInRequest: false, excessUnitsInRequest: 1 });
    expect(second[1]).toMatchObject({ hasAccess: false, consumedUnits: 1, remainingUnits: 9, consumedInRequest: false, excessUnitsInRequest: 1 });
    expect(await read(stub, large.counterId, 10)).toMatchObject({ consumedUnits: 1, hasAccess: true });
  });

  it("under concurrency keeps two counters in step", async () => {
    const { stub } = freshMeter();
    const a = counter("default:feat_aaaaaaaa.enabled", 5);
    const b = counter("default:feat_bbbbbbbb.enabled", 8);
    const results = await Promise.all(Array.from({ length: 60 }, () => evaluate(stub, { counters: [a, b] })));
    expect(results.filter((readings) => readings.every((reading) => reading.hasAccess))).toHaveLength(5);
    expect(results.filter((readings) => readings.some((reading) => reading.hasAccess) && !readings.every((reading) => reading.hasAccess))).toHaveLength(0);
    expect((await read(stub, a.counterId, 5)).consumedUnits).toBe(5);
    expect((await read(stub, b.counterId, 8)).consumedUnits).toBe(5);
  });

  it("a seen resource on a full unique meter does not block the others", async () => {
    const { stub } = freshMeter();
    const unique = counter(ARTICLES, 1, { uniqueResources: true });
    const plain = counter(WIDGET, 5);
    await evaluate(stub, { counters: [unique, plain], resourceId: "r1" });
    const again = await evaluate(stub, { counters: [unique, plain], resourceId: "r1" });
    expect(again[0]).toMatchObject({ hasAccess: true, resourceIdUsed: true, consumedInRequest: false });
    expect(again[1]).toMatchObject({ hasAccess: true, consumedInRequest: true, consumedUnits: 2 });
    const blocked = await evaluate(stub, { counters: [unique, plain], resourceId: "r2" });
    expect(blocked.map((reading) => reading.hasAccess)).toEqual([false, false]);
    expect((await read(stub, WIDGET, 5)).consumedUnits).toBe(2);
  });

  it("reads a read-only counter next to a consumed one without consuming it", async () => {
    const { stub } = freshMeter();
    const readings = await evaluate(stub, { counters: [counter(WIDGET, 2), counter(ARTICLES, 2, { consume: false })] });
    expect(readings[0]).toMatchObject({ consumedInRequest: true, consumedUnits: 1 });
    expect(readings[1]).toMatchObject({ consumedInRequest: false, consumedUnits: 0, hasAccess: true });
  });

  it("consumes a counter listed twice in one request once", async () => {
    const { stub } = freshMeter();
    const readings = await evaluate(stub, { counters: [counter(WIDGET, 3), counter(WIDGET, 3)] });
    expect(readings).toHaveLength(1);
    expect((await read(stub, WIDGET, 3)).consumedUnits).toBe(1);
  });
});

describe("evaluate: idempotency", () => {
  it("50 concurrent calls with one key change state once and all get the same result", async () => {
    const { stub } = freshMeter();
    const input: EvaluateInput = { counters: [counter(WIDGET, 3)], timeZone: "UTC", idempotencyKey: "key-1", requestHash: "hash-a" };
    const results = await Promise.all(Array.from({ length: 50 }, () => stub.evaluate(input)));
    // One call ran the effect; the 49 others got its stored result, marked as a replay.
    const ran = results.filter((result) => !("replayed" in result));
    expect(ran).toHaveLength(1);
    const first = ran[0]!;
    expect(first).toMatchObject({ readings: [{ hasAccess: true, consumedUnits: 1, consumedInRequest: true }] });
    for (const result of results) if (result !== first) expect(result).toEqual({ ...first, replayed: true });
    expect((await read(stub, WIDGET, 3)).consumedUnits).toBe(1);

    // A later retry still returns the first result and changes nothing.
    await evaluate(stub, { counters: [counter(WIDGET, 3)] });
    expect(await stub.evaluate(input)).toEqual({ ...first, replayed: true });
    expect((await read(stub, WIDGET, 3)).consumedUnits).toBe(2);
  });

  it("a retry reports replayed: true with the first result's fields (flags included); the first call and unkeyed calls do not, and storage holds no flag", async () => {
    const { stub } = freshMeter();
    const input: EvaluateInput = { counters: [counter(WIDGET, 3)], plans: ["anonymous"], timeZone: "UTC", idempotencyKey: "key-r", requestHash: "h" };
    const first = await stub.evaluate(input);
    expect(first).not.toHaveProperty("replayed");
    expect(first).toEqual({
      readings: [expect.objectContaining({ consumedUnits: 1, consumedInRequest: true })],
      userAdded: true,
      plansChanged: { from: null, to: ["anonymous"] },
    });
    const retry = await stub.evaluate(input);
    expect(retry).toEqual({ ...first, replayed: true });
    // The flag is added on the way out: the stored result is the first one as it was.
    const stored = await runInDurableObject(stub, (_instance, state) =>
      state.storage.sql.exec<{ result: string }>("SELECT result FROM idempotency WHERE key = 'evaluate:key-r'").one().result,
    );
    expect(JSON.parse(stored)).toEqual(first);
    // Another key, and a call without a key, run their effect: no flag.
    expect(await stub.evaluate({ ...input, idempotencyKey: "key-s" })).not.toHaveProperty("replayed");
    expect(await stub.evaluate({ counters: [counter(WIDGET, 3)], timeZone: "UTC" })).not.toHaveProperty("replayed");
    expect((await read(stub, WIDGET, 3)).consumedUnits).toBe(3);
  });

  it("the same key with a different body is a conflict and changes nothing", async () => {
    const { stub } = freshMeter();
    const input: EvaluateInput = { counters: [counter(WIDGET, 3)], timeZone: "UTC", idempotencyKey: "key-2", requestHash: "hash-a" };
    await stub.evaluate(input);
    const results = await Promise.all(Array.from({ length: 20 }, () => stub.evaluate({ ...input, requestHash: "hash-b" })));
    for (const result of results) expect(result).toEqual({ conflict: true });
    expect((await read(stub, WIDGET, 3)).consumedUnits).toBe(1);
  });

  it("keys expire after 24 hours", async () => {
    const { stub } = freshMeter();
    const now = at("2026-05-10T10:00:00Z");
    const input: EvaluateInput = { counters: [counter(WIDGET, 3)], timeZone: "UTC", idempotencyKey: "key-3", requestHash: "h", now };
    await stub.evaluate(input);
    await stub.evaluate({ ...input, now: now + 23 * 3_600_000 });
    expect((await read(stub, WIDGET, 3, {}, { now })).consumedUnits).toBe(1);
    expect(await stub.evaluate({ ...input, now: now + 25 * 3_600_000 })).toMatchObject({ readings: [{ consumedUnits: 2 }] });
  });

  it("keys of decisions and counter updates do not collide", async () => {
    const { stub } = freshMeter();
    await stub.evaluate({ counters: [counter(WIDGET, 3)], timeZone: "UTC", idempotencyKey: "shared", requestHash: "h" });
    const update = await stub.updateCounter({ counterId: WIDGET, period: "month", timeZone: "UTC", update: 2, idempotencyKey: "shared", requestHash: "h" });
    expect(update).toMatchObject({ reading: { consumedUnits: 3 } });
  });
});

describe("evaluate: durability and periods", () => {
  it("keeps its counts when evicted mid-sequence", async () => {
    const { stub } = freshMeter();
    await Promise.all(Array.from({ length: 2 }, () => evaluate(stub, { counters: [counter(WIDGET, 3)] })));
    await evictDurableObject(stub);
    expect((await read(stub, WIDGET, 3)).consumedUnits).toBe(2);
    const results = await Promise.all(Array.from({ length: 20 }, () => evaluate(stub, { counters: [counter(WIDGET, 3)] })));
    expect(results.map(only).filter((reading) => reading.hasAccess)).toHaveLength(1);
    await evictDurableObject(stub);
    expect(await read(stub, WIDGET, 3)).toMatchObject({ consumedUnits: 3, hasAccess: false });
    // Idempotency keys survive eviction too.
    const keyed: EvaluateInput = { counters: [counter("default:feat_other001.enabled", 3)], timeZone: "UTC", idempotencyKey: "k", requestHash: "h" };
    const first = await stub.evaluate(keyed);
    await evictDurableObject(stub);
    expect(await stub.evaluate(keyed)).toEqual({ ...first, replayed: true });
    expect((await read(stub, "default:feat_other001.enabled", 3)).consumedUnits).toBe(1);
  });

  it("rolls a monthly counter over at the month boundary (injected clock)", async () => {
    const { stub } = freshMeter();
    const endOfMay = at("2026-05-31T23:59:59.999Z");
    for (let i = 0; i < 3; i++) await evaluate(stub, { counters: [counter(WIDGET, 3)], now: endOfMay - i * 86_400_000 });
    expect(only(await evaluate(stub, { counters: [counter(WIDGET, 3)], now: endOfMay }))).toMatchObject({
      hasAccess: false,
      consumedUnits: 3,
      periodStart: "2026-05-01T00:00:00.000Z",
    });
    const june = at("2026-06-01T00:00:00.000Z");
    expect(await read(stub, WIDGET, 3, {}, { now: june })).toMatchObject({ hasAccess: true, consumedUnits: 0, remainingUnits: 3, periodStart: "2026-06-01T00:00:00.000Z" });
    expect(only(await evaluate(stub, { counters: [counter(WIDGET, 3)], now: june }))).toMatchObject({ hasAccess: true, consumedUnits: 1 });
    // The old period is never read again.
    expect(await read(stub, WIDGET, 3, {}, { now: endOfMay })).toMatchObject({ consumedUnits: 0 });
  });

  it("rolls over at local midnight in the organization's time zone", async () => {
    const { stub } = freshMeter();
    const daily = counter(WIDGET, 1, { period: "day" });
    // 23:30 in Berlin on 2026-03-28 (CET, +1) is 22:30Z; local midnight is 23:00Z.
    const before = at("2026-03-28T22:30:00Z");
    expect(only(await evaluate(stub, { counters: [daily], timeZone: "Europe/Berlin", now: before }))).toMatchObject({
      hasAccess: true,
      periodStart: "2026-03-27T23:00:00.000Z",
    });
    expect(only(await evaluate(stub, { counters: [daily], timeZone: "Europe/Berlin", now: at("2026-03-28T22:59:00Z") })).hasAccess).toBe(false);
    // In UTC it would still be the 28th; in Berlin the 29th (the day clocks go forward) has begun.
    expect(only(await evaluate(stub, { counters: [daily], timeZone: "Europe/Berlin", now: at("2026-03-28T23:00:00Z") }))).toMatchObject({
      hasAccess: true,
      consumedUnits: 1,
      periodStart: "2026-03-28T23:00:00.000Z",
    });
    // That day is 23 hours long: the next starts at 22:00Z (CEST, +2).
    expect(only(await evaluate(stub, { counters: [daily], timeZone: "Europe/Berlin", now: at("2026-03-29T21:59:00Z") })).hasAccess).toBe(false);
    expect(only(await evaluate(stub, { counters: [daily], timeZone: "Europe/Berlin", now: at("2026-03-29T22:00:00Z") }))).toMatchObject({
      hasAccess: true,
      periodStart: "2026-03-29T22:00:00.000Z",
    });
  });

  it("never resets a lifetime counter", async () => {
    const { stub } = freshMeter();
    const lifetime = counter(WIDGET, 2, { period: "lifetime" });
    await evaluate(stub, { counters: [lifetime], now: at("2020-01-01T00:00:00Z") });
    const later = only(await evaluate(stub, { counters: [lifetime], now: at("2030-06-01T00:00:00Z") }));
    expect(later).toMatchObject({ consumedUnits: 2, periodStart: "1970-01-01T00:00:00.000Z" });
  });
});
