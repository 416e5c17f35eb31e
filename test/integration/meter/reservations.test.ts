/** Reservations in the meter object: reserve → finalize / release / expiry, atomic under concurrency and the alarm. */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { MeterStub } from "../../../durable-objects/meter/client";
import type { MeterObject } from "../../../durable-objects/meter/MeterObject";
import type { ReservedCounter, ReserveInput, SettleInput, SettleOutcome } from "../../../durable-objects/meter/reservations";
import { at, creditLedger, freshMeter } from "./helpers";

const TOKENS = "default:feat_llmtokens.enabled";
const CREDITS = "default:feat_aitools01.tokens";
const capped: ReservedCounter = { counterId: TOKENS, period: "month", limit: 10 };
const overflow: ReservedCounter = { counterId: TOKENS, period: "month", limit: Number.MAX_SAFE_INTEGER, overflowLimit: 3 };
// A fixed clock in the future: the alarm (real clock) never rings for these reservations during a test.
const T = at("2031-05-10T12:00:00Z");

const reserveUnits = (stub: MeterStub, amount: number, extra: Partial<ReserveInput> = {}) =>
  stub.reserve({ counter: capped, amount, ttlMs: 300_000, timeZone: "UTC", now: T, ...extra });

const settle = (stub: MeterStub, reservationId: string, input: Partial<SettleInput> = {}) =>
  stub.settleReservation({ reservationId, action: "finalize", counters: [capped], credits: [], timeZone: "UTC", now: T + 1000, ...input }) as Promise<SettleOutcome>;

const consumed = async (stub: MeterStub, now = T): Promise<number> =>
  (await stub.readCounters({ counters: [{ counterId: TOKENS, period: "month" }], timeZone: "UTC", now }))[0]!.consumedUnits;

async function reservationId(stub: MeterStub, amount: number, extra: Partial<ReserveInput> = {}): Promise<string> {
  const result = await reserveUnits(stub, amount, extra);
  if (!("granted" in result) || !result.reservation) throw new Error(`not reserved: ${JSON.stringify(result)}`);
  return result.reservation.id;
}

