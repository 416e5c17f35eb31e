/**
 * Reservations: usage whose cost is known only afterwards (an LLM call's tokens). A reservation takes units of a
 * metered counter (or credits of a balance) up front, in the same synchronous step as the check that there is room, so
 * concurrent requests can never reserve more than the limit together. `finalize` settles on the actual amount (gives
 * back what was not used, takes what went over), `release` gives everything back, and a reservation nobody settles
 * gives everything back once it expires (the object's alarm, or the first settle call past its expiry).
 *
 * These functions run inside one MeterObject call, synchronously and inside its transaction, so the object's
 * atomicity argument covers them (storage-schema.md, "Reservations"). They reach the object's counters, overage marks
 * and balances through `MeterBook`: the same steps its other calls take, so a reservation's units and credits are
 * indistinguishable from any other consumption.
 */
import type { Period } from "../../schema/config";
import type { CreditReading, CreditRequest, MeterReading } from "../../workers/engine/types";
import { randomToken } from "../../workers/lib/crypto";
import { periodStart } from "./periods";

/** Settled reservations are kept this long, so a repeated finalize or release answers as the first one did. */
export const SETTLED_RESERVATION_TTL_MS = 24 * 60 * 60 * 1000;

export const RESERVATIONS_SCHEMA = `
  CREATE TABLE IF NOT EXISTS reservations (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, counter_id TEXT NOT NULL, period TEXT NOT NULL, time_zone TEXT NOT NULL,
    period_start INTEGER NOT NULL, unit_limit INTEGER NOT NULL, overflow_limit INTEGER, amount REAL NOT NULL,
    held REAL NOT NULL, expires_at INTEGER NOT NULL, status TEXT NOT NULL, actual REAL, result TEXT, settled_at INTEGER,
    carry_over REAL);
  CREATE INDEX IF NOT EXISTS reservations_status_expires_at ON reservations (status, expires_at);
`;
export const RESERVATIONS_SCHEMA_OBJECTS = ["reservations", "reservations_status_expires_at"];

/** The steps of the meter object a reservation takes (MeterObject's own, bound to it). */
export interface MeterBook {
  consumedIn(counterId: string, start: number): number;
  writeCounter(counterId: string, period: Period, timeZone: string, start: number, consumed: number): void;
  billOverage(counterId: string, start: number, before: number, after: number, overflowLimit: number): number;
  moveOverageMark(counterId: string, start: number, after: number): void;
  getBalance(creditId: string): number;
  changeBalance(creditId: string, delta: number, reason: string, now: number): number;
  applyPeriodicGrant(creditId: string, grant: NonNullable<CreditRequest["grant"]>, timeZone: string, now: number): void;
  addSpent(creditId: string, start: number, cost: number): void;
}

/** A metered counter as the identity's plans set it now (the fields of its MeterRequest a reservation needs). */
export interface ReservedCounter {
  counterId: string;
  period: Period;
  limit: number;
  /** An `overage: overflow` setting's limit: never refused; its units are taken (and billed) when it is finalized. */
  overflowLimit?: number;
}

export interface ReserveInput {
  /** Exactly one of `counter` (units) and `credit` (credits; its `cost` is ignored, `amount` is what is reserved). */
  counter?: ReservedCounter;
  credit?: CreditRequest;
  /** Units (an integer ≥ 1) or credits (> 0). */
  amount: number;
  ttlMs: number;
  timeZone: string;
  now?: number;
  idempotencyKey?: string;
  requestHash?: string;
}

export interface ReservationView {
  id: string;
  counterId: string;
  amount: number;
  /** ISO-8601. */
  expiresAt: string;
}

export type ReserveOutcome = {
  granted: boolean;
  /** Only when granted. */
  reservation?: ReservationView;
  counter?: MeterReading;
  credit?: CreditReading;
};

export interface SettleInput {
  reservationId: string;
  /** `finalize` with the actual amount (≥ 0), or `release` (everything goes back). */
  action: "finalize" | "release";
  actual?: number;
  /** The identity's counters and credits as its plans set them now: the reservation's own is picked (by id). */
  counters: ReservedCounter[];
  credits: CreditRequest[];
  timeZone: string;
  now?: number;
}

