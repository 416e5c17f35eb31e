/**
 * Overage billed by an overflow counter (a request with `overflowLimit`): the object keeps, per counter and period, the
 * overage it already billed (a high-water mark in `overage_billed`) and bills on each reading only what passes it — in
 * the same transaction as the consumption. Units given back and consumed again are not billed twice, concurrent
 * consumptions bill each unit once, a replay bills nothing, and a new period starts over.
 */
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { MeterObject, UpdateCounterResult } from "../../../durable-objects/meter/MeterObject";
import type { MeterStub } from "../../../durable-objects/meter/client";
import { UNLIMITED_UNITS } from "../../../workers/engine/meters";
import { at, counter, freshMeter, only, readingsOf } from "./helpers";

const API = "default:feat_api0001.enabled";
const LIMIT = 3;
// Past periods by the real clock, so the alarm finds them finished.
const MAY = at("2020-05-14T12:00:00Z");
const JUNE = at("2020-06-02T12:00:00Z");

/** An overflow setting's request as the engine sends it: without a limit, its own limit as `overflowLimit`. */
const overflow = (extra: Parameters<typeof counter>[2] = {}) => counter(API, UNLIMITED_UNITS, { overriddenLimit: LIMIT, overage: "overflow", overflowLimit: LIMIT, ...extra });

function readingOf(result: UpdateCounterResult) {
  if ("conflict" in result) throw new Error("unexpected idempotency conflict");
  return result.reading;
}

const update = async (stub: MeterStub, units: number, extra: { now?: number; idempotencyKey?: string; requestHash?: string } = {}) =>
  readingOf(await stub.updateCounter({ counterId: API, period: "month", timeZone: "UTC", limit: UNLIMITED_UNITS, overflowLimit: LIMIT, update: units, now: MAY, ...extra }));

const consume = async (stub: MeterStub, now = MAY) => only(readingsOf(await stub.evaluate({ counters: [overflow()], timeZone: "UTC", now })));

/** The marks, as units billed past LIMIT (a mark is the highest unit billed); none while the table was never created. */
const marks = (stub: MeterStub) =>
  runInDurableObject(stub, (_instance: MeterObject, state) =>
    state.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'overage_billed'").toArray().length === 0
      ? []
      : state.storage.sql
      .exec<{ counter_id: string; period_start: number; billed_through: number }>("SELECT counter_id, period_start, billed_through FROM overage_billed ORDER BY period_start")
      .toArray()
      .map((row) => ({ counterId: row.counter_id, periodStart: new Date(row.period_start).toISOString(), billed: row.billed_through - LIMIT })),
  );