const rowCount = (stub: MeterStub) =>
  runInDurableObject(stub, (_instance: MeterObject, state) => state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM reservations").one().n);

describe("reserve", () => {
  it("takes the units when there is room and refuses (taking nothing) when there is not", async () => {
    const { stub } = freshMeter();
    const first = await reserveUnits(stub, 4);
    expect(first).toMatchObject({ granted: true, reservation: { counterId: TOKENS, amount: 4, expiresAt: new Date(T + 300_000).toISOString() } });
    expect(first).toMatchObject({ counter: { consumedUnits: 4, remainingUnits: 6, consumedUnitsInRequest: 4, hasAccess: true } });
    expect((first as { reservation: { id: string } }).reservation.id).toMatch(/^rsv_[a-z0-9]{20}$/);

    const refused = await reserveUnits(stub, 7);
    expect(refused).toEqual({ granted: false, counter: expect.objectContaining({ hasAccess: false, consumedUnits: 4, consumedUnitsInRequest: 0, excessUnitsInRequest: 1 }) });
    expect(await consumed(stub)).toBe(4);
    expect(await rowCount(stub)).toBe(1);
    // Exactly the room left is still granted.
    expect(await reserveUnits(stub, 6)).toMatchObject({ granted: true, counter: { consumedUnits: 10, remainingUnits: 0, hasAccess: true } });
  });

  it("20 concurrent reservations of 3 units against a limit of 10: exactly 3 granted, 9 consumed", async () => {
    const { stub } = freshMeter();
    const results = await Promise.all(Array.from({ length: 20 }, () => reserveUnits(stub, 3)));
    expect(results.filter((result) => "granted" in result && result.granted)).toHaveLength(3);
    expect(await consumed(stub)).toBe(9);
    expect(await rowCount(stub)).toBe(3);
  });

  it("never refuses an overflow counter and takes nothing until finalize", async () => {
    const { stub } = freshMeter();
    await stub.updateCounter({ counterId: TOKENS, period: "month", timeZone: "UTC", update: 5, now: T });
    const result = await reserveUnits(stub, 50, { counter: overflow });
    expect(result).toMatchObject({ granted: true, counter: { consumedUnits: 5, consumedUnitsInRequest: 0, overageBilledUnits: 0 } });
    expect(await consumed(stub)).toBe(5);
  });

  it("is idempotent per key: concurrent retries make one reservation", async () => {
    const { stub } = freshMeter();
    const keyed = { idempotencyKey: "env:reservation:k1", requestHash: "h" };
    const results = await Promise.all(Array.from({ length: 10 }, () => reserveUnits(stub, 2, keyed)));
    const ids = new Set(results.map((result) => ("reservation" in result ? result.reservation?.id : undefined)));
    expect(ids.size).toBe(1);
    expect(results.filter((result) => !("replayed" in result))).toHaveLength(1);
    expect(await consumed(stub)).toBe(2);
    expect(await reserveUnits(stub, 2, { ...keyed, requestHash: "other" })).toEqual({ conflict: true });
  });

  it("sets the alarm to ring by the reservation's expiry, before an hourly prune", async () => {
    const { stub } = freshMeter();
    const now = Date.now();
    // A write that schedules the hourly prune first.
    await stub.updateCounter({ counterId: TOKENS, period: "month", timeZone: "UTC", update: 1 });
    await reserveUnits(stub, 2, { now, ttlMs: 120_000 });
    const alarm = await runInDurableObject(stub, (_instance: MeterObject, state) => state.storage.getAlarm());
    expect(alarm).not.toBeNull();
    expect(alarm!).toBeLessThanOrEqual(now + 120_000);
  });
});

describe("finalize", () => {
  it("gives back what was not used", async () => {
    const { stub } = freshMeter();
    const id = await reservationId(stub, 5);
    const result = await settle(stub, id, { actual: 2 });
    expect(result).toMatchObject({
      reservation: { id, reserved: 5, actual: 2, refunded: 3, charged: 0, uncovered: 0, status: "finalized" },
      counter: { consumedUnits: 2, remainingUnits: 8, hasAccess: true },
    });
    expect(await consumed(stub)).toBe(2);
  });

  it("takes the extra of a capped counter as far as the room goes and reports the rest as uncovered", async () => {
    const { stub } = freshMeter();
    await stub.updateCounter({ counterId: TOKENS, period: "month", timeZone: "UTC", update: 3, now: T });
    const id = await reservationId(stub, 5);
    expect(await consumed(stub)).toBe(8);
    const result = await settle(stub, id, { actual: 9 });
    expect(result).toMatchObject({
      reservation: { reserved: 5, actual: 9, refunded: 0, charged: 2, uncovered: 2 },
      counter: { consumedUnits: 10, consumedUnitsInRequest: 2, excessUnitsInRequest: 2, hasAccess: false },
    });
    expect(await consumed(stub)).toBe(10);
  });

  it("takes all of an overflow counter's usage at finalize and bills its overage once", async () => {
    const { stub } = freshMeter();
    const id = await reservationId(stub, 5, { counter: overflow });
    const result = await settle(stub, id, { actual: 7, counters: [overflow] });
    expect(result).toMatchObject({
      reservation: { reserved: 5, actual: 7, refunded: 0, charged: 2, uncovered: 0 },
      counter: { consumedUnits: 7, consumedUnitsInRequest: 7, overageBilledUnits: 4 },
    });
    // A repeat answers the first answer: nothing consumed or billed again.
    expect(await settle(stub, id, { actual: 7, counters: [overflow] })).toEqual({ ...result, replayed: true });
    expect(await consumed(stub)).toBe(7);
    // Less than reserved: only what was used is taken (and billed past the limit).
    const smaller = await reservationId(stub, 5, { counter: overflow });
    expect(await settle(stub, smaller, { actual: 1, counters: [overflow] })).toMatchObject({
      reservation: { reserved: 5, actual: 1, refunded: 4, charged: 0 },
      counter: { consumedUnits: 8, overageBilledUnits: 1 },
    });
  });

  it("settles credits: refunds the difference, takes the extra up to the balance", async () => {
    const { stub } = freshMeter();
    await stub.grantCredits({ creditId: CREDITS, amount: 20 });
    const credit = { creditId: CREDITS, cost: 0, consume: true };
    const reserved = await stub.reserve({ credit, amount: 8, ttlMs: 60_000, timeZone: "UTC", now: T });
    expect(reserved).toMatchObject({ granted: true, credit: { balance: 12, cost: 8, deductedInRequest: true } });
    const id = (reserved as { reservation: { id: string } }).reservation.id;
    expect(await settle(stub, id, { actual: 2.5, counters: [] })).toMatchObject({
      reservation: { reserved: 8, actual: 2.5, refunded: 5.5, charged: 0, uncovered: 0 },
      credit: { balance: 17.5, hasAccess: true },
    });

    const again = (await stub.reserve({ credit, amount: 10, ttlMs: 60_000, timeZone: "UTC", now: T })) as { reservation: { id: string } };
    expect(await stub.getBalance(CREDITS)).toBe(7.5);
    expect(await settle(stub, again.reservation.id, { actual: 20, counters: [] })).toMatchObject({
      reservation: { reserved: 10, actual: 20, charged: 7.5, uncovered: 2.5 },
      credit: { balance: 0, hasAccess: false, reason: "insufficient_credits" },
    });
    expect((await creditLedger(stub, CREDITS)).map((entry) => entry.reason)).toEqual([
      `reservation_overage:${again.reservation.id}`,
      `reservation:${again.reservation.id}`,
      `reservation_refund:${id}`,
      `reservation:${id}`,
      "grant",
    ]);
    // No balance for the next reservation: refused, nothing taken.
    expect(await stub.reserve({ credit, amount: 1, ttlMs: 60_000, timeZone: "UTC", now: T })).toMatchObject({
      granted: false,
      credit: { balance: 0, deductedInRequest: false, reason: "insufficient_credits" },
    });
  });

  it("gives reserved allowance back as allowance of its period: a release cannot carry it past carryOver", async () => {
    const grant = { amount: 20, period: "month" as const, carryOver: 0 };
    const credit = { creditId: CREDITS, cost: 0, consume: true, grant };
    const read = (stub: MeterStub, now: number) => stub.evaluate({ counters: [], credits: [{ ...credit, consume: false }], timeZone: "UTC", now });
    const june = at("2031-06-02T12:00:00Z");

    // Released within the period: the allowance is unused again, and expires with the month.
    const { stub: within } = freshMeter();
    const reserved = (await within.reserve({ credit, amount: 20, ttlMs: 3_600_000, timeZone: "UTC", now: T })) as { reservation: { id: string } };
    await settle(within, reserved.reservation.id, { action: "release", counters: [], credits: [credit] });
    expect(await within.getBalance(CREDITS)).toBe(20);
    expect(await read(within, june)).toMatchObject({ credits: [{ balance: 20 }] });

    // Reserved at the end of May, given back in June after June's grant ran: May's allowance has expired (carryOver 0).
    const { stub: across } = freshMeter();
    const late = (await across.reserve({ credit, amount: 20, ttlMs: 3_600_000, timeZone: "UTC", now: at("2031-05-31T23:30:00Z") })) as { reservation: { id: string } };
    await read(across, at("2031-06-01T00:05:00Z"));
    expect(await across.getBalance(CREDITS)).toBe(20);
    expect(await settle(across, late.reservation.id, { action: "release", counters: [], credits: [credit], now: at("2031-06-01T00:10:00Z") })).toMatchObject({ reservation: { refunded: 0 } });
    expect(await across.getBalance(CREDITS)).toBe(20);

    // The same with the alarm giving it back, months later (the alarm runs on the real clock: these dates are past, so
    // it may already have run — before or after June's grant, the balance ends the same).
    const { stub: expired } = freshMeter();
    await expired.reserve({ credit, amount: 20, ttlMs: 60_000, timeZone: "UTC", now: at("2025-05-31T23:59:00Z") });
    await read(expired, at("2025-06-01T00:05:00Z"));
    await runDurableObjectAlarm(expired);
    const statuses = await runInDurableObject(expired, (_instance: MeterObject, state) => state.storage.sql.exec<{ status: string }>("SELECT status FROM reservations").toArray());
    expect(statuses).toEqual([{ status: "expired" }]);
    expect(await expired.getBalance(CREDITS)).toBe(20);
  });

  it("answers a repeat with the same amount as the first time and refuses another amount", async () => {
    const { stub } = freshMeter();
    const id = await reservationId(stub, 5);
    const first = await settle(stub, id, { actual: 3 });
    expect(first).not.toHaveProperty("replayed");
    expect(await settle(stub, id, { actual: 3, now: T + 60_000 })).toEqual({ ...first, replayed: true });
    expect(await settle(stub, id, { actual: 4 })).toMatchObject({ refused: "reservation_finalized" });
    expect(await settle(stub, id, { action: "release" })).toMatchObject({ refused: "reservation_finalized" });
    expect(await consumed(stub)).toBe(3);
  });

  it("10 concurrent finalizes of one reservation have one effect", async () => {
    const { stub } = freshMeter();
    const id = await reservationId(stub, 5);
    const results = await Promise.all(Array.from({ length: 10 }, () => settle(stub, id, { actual: 8 })));
    expect(results.filter((result) => !("replayed" in result))).toHaveLength(1);
    for (const result of results) expect(result).toMatchObject({ reservation: { charged: 3 }, counter: { consumedUnits: 8 } });
    expect(await consumed(stub)).toBe(8);
  });

  it("refuses an unknown id, and one of another identity (which it never touches)", async () => {
    const { stub } = freshMeter();
    expect(await settle(stub, "rsv_doesnotexist")).toEqual({ refused: "reservation_not_found" });
    const id = await reservationId(stub, 5);
    const { stub: other } = freshMeter("other");
    await other.updateCounter({ counterId: TOKENS, period: "month", timeZone: "UTC", update: 1, now: T });
    expect(await settle(other, id, { actual: 0 })).toEqual({ refused: "reservation_not_found" });
    expect(await consumed(stub)).toBe(5);
    expect(await consumed(other)).toBe(1);
  });

  it("refuses a whole-unit reservation finalized with a fraction, changing nothing", async () => {
    const { stub } = freshMeter();
    const id = await reservationId(stub, 5);
    expect(await settle(stub, id, { actual: 2.5 })).toEqual({ refused: "fractional_units" });
    expect(await consumed(stub)).toBe(5);
    expect(await settle(stub, id, { actual: 2 })).toMatchObject({ reservation: { refunded: 3 } });
  });

  it("gives nothing back once the counter's period is over (its count is gone), and takes the extra in the new one", async () => {
    const { stub } = freshMeter();
    const lastMinute = at("2031-01-31T23:59:30Z");
    const id = await reservationId(stub, 5, { now: lastMinute, ttlMs: 3_600_000 });
    const nextMonth = at("2031-02-01T00:00:30Z");
    expect(await settle(stub, id, { actual: 2, now: nextMonth })).toMatchObject({ reservation: { refunded: 0 }, counter: { consumedUnits: 0 } });
    expect(await consumed(stub, lastMinute)).toBe(5);
    expect(await consumed(stub, nextMonth)).toBe(0);

    const late = await reservationId(stub, 2, { now: lastMinute, ttlMs: 3_600_000 });
    expect(await settle(stub, late, { actual: 4, now: nextMonth })).toMatchObject({ reservation: { charged: 2 }, counter: { consumedUnits: 2 } });
    expect(await consumed(stub, nextMonth)).toBe(2);
  });
});

describe("release", () => {
  it("gives everything back once; a repeat answers the same", async () => {
    const { stub } = freshMeter();
    await stub.updateCounter({ counterId: TOKENS, period: "month", timeZone: "UTC", update: 2, now: T });
    const id = await reservationId(stub, 5);
    const released = await settle(stub, id, { action: "release" });
    expect(released).toMatchObject({ reservation: { reserved: 5, actual: 0, refunded: 5, status: "released" }, counter: { consumedUnits: 2 } });
    expect(await settle(stub, id, { action: "release" })).toEqual({ ...released, replayed: true });
    expect(await settle(stub, id, { actual: 0 })).toMatchObject({ refused: "reservation_finalized" });
    expect(await consumed(stub)).toBe(2);
  });
});

describe("expiry", () => {
  it("a finalize past the expiry is refused, gives the units back and charges nothing (the alarm has not run)", async () => {
    const { stub } = freshMeter();
    await stub.updateCounter({ counterId: TOKENS, period: "month", timeZone: "UTC", update: 2, now: T });
    const id = await reservationId(stub, 5, { ttlMs: 60_000 });
    expect(await settle(stub, id, { actual: 9, now: T + 60_000 })).toEqual({ refused: "reservation_expired" });
    expect(await consumed(stub)).toBe(2);
    expect(await settle(stub, id, { actual: 9, now: T + 61_000 })).toEqual({ refused: "reservation_expired" });
    expect(await settle(stub, id, { action: "release", now: T + 61_000 })).toEqual({ refused: "reservation_expired" });
    expect(await consumed(stub)).toBe(2);
  });

  it("the alarm gives expired units and credits back; a later finalize is refused and charges nothing", async () => {
    const { stub } = freshMeter();
    // Reserved ten minutes ago for one minute: expired by the real clock the alarm uses.
    const past = Date.now() - 600_000;
    await stub.updateCounter({ counterId: TOKENS, period: "month", timeZone: "UTC", update: 2, now: past });
    await stub.grantCredits({ creditId: CREDITS, amount: 10 });
    const units = await reservationId(stub, 5, { now: past, ttlMs: 60_000 });
    await stub.reserve({ credit: { creditId: CREDITS, cost: 0, consume: true }, amount: 4, ttlMs: 60_000, timeZone: "UTC", now: past });
    // A reservation still running keeps the alarm armed for its expiry.
    const running = await reservationId(stub, 1, { now: Date.now(), ttlMs: 3_600_000 });

    // The alarm may already have rung by itself (it was due): either way, it is what gave the amounts back.
    await runDurableObjectAlarm(stub);
    expect(await consumed(stub, Date.now())).toBe(3);
    expect(await stub.getBalance(CREDITS)).toBe(10);
    const alarm = await runInDurableObject(stub, (_instance: MeterObject, state) => state.storage.getAlarm());
    expect(alarm).not.toBeNull();

    expect(await settle(stub, units, { actual: 5, now: Date.now() })).toEqual({ refused: "reservation_expired" });
    expect(await consumed(stub, Date.now())).toBe(3);
    expect(await settle(stub, running, { actual: 1, now: Date.now() })).toMatchObject({ reservation: { refunded: 0, charged: 0 } });
  });

  it("a finalize racing the alarm over an expired reservation gives the units back exactly once", async () => {
    const { stub } = freshMeter();
    const past = Date.now() - 600_000;
    await stub.updateCounter({ counterId: TOKENS, period: "month", timeZone: "UTC", update: 5, now: past });
    const id = await reservationId(stub, 3, { now: past, ttlMs: 60_000 });
    const [finalized] = await Promise.all([settle(stub, id, { actual: 3, now: Date.now() }), runDurableObjectAlarm(stub)]);
    expect(finalized).toEqual({ refused: "reservation_expired" });
    expect(await consumed(stub, Date.now())).toBe(5);
  });

  it("reserves and finalizes racing the alarm never lose or double a unit", async () => {
    const { stub } = freshMeter();
    // Room for everything at once: only a lost or doubled unit can change the count.
    const roomy = { ...capped, limit: 100 };
    const past = Date.now() - 600_000;
    const expired = await Promise.all(Array.from({ length: 3 }, () => reservationId(stub, 2, { counter: roomy, now: past, ttlMs: 60_000 })));
    const now = Date.now();
    const live = { counter: roomy, now, ttlMs: 300_000 };
    const work = Array.from({ length: 4 }, async () => {
      const id = await reservationId(stub, 1, live);
      return settle(stub, id, { actual: 2, now, counters: [roomy] });
    });
    await Promise.all([...work, runDurableObjectAlarm(stub), ...expired.map((id) => settle(stub, id, { actual: 2, now, counters: [roomy] }))]);
    // The expired ones gave everything back; the live ones each used 2.
    expect(await consumed(stub, now)).toBe(8);
  });

  it("the alarm prunes settled reservations after 24 hours", async () => {
    const { stub } = freshMeter();
    const longAgo = Date.now() - 2 * 24 * 3_600_000;
    // Settled two days ago (it would expire only tomorrow, so no alarm rings for it meanwhile).
    const id = await reservationId(stub, 1, { now: longAgo, ttlMs: 3 * 24 * 3_600_000 });
    await settle(stub, id, { actual: 1, now: longAgo + 1000 });
    await reservationId(stub, 1, { now: Date.now(), ttlMs: 300_000 });
    expect(await rowCount(stub)).toBe(2);
    await runInDurableObject(stub, (instance: MeterObject) => instance.alarm());
    expect(await rowCount(stub)).toBe(1);
    expect(await settle(stub, id, { actual: 1, now: Date.now() })).toEqual({ refused: "reservation_not_found" });
  });
});