export type ReservationRefusal = "reservation_not_found" | "reservation_expired" | "reservation_finalized" | "fractional_units";

export interface SettledReservation {
  id: string;
  reserved: number;
  actual: number;
  /** What went back to the counter or balance (reserved − actual; 0 when a counter's period ended meanwhile). */
  refunded: number;
  /** What was taken beyond the reservation (actual − reserved, less what could not be covered). */
  charged: number;
  /** What went beyond the reservation and could not be taken: no room under a capped limit, or no balance left. */
  uncovered: number;
  status: "finalized" | "released";
}

export type SettleOutcome =
  | { refused: ReservationRefusal; detail?: string }
  | { reservation: SettledReservation; counter?: MeterReading; credit?: CreditReading; replayed?: true };

interface ReservationRow {
  id: string;
  kind: "units" | "credits";
  counter_id: string;
  period: Period | "";
  time_zone: string;
  period_start: number;
  unit_limit: number;
  overflow_limit: number | null;
  amount: number;
  held: number;
  expires_at: number;
  status: "active" | "finalized" | "released" | "expired";
  actual: number | null;
  result: string | null;
  settled_at: number | null;
  carry_over: number | null;
  [key: string]: SqlStorageValue;
}

/** Credits may be fractional; kept to 6 decimals as the object keeps balances. */
const money = (value: number): number => Math.round(value * 1e6) / 1e6;

function unitLimit(limit: number | undefined): number {
  if (limit === undefined || Number.isNaN(limit)) return Number.MAX_SAFE_INTEGER;
  return Math.max(0, Math.min(Number.MAX_SAFE_INTEGER, Math.floor(limit)));
}

export class Reservations {
  constructor(
    private readonly sql: SqlStorage,
    private readonly book: MeterBook,
  ) {}

  /**
   * Takes the amount if there is room (limit − consumed this period; the balance for credits) and stores the
   * reservation; otherwise takes nothing and stores nothing (`granted: false` with the reading). An overflow counter
   * is never refused and takes nothing now: its units are taken when the reservation is finalized, so overage is
   * billed on what was used, not on what was reserved.
   */
  reserve(input: ReserveInput, now: number): ReserveOutcome {
    const timeZone = input.timeZone || "UTC";
    const id = `rsv_${randomToken(20)}`;
    const expiresAt = now + Math.max(1, Math.floor(input.ttlMs));
    if (input.counter) {
      const setting = input.counter;
      const amount = Number.isInteger(input.amount) && input.amount >= 1 ? input.amount : Number.NaN;
      const limit = unitLimit(setting.limit);
      const start = periodStart(setting.period, now, timeZone);
      const before = this.book.consumedIn(setting.counterId, start);
      const overflow = setting.overflowLimit !== undefined;
      const granted = amount >= 1 && (overflow || before + amount <= limit);
      const held = granted && !overflow ? amount : 0;
      if (held > 0) {
        this.book.writeCounter(setting.counterId, setting.period, timeZone, start, before + held);
        this.book.moveOverageMark(setting.counterId, start, before + held);
      }
      const counter = unitsReading(setting.counterId, limit, start, before + held, {
        hasAccess: granted,
        consumedUnitsInRequest: held,
        excessUnitsInRequest: granted || Number.isNaN(amount) ? 0 : before + amount - limit,
        ...(overflow ? { overageBilledUnits: 0 } : {}),
      });
      if (!granted) return { granted: false, counter };
      this.insert({ id, kind: "units", counterId: setting.counterId, period: setting.period, timeZone, start, limit, overflowLimit: setting.overflowLimit, amount, held, expiresAt });
      return { granted: true, reservation: view(id, setting.counterId, amount, expiresAt), counter };
    }
    const credit = input.credit!;
    if (credit.grant) this.book.applyPeriodicGrant(credit.creditId, credit.grant, timeZone, now);
    const amount = Number.isFinite(input.amount) && input.amount > 0 ? money(input.amount) : Number.NaN;
    const balance = this.book.getBalance(credit.creditId);
    const granted = amount > 0 && balance >= amount;
    if (!granted) {
      return { granted: false, credit: { creditId: credit.creditId, hasAccess: false, balance, cost: amount || 0, deductedInRequest: false, reason: "insufficient_credits" } };
    }
    const after = this.book.changeBalance(credit.creditId, -amount, `reservation:${id}`, now);
    // The allowance's period is kept: what goes back later is given back as allowance of that period (see giveBack).
    const grantStart = credit.grant ? periodStart(credit.grant.period, now, timeZone) : 0;
    if (credit.grant) this.book.addSpent(credit.creditId, grantStart, amount);
    this.insert({
      id,
      kind: "credits",
      counterId: credit.creditId,
      period: credit.grant?.period ?? "",
      timeZone,
      start: grantStart,
      limit: 0,
      overflowLimit: undefined,
      amount,
      held: amount,
      expiresAt,
      carryOver: credit.grant?.carryOver,
    });
    return { granted: true, reservation: view(id, credit.creditId, amount, expiresAt), credit: { creditId: credit.creditId, hasAccess: true, balance: after, cost: amount, deductedInRequest: true } };
  }

