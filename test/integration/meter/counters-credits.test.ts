/** Counter updates, admin reads/resets, and credit balances of the meter object. */
import { describe, expect, it } from "vitest";
import type { UpdateCounterInput } from "../../../durable-objects/meter/MeterObject";
import { applyAllowance, at, counter, creditLedger, deduct, freshMeter, only, readingsOf } from "./helpers";

const API = "default:feat_apicalls1.enabled";
const ARTICLES = "default:feat_articles1.enabled";

describe("updateCounter", () => {
  const base: UpdateCounterInput = { counterId: API, period: "month", timeZone: "UTC", limit: 10 };

  it("adds 1 by default, adds and subtracts explicit updates, and never goes below 0", async () => {
    const { stub } = freshMeter();
    expect(await stub.updateCounter(base)).toMatchObject({ reading: { consumedUnits: 1, consumedUnitsInRequest: 1, remainingUnits: 9 } });
    expect(await stub.updateCounter({ ...base, update: 4 })).toMatchObject({ reading: { consumedUnits: 5, consumedUnitsInRequest: 4 } });
    expect(await stub.updateCounter({ ...base, update: -2 })).toMatchObject({ reading: { consumedUnits: 3, consumedInRequest: false, consumedUnitsInRequest: 0 } });
    expect(await stub.updateCounter({ ...base, update: -100 })).toMatchObject({ reading: { consumedUnits: 0, hasAccess: true } });
    expect(await stub.updateCounter({ ...base, update: -1 })).toMatchObject({ reading: { consumedUnits: 0 } });
    expect(await stub.updateCounter({ ...base, update: 1 })).toMatchObject({ reading: { consumedUnits: 1 } });
  });

  it("100 concurrent negative updates never drive the counter below 0", async () => {
    const { stub } = freshMeter();
    await stub.updateCounter({ ...base, update: 5 });
    const results = await Promise.all(Array.from({ length: 100 }, () => stub.updateCounter({ ...base, update: -1 })));
    const values = results.map((result) => ("reading" in result ? result.reading.consumedUnits : -1)).sort((a, b) => b - a);
    expect(values.slice(0, 5)).toEqual([4, 3, 2, 1, 0]);
    expect(values.slice(5).every((value) => value === 0)).toBe(true);
    const [stored] = await stub.readCounters({ counters: [{ counterId: API, period: "month" }] });
    expect(stored!.consumedUnits).toBe(0);
  });

  it("reports units beyond the limit as excess but does not refuse them (usage is reported, not asked)", async () => {
    const { stub } = freshMeter();
    const result = await stub.updateCounter({ ...base, limit: 3, update: 5 });
    expect(result).toMatchObject({ reading: { consumedUnits: 5, remainingUnits: 0, hasAccess: false, excessUnitsInRequest: 2, consumedUnitsInRequest: 5 } });
  });

  it("counts a resource once under a unique-resources meter; a negative update forgets it", async () => {
    const { stub } = freshMeter();
    const unique = { ...base, counterId: ARTICLES, uniqueResources: true };
    expect(await stub.updateCounter({ ...unique, resourceId: "r1" })).toMatchObject({ reading: { consumedUnits: 1, resourceIdUsed: false } });
    expect(await stub.updateCounter({ ...unique, resourceId: "r1", update: 3 })).toMatchObject({ reading: { consumedUnits: 1, resourceIdUsed: true, consumedInRequest: false } });
    expect(await stub.updateCounter({ ...unique, resourceId: "r2" })).toMatchObject({ reading: { consumedUnits: 2 } });
    // The decision path sees the same set.
    const seen = readingsOf(await stub.evaluate({ counters: [counter(ARTICLES, 2, { uniqueResources: true })], resourceId: "r2", timeZone: "UTC" }));
    expect(only(seen)).toMatchObject({ hasAccess: true, resourceIdUsed: true, consumedUnits: 2 });
    expect(await stub.updateCounter({ ...unique, resourceId: "r2", update: -1 })).toMatchObject({ reading: { consumedUnits: 1 } });
    expect(await stub.updateCounter({ ...unique, resourceId: "r2" })).toMatchObject({ reading: { consumedUnits: 2, resourceIdUsed: false } });
  });

  it("is idempotent per key and refuses a reused key with another body", async () => {
    const { stub } = freshMeter();
    const keyed = { ...base, update: 2, idempotencyKey: "upd-1", requestHash: "a" };
    const results = await Promise.all(Array.from({ length: 30 }, () => stub.updateCounter(keyed)));
    // One call ran the update; the others got its stored result, marked as a replay.
    const ran = results.filter((result) => !("replayed" in result));
    expect(ran).toHaveLength(1);
    for (const result of results) if (result !== ran[0]) expect(result).toEqual({ ...ran[0], replayed: true });
    expect(await stub.updateCounter({ ...keyed, requestHash: "b" })).toEqual({ conflict: true });
    const [stored] = await stub.readCounters();
    expect(stored).toMatchObject({ counterId: API, consumedUnits: 2 });
  });

  it("a retry of a known key reports replayed: true with the first reading; the first call does not", async () => {
    const { stub } = freshMeter();
    const keyed = { ...base, update: 3, idempotencyKey: "upd-r", requestHash: "a" };
    const first = await stub.updateCounter(keyed);
    expect(first).not.toHaveProperty("replayed");
    expect(first).toMatchObject({ reading: { consumedUnits: 3, consumedUnitsInRequest: 3, consumedInRequest: true } });
    expect(await stub.updateCounter(keyed)).toEqual({ ...first, replayed: true });
    // Unkeyed updates and a new key run again, unmarked.
    expect(await stub.updateCounter({ ...base, update: 1 })).not.toHaveProperty("replayed");
    expect(await stub.updateCounter({ ...keyed, idempotencyKey: "upd-s" })).toEqual({ reading: expect.objectContaining({ consumedUnits: 7 }) });
  });

  it("truncates a fractional update and ignores a non-number (the route validates integers)", async () => {
    const { stub } = freshMeter();
    expect(await stub.updateCounter({ ...base, update: 2.7 })).toMatchObject({ reading: { consumedUnits: 2 } });
    expect(await stub.updateCounter({ ...base, update: Number.NaN })).toMatchObject({ reading: { consumedUnits: 2 } });
    expect(await stub.updateCounter({ ...base, update: -0.9 })).toMatchObject({ reading: { consumedUnits: 2 } });
  });
});

