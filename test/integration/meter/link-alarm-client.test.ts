/** copy_once links between identities, pruning by alarm, and the deadline client. */
import { env } from "cloudflare:workers";
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { evaluateWithDeadline, meterStub, withMeterDeadline } from "../../../durable-objects/meter/client";
import type { EvaluateResult, MeterObject } from "../../../durable-objects/meter/MeterObject";
import { applyAllowance, at, counter, freshMeter, only, readingsOf } from "./helpers";

const WIDGET = "default:feat_widget001.enabled";
const ARTICLES = "default:feat_articles1.enabled";

describe("linked identities (copy_once)", () => {
  it("carries the anonymous identity's current counters into the user's object exactly once", async () => {
    const { storeKey, stub: anonymous, identifier: anonymousId } = freshMeter("anon");
    const user = meterStub(env.METER, storeKey, `user-${crypto.randomUUID()}`);
    const now = at("2026-05-10T10:00:00Z");
    const unique = counter(ARTICLES, 5, { uniqueResources: true });
    await anonymous.evaluate({ counters: [counter(WIDGET, 5)], timeZone: "UTC", now });
    await anonymous.evaluate({ counters: [counter(WIDGET, 5)], timeZone: "UTC", now });
    await anonymous.evaluate({ counters: [unique], resourceId: "a1", timeZone: "UTC", now });
    await anonymous.evaluate({ counters: [unique], resourceId: "shared", timeZone: "UTC", now });
    // Last month's usage is not carried.
    await anonymous.evaluate({ counters: [counter("default:feat_oldmonth.enabled", 5)], timeZone: "UTC", now: at("2026-04-10T10:00:00Z") });
    // The user already used the widget once and read "shared".
    await user.evaluate({ counters: [counter(WIDGET, 5)], timeZone: "UTC", now });
    await user.evaluate({ counters: [unique], resourceId: "shared", timeZone: "UTC", now });

    const exported = await anonymous.exportCounters(now);
    expect(exported.map((entry) => [entry.counterId, entry.consumed])).toEqual([
      [ARTICLES, 2],
      [WIDGET, 2],
    ]);
    const linkKey = `${anonymousId}->user`;
    const results = await Promise.all(Array.from({ length: 10 }, () => user.importOnce(linkKey, exported, now)));
    expect(results.filter((result) => result.linked)).toEqual([{ linked: true, counters: 2 }]);
    expect(await user.importOnce(linkKey, exported, now)).toEqual({ linked: false, counters: 0 });

    const after = readingsOf(
      await user.evaluate({ counters: [counter(WIDGET, 5, { consume: false }), { ...unique, consume: false }], resourceId: "a1", timeZone: "UTC", now }),
    );
    expect(after[0]).toMatchObject({ consumedUnits: 3 });
    // "shared" counts once; "a1" is now a seen resource of the user.
    expect(after[1]).toMatchObject({ consumedUnits: 2, resourceIdUsed: true });
    // The source keeps its own counters (copy, not move).
    expect((await anonymous.readCounters({ now, counters: [{ counterId: WIDGET, period: "month" }] }))[0]!.consumedUnits).toBe(2);
  });

  it("ignores exported units whose period is over by the time they are imported", async () => {
    const { stub: source } = freshMeter("anon");
    const { stub: target } = freshMeter();
    await source.evaluate({ counters: [counter(WIDGET, 5, { period: "day" })], timeZone: "UTC", now: at("2026-05-10T23:00:00Z") });
    const exported = await source.exportCounters(at("2026-05-10T23:00:00Z"));
    expect(exported).toHaveLength(1);
    expect(await target.importOnce("late", exported, at("2026-05-11T00:30:00Z"))).toEqual({ linked: true, counters: 0 });
    expect(await target.readCounters({ now: at("2026-05-11T00:30:00Z") })).toEqual([]);
  });
});