  /**
   * Finalizes or releases one reservation: an unknown id is refused; an expired one is refused (and gives its amount
   * back now if the alarm has not yet); a settled one answers its first answer again for the same request (`replayed`)
   * and is refused for another.
   */
  settle(input: SettleInput, now: number): SettleOutcome {
    const row = this.sql.exec<ReservationRow>("SELECT * FROM reservations WHERE id = ?", input.reservationId).toArray()[0];
    if (!row) return { refused: "reservation_not_found" };
    if (row.status === "expired") return { refused: "reservation_expired" };
    if (row.status !== "active") {
      const sameRequest = row.status === "released" ? input.action === "release" : input.action === "finalize" && row.actual === this.actualOf(row, input.actual);
      if (sameRequest && row.result !== null) return { ...(JSON.parse(row.result) as SettleOutcome), replayed: true };
      return {
        refused: "reservation_finalized",
        detail: row.status === "released" ? "it was released" : `it was finalized with ${row.actual ?? 0}`,
      };
    }
    if (now >= row.expires_at) {
      this.expire(row, now);
      return { refused: "reservation_expired" };
    }
    const actual = input.action === "release" ? 0 : this.actualOf(row, input.actual);
    if (Number.isNaN(actual)) return { refused: "fractional_units" };
    const outcome =
      row.kind === "units"
        ? this.settleUnits(row, actual, input, now)
        : this.settleCredits(row, actual, input.credits.find((credit) => credit.creditId === row.counter_id), input.timeZone || "UTC", now);
    const result = { ...outcome, reservation: { ...outcome.reservation, status: input.action === "release" ? ("released" as const) : ("finalized" as const) } };
    this.sql.exec(
      "UPDATE reservations SET status = ?, actual = ?, result = ?, settled_at = ? WHERE id = ?",
      result.reservation.status,
      actual,
      JSON.stringify(result),
      now,
      row.id,
    );
    return result;
  }

  /**
   * The alarm's part: every active reservation past its expiry gives its amount back; settled ones older than
   * SETTLED_RESERVATION_TTL_MS are dropped. Returns the earliest expiry still ahead (the alarm must ring by then) and
   * how many rows are kept (they need a later alarm to be pruned).
   */
  expireDue(now: number): { nextExpiry: number | undefined; kept: number } {
    for (const row of this.sql.exec<ReservationRow>("SELECT * FROM reservations WHERE status = 'active' AND expires_at <= ?", now).toArray()) this.expire(row, now);
    this.sql.exec("DELETE FROM reservations WHERE status <> 'active' AND settled_at < ?", now - SETTLED_RESERVATION_TTL_MS);
    const { next, kept } = this.sql
      .exec<{ next: number | null; kept: number }>("SELECT (SELECT MIN(expires_at) FROM reservations WHERE status = 'active') AS next, COUNT(*) AS kept FROM reservations")
      .one();
    return { nextExpiry: next ?? undefined, kept };
  }