describe("readCounters / resetCounter (admin)", () => {
  it("lists stored counters of the current period, reads requested ones, and resets one", async () => {
    const { stub } = freshMeter();
    const now = at("2026-05-10T10:00:00Z");
    await stub.evaluate({ counters: [counter(API, 5), counter(ARTICLES, 5, { uniqueResources: true, period: "day" })], resourceId: "r1", timeZone: "UTC", now });
    await stub.evaluate({ counters: [counter(API, 5)], timeZone: "UTC", now });
    expect(await stub.readCounters({ now })).toEqual([
      { counterId: API, period: "month", timeZone: "UTC", periodStart: "2026-05-01T00:00:00.000Z", consumedUnits: 2, uniqueResourceCount: 0 },
      { counterId: ARTICLES, period: "day", timeZone: "UTC", periodStart: "2026-05-10T00:00:00.000Z", consumedUnits: 1, uniqueResourceCount: 1 },
    ]);
    // The next day the daily counter reads 0; a never-written counter reads 0.
    const next = await stub.readCounters({
      now: at("2026-05-11T10:00:00Z"),
      counters: [
        { counterId: ARTICLES, period: "day" },
        { counterId: "default:feat_never001.enabled", period: "week" },
      ],
    });
    expect(next.map((entry) => [entry.counterId, entry.consumedUnits, entry.periodStart])).toEqual([
      [ARTICLES, 0, "2026-05-11T00:00:00.000Z"],
      ["default:feat_never001.enabled", 0, "2026-05-11T00:00:00.000Z"],
    ]);
    expect(await stub.resetCounter(API)).toBe(true);
    expect(await stub.resetCounter(API)).toBe(false);
    expect((await stub.readCounters({ now })).map((entry) => entry.counterId)).toEqual([ARTICLES]);
    const after = readingsOf(await stub.evaluate({ counters: [counter(API, 5, { consume: false })], timeZone: "UTC", now }));
    expect(only(after).consumedUnits).toBe(0);
  });
});