describe("pruning alarm", () => {
  it("drops finished periods, their resources and idempotency keys older than 24 h, and keeps current data", async () => {
    const { stub } = freshMeter();
    const now = Date.now();
    const longAgo = at("2020-03-15T12:00:00Z");
    const unique = counter(ARTICLES, 5, { uniqueResources: true });
    await stub.evaluate({ counters: [unique], resourceId: "old-1", timeZone: "UTC", now: longAgo, idempotencyKey: "old-key", requestHash: "h" });
    await stub.evaluate({ counters: [counter("default:feat_lifetime.enabled", 5, { period: "lifetime" })], timeZone: "UTC", now: longAgo });
    await stub.evaluate({ counters: [counter(WIDGET, 5)], timeZone: "UTC", now, idempotencyKey: "new-key", requestHash: "h" });
    await applyAllowance(stub, { creditId: "tokens", amount: 1, period: "month", now: longAgo });
    await applyAllowance(stub, { creditId: "tokens", amount: 1, period: "month", now });

    const count = (table: string) =>
      runInDurableObject(stub, (_instance: MeterObject, state) => state.storage.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table}`).one().n);
    expect(await count("counters")).toBe(3);
    expect(await count("resources")).toBe(1);
    expect(await count("idempotency")).toBe(2);
    expect(await count("credit_allowances")).toBe(2);
    const alarm = await runInDurableObject(stub, (_instance: MeterObject, state) => state.storage.getAlarm());
    expect(alarm).not.toBeNull();

    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await count("counters")).toBe(2); // the lifetime counter and the current month's
    expect(await count("resources")).toBe(0);
    expect(await count("idempotency")).toBe(1);
    expect(await count("credit_allowances")).toBe(1);
    // Something can still expire, so the alarm is set again.
    expect(await runInDurableObject(stub, (_instance: MeterObject, state) => state.storage.getAlarm())).not.toBeNull();
    // What is left still reads the same.
    const readings = readingsOf(await stub.evaluate({ counters: [counter(WIDGET, 5, { consume: false })], timeZone: "UTC" }));
    expect(only(readings).consumedUnits).toBe(1);
    expect(await stub.getBalance("tokens")).toBe(2);
  });

  it("stops re-arming when nothing can expire", async () => {
    const { stub } = freshMeter();
    await stub.evaluate({ counters: [counter(WIDGET, 5, { period: "day" })], timeZone: "UTC", now: at("2020-01-01T00:00:00Z") });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect(await runDurableObjectAlarm(stub)).toBe(false);
    expect(await stub.readCounters()).toEqual([]);
  });
});

describe("deadline client", () => {
  it("returns the value of a call that answers in time", async () => {
    const { stub } = freshMeter();
    const result = await evaluateWithDeadline(stub, { counters: [counter(WIDGET, 3)], timeZone: "UTC" }, 5_000);
    expect(result).toMatchObject({ ok: true, value: { readings: [{ counterId: WIDGET, consumedUnits: 1, hasAccess: true }] } });
  });

  it("returns timeout for a call that does not answer before the deadline", async () => {
    const slow = { evaluate: () => new Promise<EvaluateResult>(() => {}) } as unknown as Pick<DurableObjectStub<MeterObject>, "evaluate">;
    const started = Date.now();
    const result = await evaluateWithDeadline(slow, { counters: [], timeZone: "UTC" }, 50);
    expect(result).toEqual({ ok: false, reason: "timeout", late: expect.any(Promise) });
    expect(Date.now() - started).toBeLessThan(2_000);
    // A call that answers after the deadline is still a timeout.
    const late = await withMeterDeadline(() => new Promise((resolve) => setTimeout(() => resolve("late"), 200)), 20);
    expect(late).toEqual({ ok: false, reason: "timeout", late: expect.any(Promise) });
  });

  it("returns error instead of throwing when the call fails", async () => {
    const failing = { evaluate: () => Promise.reject(new Error("object unreachable")) } as unknown as Pick<DurableObjectStub<MeterObject>, "evaluate">;
    expect(await evaluateWithDeadline(failing, { counters: [], timeZone: "UTC" }, 1_000)).toEqual({ ok: false, reason: "error", error: "object unreachable" });
    const throwing = { evaluate: () => { throw new TypeError("bad stub"); } } as unknown as Pick<DurableObjectStub<MeterObject>, "evaluate">;
    expect(await evaluateWithDeadline(throwing, { counters: [], timeZone: "UTC" }, 1_000)).toEqual({ ok: false, reason: "error", error: "bad stub" });
  });

  it("names objects per store and identifier (tenants never share an object)", () => {
    const a = env.METER.idFromName("org_a:default:user-1");
    expect(meterStub(env.METER, "org_a:default", "user-1").id.equals(a)).toBe(true);
    expect(meterStub(env.METER, "org_b:default", "user-1").id.equals(a)).toBe(false);
  });
});