describe("overage marks", () => {
  it("a unit given back and consumed again is billed once (counter updates)", async () => {
    const { stub } = freshMeter();
    expect(await update(stub, 4)).toMatchObject({ consumedUnits: 4, consumedUnitsInRequest: 4, overageBilledUnits: 1 });
    expect(await update(stub, -1)).toMatchObject({ consumedUnits: 3, overageBilledUnits: 0 });
    expect(await update(stub, 1)).toMatchObject({ consumedUnits: 4, overageBilledUnits: 0 });
    expect(await update(stub, 1)).toMatchObject({ consumedUnits: 5, overageBilledUnits: 1 });
    expect(await marks(stub)).toEqual([{ counterId: API, periodStart: "2020-05-01T00:00:00.000Z", billed: 2 }]);
    // Given back below the limit and consumed far past it: only the units past the mark are new.
    expect(await update(stub, -5)).toMatchObject({ consumedUnits: 0, overageBilledUnits: 0 });
    expect(await update(stub, 7)).toMatchObject({ consumedUnits: 7, overageBilledUnits: 2 });
    expect(await marks(stub)).toEqual([{ counterId: API, periodStart: "2020-05-01T00:00:00.000Z", billed: 4 }]);
  });

  it("decisions bill one unit each past the limit, and nothing for units already billed; reads bill and write nothing", async () => {
    const { stub } = freshMeter();
    const billed = [];
    for (let i = 0; i < 5; i++) billed.push((await consume(stub)).overageBilledUnits);
    expect(billed).toEqual([0, 0, 0, 1, 1]);
    expect(await update(stub, -2)).toMatchObject({ consumedUnits: 3 });
    expect(await consume(stub)).toMatchObject({ consumedUnits: 4, overageBilledUnits: 0 });
    expect(await consume(stub)).toMatchObject({ consumedUnits: 5, overageBilledUnits: 0 });
    expect(await consume(stub)).toMatchObject({ consumedUnits: 6, overageBilledUnits: 1 });
    const read = only(readingsOf(await stub.evaluate({ counters: [overflow({ consume: false })], timeZone: "UTC", now: MAY })));
    expect(read).toMatchObject({ consumedUnits: 6, consumedInRequest: false, overageBilledUnits: 0 });
    expect(await marks(stub)).toEqual([{ counterId: API, periodStart: "2020-05-01T00:00:00.000Z", billed: 3 }]);
  });

  it("N concurrent consumptions past limit L bill exactly N − L", async () => {
    const { stub } = freshMeter();
    const N = 15;
    const readings = await Promise.all(Array.from({ length: N }, () => consume(stub)));
    expect(readings.map((reading) => reading.consumedUnits).sort((a, b) => a - b)).toEqual(Array.from({ length: N }, (_, index) => index + 1));
    expect(readings.reduce((sum, reading) => sum + reading.overageBilledUnits!, 0)).toBe(N - LIMIT);
    // Concurrent counter updates too, mixed with give-backs: the total billed is the highest overage reached.
    // Whatever order they ran in, the total billed is the highest overage reached.
    const updates = await Promise.all([update(stub, 2), update(stub, -4), update(stub, 3), update(stub, 1)]);
    const billedByUpdates = updates.reduce((sum, reading) => sum + reading.overageBilledUnits!, 0);
    const highest = Math.max(N, ...updates.map((reading) => reading.consumedUnits));
    expect(N - LIMIT + billedByUpdates).toBe(highest - LIMIT);
    expect(await marks(stub)).toEqual([{ counterId: API, periodStart: "2020-05-01T00:00:00.000Z", billed: highest - LIMIT }]);
    expect(readingsOf(await stub.evaluate({ counters: [overflow({ consume: false })], timeZone: "UTC", now: MAY }))[0]!.consumedUnits).toBe(N + 2);
  });

  it("a replayed key returns the first result and bills nothing more", async () => {
    const { stub } = freshMeter();
    await update(stub, LIMIT);
    const first = await stub.updateCounter({ counterId: API, period: "month", timeZone: "UTC", limit: UNLIMITED_UNITS, overflowLimit: LIMIT, update: 2, now: MAY, idempotencyKey: "k", requestHash: "h" });
    const again = await stub.updateCounter({ counterId: API, period: "month", timeZone: "UTC", limit: UNLIMITED_UNITS, overflowLimit: LIMIT, update: 2, now: MAY, idempotencyKey: "k", requestHash: "h" });
    expect(readingOf(first)).toMatchObject({ consumedUnits: 5, overageBilledUnits: 2 });
    expect(again).toEqual({ ...first, replayed: true });
    const decided = await stub.evaluate({ counters: [overflow()], timeZone: "UTC", now: MAY, idempotencyKey: "d", requestHash: "h" });
    expect(await stub.evaluate({ counters: [overflow()], timeZone: "UTC", now: MAY, idempotencyKey: "d", requestHash: "h" })).toEqual({ ...decided, replayed: true });
    expect(only(readingsOf(decided))).toMatchObject({ consumedUnits: 6, overageBilledUnits: 1 });
    expect(await marks(stub)).toEqual([{ counterId: API, periodStart: "2020-05-01T00:00:00.000Z", billed: 3 }]);
  });

  it("a new period starts over; the alarm prunes the finished period's mark", async () => {
    const { stub } = freshMeter();
    await update(stub, 5);
    expect(await update(stub, 1, { now: JUNE })).toMatchObject({ consumedUnits: 1, overageBilledUnits: 0 });
    expect(await update(stub, 3, { now: JUNE })).toMatchObject({ consumedUnits: 4, overageBilledUnits: 1 });
    expect(await marks(stub)).toEqual([
      { counterId: API, periodStart: "2020-05-01T00:00:00.000Z", billed: 2 },
      { counterId: API, periodStart: "2020-06-01T00:00:00.000Z", billed: 1 },
    ]);
    // Both periods are over by the real clock: the counter row and both marks go.
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await marks(stub)).toEqual([]);

    // A current period's mark stays while its counter does.
    const current = freshMeter().stub;
    const now = Date.now();
    await update(current, 4, { now: at("2020-03-10T00:00:00Z") });
    await update(current, 4, { now });
    expect((await marks(current)).map((mark) => mark.billed)).toEqual([1, 1]);
    expect(await runDurableObjectAlarm(current)).toBe(true);
    expect((await marks(current)).map((mark) => mark.periodStart)).toEqual([new Date(Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), 1)).toISOString()]);
  });

  it("a counter sent without overflowLimit bills nothing and keeps no mark; a reset forgets the mark", async () => {
    const { stub } = freshMeter();
    const plain = only(readingsOf(await stub.evaluate({ counters: [counter(API, UNLIMITED_UNITS, { overriddenLimit: LIMIT })], timeZone: "UTC", now: MAY })));
    expect(plain).not.toHaveProperty("overageBilledUnits");
    const updated = readingOf(await stub.updateCounter({ counterId: API, period: "month", timeZone: "UTC", limit: UNLIMITED_UNITS, update: 5, now: MAY }));
    expect(updated).toMatchObject({ consumedUnits: 6 });
    expect(updated).not.toHaveProperty("overageBilledUnits");
    expect(await marks(stub)).toEqual([]);
    // Units consumed without an overflow limit are never billed after the fact: the first mark starts where the
    // counter stood, so only unit 7 is billed.
    expect(await consume(stub)).toMatchObject({ consumedUnits: 7, overageBilledUnits: 1 });

    expect(await stub.resetCounter(API)).toBe(true);
    expect(await marks(stub)).toEqual([]);
    expect(await update(stub, 4)).toMatchObject({ consumedUnits: 4, overageBilledUnits: 1 });
  });

  it("a limit that changes mid-period bills only units past both the new limit and what was billed", async () => {
    const { stub } = freshMeter();
    // Limit 5: 8 units bill 3 (6, 7, 8).
    const first = await stub.updateCounter({ counterId: API, period: "month", timeZone: "UTC", limit: UNLIMITED_UNITS, overflowLimit: 5, update: 8, now: MAY });
    expect(readingOf(first).overageBilledUnits).toBe(3);
    // Upgraded to 10: unit 11 is past the new limit and was never billed.
    const upgraded = await stub.updateCounter({ counterId: API, period: "month", timeZone: "UTC", limit: UNLIMITED_UNITS, overflowLimit: 10, update: 3, now: MAY });
    expect(readingOf(upgraded)).toMatchObject({ consumedUnits: 11, overageBilledUnits: 1 });
    // Downgraded to 5: units 6–11 were consumed and billed (or within the allowance) already; only unit 12 is new.
    const downgraded = await stub.updateCounter({ counterId: API, period: "month", timeZone: "UTC", limit: UNLIMITED_UNITS, overflowLimit: 5, update: 1, now: MAY });
    expect(readingOf(downgraded)).toMatchObject({ consumedUnits: 12, overageBilledUnits: 1 });

    // Raised to 20, consumed to 18 within it, lowered to 10 again: only unit 19 is new overage.
    const swings = freshMeter().stub;
    const overflowAt = (overflowLimit: number, update: number) =>
      swings.updateCounter({ counterId: API, period: "month", timeZone: "UTC", limit: UNLIMITED_UNITS, overflowLimit, update, now: MAY }).then(readingOf);
    expect(await overflowAt(10, 12)).toMatchObject({ overageBilledUnits: 2 });
    expect(await overflowAt(20, 6)).toMatchObject({ consumedUnits: 18, overageBilledUnits: 0 });
    expect(await overflowAt(10, 1)).toMatchObject({ consumedUnits: 19, overageBilledUnits: 1 });
    // A capped plan in between (no overflowLimit) moves the mark along too.
    await swings.updateCounter({ counterId: API, period: "month", timeZone: "UTC", limit: 30, update: 5, now: MAY });
    await swings.evaluate({ counters: [counter(API, 30, { consume: true })], timeZone: "UTC", now: MAY });
    expect(await overflowAt(10, 1)).toMatchObject({ consumedUnits: 26, overageBilledUnits: 1 });

    // Units consumed under a capped plan are not billed when the counter turns to overflow mid-period.
    const switched = freshMeter().stub;
    await switched.updateCounter({ counterId: API, period: "month", timeZone: "UTC", limit: 10, update: 7, now: MAY });
    const overflowing = await switched.updateCounter({ counterId: API, period: "month", timeZone: "UTC", limit: UNLIMITED_UNITS, overflowLimit: 5, update: 1, now: MAY });
    expect(readingOf(overflowing)).toMatchObject({ consumedUnits: 8, overageBilledUnits: 1 });
  });

  it("an object without overage marks (never billed, or from before them) gets the table on its first overflow and bills from there", async () => {
    const { stub } = freshMeter();
    await stub.evaluate({ counters: [counter(API, UNLIMITED_UNITS)], timeZone: "UTC", now: MAY });
    expect(await marks(stub)).toEqual([]);
    await runInDurableObject(stub, (_instance: MeterObject, state) => {
      state.storage.sql.exec("DROP TABLE IF EXISTS overage_billed");
    });
    await evictDurableObject(stub);
    expect(await update(stub, 3)).toMatchObject({ consumedUnits: 4, overageBilledUnits: 1 });
    expect(await marks(stub)).toEqual([{ counterId: API, periodStart: "2020-05-01T00:00:00.000Z", billed: 1 }]);
  });
});