  /** Units are whole (a fractional actual is refused); credits keep 6 decimals; anything below 0 counts as 0. */
  private actualOf(row: ReservationRow, actual: number | undefined): number {
    const value = Number.isFinite(actual) ? Math.max(0, actual!) : 0;
    if (row.kind === "credits") return money(value);
    return Number.isInteger(value) ? value : Number.NaN;
  }

  private settleUnits(row: ReservationRow, actual: number, input: SettleInput, now: number): { reservation: Omit<SettledReservation, "status">; counter: MeterReading } {
    // The counter as the plans set it now; the one it was reserved under if they no longer meter it.
    const setting: ReservedCounter = input.counters.find((counter) => counter.counterId === row.counter_id) ?? {
      counterId: row.counter_id,
      period: row.period as Period,
      limit: row.unit_limit,
      ...(row.overflow_limit === null ? {} : { overflowLimit: row.overflow_limit }),
    };
    const timeZone = input.timeZone || row.time_zone;
    const start = periodStart(setting.period, now, timeZone);
    const limit = unitLimit(setting.limit);
    const before = this.book.consumedIn(row.counter_id, start);
    let after = before;
    let refunded = 0;
    let taken = 0;
    let billed: number | undefined;
    const difference = actual - row.held;
    if (difference < 0) {
      // Held units belong to the period they were taken in: once it is over, its count is gone and so is the refund.
      if (start === row.period_start) after = before - Math.min(-difference, before);
      refunded = before - after;
    } else if (difference > 0) {
      taken = Math.min(difference, Math.max(0, limit - before));
      after = before + taken;
    }
    if (after !== before) this.book.writeCounter(row.counter_id, setting.period, timeZone, start, after);
    if (taken > 0) {
      if (setting.overflowLimit !== undefined) billed = this.book.billOverage(row.counter_id, start, before, after, setting.overflowLimit);
      else this.book.moveOverageMark(row.counter_id, start, after);
    } else if (setting.overflowLimit !== undefined) billed = 0;
    const uncovered = Math.max(0, difference - taken);
    // An overflow reservation took nothing up front: what it did not use was never taken, so it counts as refunded.
    if (row.held === 0) refunded = Math.max(0, row.amount - actual);
    return {
      reservation: { id: row.id, reserved: row.amount, actual, refunded, charged: Math.max(0, actual - row.amount - uncovered), uncovered },
      counter: unitsReading(row.counter_id, limit, start, after, {
        hasAccess: uncovered === 0,
        consumedUnitsInRequest: taken,
        excessUnitsInRequest: uncovered,
        ...(billed === undefined ? {} : { overageBilledUnits: billed }),
      }),
    };
  }

  private settleCredits(
    row: ReservationRow,
    actual: number,
    request: CreditRequest | undefined,
    timeZone: string,
    now: number,
  ): { reservation: Omit<SettledReservation, "status">; credit: CreditReading } {
    const creditId = row.counter_id;
    if (request?.grant) this.book.applyPeriodicGrant(creditId, request.grant, timeZone, now);
    const difference = money(actual - row.amount);
    let refunded = 0;
    let taken = 0;
    if (difference < 0) {
      refunded = this.giveBack(row, -difference, `reservation_refund:${row.id}`, now);
    } else if (difference > 0) {
      taken = Math.min(difference, this.book.getBalance(creditId));
      if (taken > 0) {
        this.book.changeBalance(creditId, -taken, `reservation_overage:${row.id}`, now);
        if (request?.grant) this.book.addSpent(creditId, periodStart(request.grant.period, now, timeZone), taken);
      }
    }
    const uncovered = money(Math.max(0, difference - taken));
    const balance = this.book.getBalance(creditId);
    return {
      reservation: { id: row.id, reserved: row.amount, actual, refunded, charged: taken, uncovered },
      credit: {
        creditId,
        hasAccess: uncovered === 0,
        balance,
        cost: actual,
        deductedInRequest: taken > 0,
        ...(uncovered > 0 ? { reason: "insufficient_credits" as const } : {}),
      },
    };
  }