describe("credits", () => {
  it("never go negative under 100 concurrent deductions", async () => {
    const { stub } = freshMeter();
    expect(await stub.grantCredits({ creditId: "tokens", amount: 50, reason: "admin top-up" })).toEqual({ ok: true, balance: 50 });
    const results = await Promise.all(Array.from({ length: 100 }, () => deduct(stub, { creditId: "tokens", cost: 3 })));
    const ok = results.filter((result) => "ok" in result && result.ok);
    const refused = results.filter((result) => "ok" in result && !result.ok);
    expect(ok).toHaveLength(16);
    expect(refused).toHaveLength(84);
    for (const result of refused) expect(result).toEqual({ ok: false, reason: "insufficient_credits", balance: 2 });
    expect(await stub.getBalance("tokens")).toBe(2);
    const balances = ok.map((result) => ("balance" in result ? result.balance : -1)).sort((a, b) => a - b);
    expect(balances).toEqual(Array.from({ length: 16 }, (_, i) => 2 + 3 * i));
  });

  it("support fractional costs without drift; a NaN cost is refused, a negative one costs nothing", async () => {
    const { stub } = freshMeter();
    await stub.grantCredits({ creditId: "tokens", amount: 1 });
    for (let i = 0; i < 10; i++) await deduct(stub, { creditId: "tokens", cost: 0.1 });
    expect(await stub.getBalance("tokens")).toBe(0);
    expect(await deduct(stub, { creditId: "tokens", cost: 0.1 })).toEqual({ ok: false, reason: "insufficient_credits", balance: 0 });
    await stub.grantCredits({ creditId: "tokens", amount: 3 });
    expect(await deduct(stub, { creditId: "tokens", cost: Number.NaN })).toEqual({ ok: false, reason: "insufficient_credits", balance: 3 });
    expect(await deduct(stub, { creditId: "tokens", cost: -5 })).toEqual({ ok: true, balance: 3 });
    expect(await stub.grantCredits({ creditId: "tokens", amount: Number.POSITIVE_INFINITY })).toEqual({ ok: true, balance: 3 });
    expect(await stub.getBalance("tokens")).toBe(3);
  });

  it("a negative grant corrects the balance down to 0 at most, and every change is in the ledger", async () => {
    const { stub } = freshMeter();
    await stub.grantCredits({ creditId: "tokens", amount: 5, reason: "welcome" });
    expect(await stub.grantCredits({ creditId: "tokens", amount: -20, reason: "correction" })).toEqual({ ok: true, balance: 0 });
    const ledger = await creditLedger(stub, "tokens");
    expect(ledger.map((entry) => [entry.delta, entry.balance, entry.reason])).toEqual([
      [-5, 0, "correction"],
      [5, 5, "welcome"],
    ]);
    expect(await stub.getBalance("tokens")).toBe(0);
  });

  it("idempotent deductions under concurrency deduct once; another body under the key conflicts", async () => {
    const { stub } = freshMeter();
    await stub.grantCredits({ creditId: "tokens", amount: 10 });
    const input = { creditId: "tokens", cost: 4, idempotencyKey: "buy-1", requestHash: "x" };
    const results = await Promise.all(Array.from({ length: 50 }, () => deduct(stub, input)));
    expect(results.filter((result) => !("replayed" in result))).toEqual([{ ok: true, balance: 6 }]);
    expect(results.filter((result) => "replayed" in result)).toEqual(Array(49).fill({ ok: true, balance: 6, replayed: true }));
    expect(await deduct(stub, { ...input, requestHash: "y" })).toEqual({ conflict: true });
    expect(await stub.getBalance("tokens")).toBe(6);
  });

  it("grant and deduct retries of a known key report replayed: true (a refused deduction too); first calls do not", async () => {
    const { stub } = freshMeter();
    const grant = { creditId: "tokens", amount: 5, idempotencyKey: "grant-1", requestHash: "g" };
    expect(await stub.grantCredits(grant)).toEqual({ ok: true, balance: 5 });
    expect(await stub.grantCredits(grant)).toEqual({ ok: true, balance: 5, replayed: true });
    const tooMuch = { creditId: "tokens", cost: 9, idempotencyKey: "buy-big", requestHash: "d" };
    expect(await deduct(stub, tooMuch)).toEqual({ ok: false, reason: "insufficient_credits", balance: 5 });
    expect(await deduct(stub, tooMuch)).toEqual({ ok: false, reason: "insufficient_credits", balance: 5, replayed: true });
    const affordable = { creditId: "tokens", cost: 2, idempotencyKey: "buy-2", requestHash: "d" };
    expect(await deduct(stub, affordable)).toEqual({ ok: true, balance: 3 });
    expect(await deduct(stub, affordable)).toEqual({ ok: true, balance: 3, replayed: true });
    expect(await stub.getBalance("tokens")).toBe(3);
  });

  it("periodic grants apply once per period", async () => {
    const { stub } = freshMeter();
    const grant = { creditId: "tokens", amount: 100, period: "month" as const, now: at("2026-04-03T00:00:00Z") };
    await Promise.all(Array.from({ length: 20 }, () => applyAllowance(stub, grant)));
    expect(await periodicGrants(stub)).toEqual([100]);
    expect(await stub.getBalance("tokens")).toBe(100);
    await deduct(stub, { creditId: "tokens", cost: 30 });
    expect(await applyAllowance(stub, { ...grant, now: at("2026-04-30T23:59:59Z") })).toBe(70);
    expect(await applyAllowance(stub, { ...grant, now: at("2026-05-01T00:00:00Z") })).toBe(170);
    expect(await periodicGrants(stub)).toEqual([100, 100]);
  });

  it("carries at most carryOver of a period's unused allowance into the next; bought credits never expire", async () => {
    const { stub } = freshMeter();
    const plan = { creditId: "tokens", amount: 100, period: "month" as const, carryOver: 30, now: at("2026-04-03T00:00:00Z") };
    /** A decision's deduction under the plan (its credit request carries the allowance, as decisions send it). */
    const spend = async (cost: number, now: number) => {
      const result = await stub.evaluate({
        counters: [],
        credits: [{ creditId: "tokens", cost, consume: true, grant: { amount: plan.amount, period: plan.period, carryOver: plan.carryOver } }],
        timeZone: "UTC",
        now,
      });
      if ("conflict" in result) throw new Error("unexpected conflict");
      return result.credits![0]!.balance;
    };
    expect(await applyAllowance(stub, plan)).toBe(100);
    expect(await spend(40, at("2026-04-10T00:00:00Z"))).toBe(60);
    // 60 unused: 30 carry over, 30 expire, then May's 100.
    expect(await applyAllowance(stub, { ...plan, now: at("2026-05-01T00:00:00Z") })).toBe(130);
    expect((await creditLedger(stub, "tokens")).slice(0, 2)).toEqual([
      { delta: 100, balance: 130, reason: "periodic_grant:month:2026-05-01T00:00:00.000Z" },
      { delta: -30, balance: 30, reason: "carry_over_expired:2026-04-01T00:00:00.000Z" },
    ]);
    // Once per period: later calls in May expire nothing more.
    expect(await applyAllowance(stub, { ...plan, now: at("2026-05-20T00:00:00Z") })).toBe(130);
    // 500 bought credits on top; 10 spent in May. May's allowance (100) and what it carried in (30), less 10 spent:
    // 120 unused, 30 kept, 90 expire; the 500 bought stay.
    await stub.grantCredits({ creditId: "tokens", amount: 500, reason: "purchase" });
    expect(await spend(10, at("2026-05-21T00:00:00Z"))).toBe(620);
    expect(await applyAllowance(stub, { ...plan, now: at("2026-06-01T00:00:00Z") })).toBe(630);

    // Bought credits spent past the allowance are not expired: 100 allowance, 50 bought, 60 spent → 40 unused, 20 kept.
    const mixed = freshMeter().stub;
    const small = { creditId: "tokens", amount: 100, period: "month" as const, carryOver: 20 };
    await applyAllowance(mixed, { ...small, now: at("2026-04-03T00:00:00Z") });
    await mixed.grantCredits({ creditId: "tokens", amount: 50, reason: "purchase" });
    await mixed.evaluate({ counters: [], credits: [{ creditId: "tokens", cost: 60, consume: true, grant: { amount: 100, period: "month", carryOver: 20 } }], timeZone: "UTC", now: at("2026-04-04T00:00:00Z") });
    expect(await applyAllowance(mixed, { ...small, now: at("2026-05-01T00:00:00Z") })).toBe(170);
    // Nothing spent for months: the carry stays capped (no pile-up).
    for (const month of ["06", "07", "08"]) expect(await applyAllowance(mixed, { ...small, now: at(`2026-${month}-01T00:00:00Z`) })).toBe(170);

    // A plan that gains carryOver later: what was spent before still counts, so bought credits do not expire.
    const late = freshMeter().stub;
    const open = { creditId: "tokens", amount: 100, period: "month" as const };
    await applyAllowance(late, { ...open, now: at("2026-04-03T00:00:00Z") });
    await late.evaluate({ counters: [], credits: [{ creditId: "tokens", cost: 100, consume: true, grant: { amount: 100, period: "month" } }], timeZone: "UTC", now: at("2026-04-05T00:00:00Z") });
    await late.grantCredits({ creditId: "tokens", amount: 50, reason: "purchase" });
    expect(await applyAllowance(late, { ...open, carryOver: 0, now: at("2026-04-20T00:00:00Z") })).toBe(50);
    expect(await applyAllowance(late, { ...open, carryOver: 0, now: at("2026-05-01T00:00:00Z") })).toBe(150);

    // Use it or lose it.
    const strict = freshMeter().stub;
    const noCarry = { ...plan, carryOver: 0 };
    expect(await applyAllowance(strict, noCarry)).toBe(100);
    expect(await applyAllowance(strict, { ...noCarry, now: at("2026-05-01T00:00:00Z") })).toBe(100);
    // Without carryOver everything stays (the default).
    const keep = freshMeter().stub;
    const { carryOver: _, ...unlimited } = plan;
    await applyAllowance(keep, unlimited);
    expect(await applyAllowance(keep, { ...unlimited, now: at("2026-05-01T00:00:00Z") })).toBe(200);
  });

  it("a larger allowance later in the same period grants only the difference; a smaller one nothing", async () => {
    const { stub } = freshMeter();
    const free = { creditId: "tokens", amount: 20, period: "month" as const, now: at("2026-04-03T00:00:00Z") };
    expect(await applyAllowance(stub, free)).toBe(20);
    await deduct(stub, { creditId: "tokens", cost: 5 });
    // Upgraded to a 1000-a-month plan mid-month: 980 more, not 1000, and not nothing.
    const pro = { ...free, amount: 1000, now: at("2026-04-15T00:00:00Z") };
    await Promise.all(Array.from({ length: 10 }, () => applyAllowance(stub, pro)));
    expect(await periodicGrants(stub)).toEqual([20, 980]);
    expect(await stub.getBalance("tokens")).toBe(995);
    expect(await applyAllowance(stub, { ...free, now: at("2026-04-20T00:00:00Z") })).toBe(995);
    expect(await periodicGrants(stub)).toEqual([20, 980]);
    expect(await applyAllowance(stub, { ...free, now: at("2026-05-01T00:00:00Z") })).toBe(1015);
  });

  it("are checked and deducted in the decision call, all or nothing with the meters", async () => {
    const { stub } = freshMeter();
    const now = at("2026-04-03T00:00:00Z");
    const credits = [{ creditId: "tokens", cost: 4, consume: true, grant: { amount: 10, period: "month" as const } }];
    const meter = counter(API, 100);
    const first = await stub.evaluate({ counters: [meter], credits, timeZone: "UTC", now });
    expect(first).toMatchObject({ readings: [{ consumedInRequest: true }], credits: [{ creditId: "tokens", hasAccess: true, balance: 6, cost: 4, deductedInRequest: true }] });
    await stub.evaluate({ counters: [meter], credits, timeZone: "UTC", now });
    // Balance 2 < 4: the credit refuses, so the meter does not consume either.
    const third = await stub.evaluate({ counters: [meter], credits, timeZone: "UTC", now });
    expect(third).toMatchObject({
      readings: [{ hasAccess: false, consumedUnits: 2, consumedInRequest: false }],
      credits: [{ hasAccess: false, balance: 2, deductedInRequest: false, reason: "insufficient_credits" }],
    });
    // A full meter keeps the credits: nothing is deducted.
    const full = await stub.evaluate({ counters: [counter(API, 2)], credits: [{ creditId: "tokens", cost: 1, consume: true }], timeZone: "UTC", now });
    expect(full).toMatchObject({ readings: [{ hasAccess: false }], credits: [{ hasAccess: false, balance: 2, deductedInRequest: false }] });
    expect(full).not.toMatchObject({ credits: [{ reason: "insufficient_credits" }] });
    // Next month the grant tops the balance up inside the same call.
    const may = await stub.evaluate({ counters: [], credits, timeZone: "UTC", now: at("2026-05-01T00:00:00Z") });
    expect(may).toMatchObject({ credits: [{ hasAccess: true, balance: 8 }] });
    // Concurrent decisions never overdraw.
    const results = await Promise.all(Array.from({ length: 40 }, () => stub.evaluate({ counters: [], credits, timeZone: "UTC", now: at("2026-05-02T00:00:00Z") })));
    expect(results.filter((result) => "credits" in result && result.credits![0]!.deductedInRequest)).toHaveLength(2);
    expect(await stub.getBalance("tokens")).toBe(0);
  });
});

/** The amounts of the periodic allowances given to the `tokens` balance so far, oldest first. */
async function periodicGrants(stub: Parameters<typeof creditLedger>[0]): Promise<number[]> {
  const ledger = await creditLedger(stub, "tokens");
  return ledger.filter((entry) => entry.reason.startsWith("periodic_grant:")).map((entry) => entry.delta).reverse();
}