  /** Gives an expired reservation's amount back (units only within their period) and marks it expired. */
  private expire(row: ReservationRow, now: number): void {
    if (row.kind === "credits") this.giveBack(row, row.amount, `reservation_expired:${row.id}`, now);
    else if (row.held > 0) {
      const consumed = this.book.consumedIn(row.counter_id, row.period_start);
      if (consumed > 0) this.book.writeCounter(row.counter_id, row.period as Period, row.time_zone, row.period_start, consumed - Math.min(row.held, consumed));
    }
    this.sql.exec("UPDATE reservations SET status = 'expired', settled_at = ? WHERE id = ?", now, row.id);
  }

  /**
   * Credits a reservation took that go back (a refund, a release, an expiry), as what they were: allowance of the
   * period they were reserved in. Within that period — or before the next period's first grant ran its carry-over —
   * they stop counting as spent, so the carry-over rule sees them as unused allowance. Once the next period's grant
   * has run, they come back only as far as the carry-over still has room (`carryOver` minus what was carried); the rest
   * has expired, as it would have had it never been reserved. Credits without a periodic grant always come back.
   */
  private giveBack(row: ReservationRow, amount: number, reason: string, now: number): number {
    const creditId = row.counter_id;
    if (row.period === "") {
      this.book.changeBalance(creditId, amount, reason, now);
      return amount;
    }
    // The latest period whose grant has run since: its carry-over already decided what of the reserved period expired.
    const latest = this.sql
      .exec<{ start: number | null }>("SELECT MAX(period_start) AS start FROM credit_allowances WHERE credit_id = ? AND period_start > ?", creditId, row.period_start)
      .one().start;
    if (latest === null) {
      this.book.addSpent(creditId, row.period_start, -amount);
      this.book.changeBalance(creditId, amount, reason, now);
      return amount;
    }
    if (row.carry_over === null) {
      this.book.changeBalance(creditId, amount, reason, now);
      return amount;
    }
    const carried = this.sql.exec<{ carried: number }>("SELECT carried FROM credit_carry WHERE credit_id = ? AND period_start = ?", creditId, latest).toArray()[0]?.carried ?? 0;
    const kept = money(Math.min(amount, Math.max(0, row.carry_over - carried)));
    if (kept > 0) {
      this.book.changeBalance(creditId, kept, reason, now);
      this.sql.exec(
        "INSERT INTO credit_carry (credit_id, period_start, carried, spent) VALUES (?, ?, ?, 0) ON CONFLICT (credit_id, period_start) DO UPDATE SET carried = round(carried + excluded.carried, 6)",
        creditId,
        latest,
        kept,
      );
    }
    return kept;
  }

  private insert(row: {
    id: string;
    kind: "units" | "credits";
    counterId: string;
    period: Period | "";
    timeZone: string;
    start: number;
    limit: number;
    overflowLimit: number | undefined;
    amount: number;
    held: number;
    expiresAt: number;
    carryOver?: number | undefined;
  }): void {
    this.sql.exec(
      `INSERT INTO reservations (id, kind, counter_id, period, time_zone, period_start, unit_limit, overflow_limit, amount, held, expires_at, status, carry_over)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?)`,
      row.id,
      row.kind,
      row.counterId,
      row.period,
      row.timeZone,
      row.start,
      row.limit,
      row.overflowLimit ?? null,
      row.amount,
      row.held,
      row.expiresAt,
      row.carryOver ?? null,
    );
  }
}

const view = (id: string, counterId: string, amount: number, expiresAt: number): ReservationView => ({ id, counterId, amount, expiresAt: new Date(expiresAt).toISOString() });

function unitsReading(
  counterId: string,
  limit: number,
  start: number,
  consumed: number,
  { hasAccess, ...request }: { hasAccess: boolean; consumedUnitsInRequest: number; excessUnitsInRequest: number; overageBilledUnits?: number },
): MeterReading {
  return {
    counterId,
    hasAccess,
    consumedUnits: consumed,
    remainingUnits: Math.max(0, limit - consumed),
    totalUnits: limit,
    periodStart: new Date(start).toISOString(),
    uniqueResources: false,
    resourceIdUsed: false,
    consumedInRequest: request.consumedUnitsInRequest > 0,
    ...request,
  };
}
