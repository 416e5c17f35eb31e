/**
 * One user's meters, credits, idempotency keys and custom data: one SQLite-backed Durable Object per
 * (organization, user data store, identifier). Every public method does its read-check-write without an `await`
 * in between, so the object's input gate makes each call atomic: no locks, no lost updates, no over-grant.
 * Storage layout: storage-schema.md.
 */
import { DurableObject } from "cloudflare:workers";
import type { Period } from "../../schema/config";
import type { MeterReading, MeterRequest } from "../../workers/engine/types";
import { periodStart } from "./periods";

export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
const PRUNE_INTERVAL_MS = 60 * 60 * 1000;

export interface EvaluateInput {
  counters: MeterRequest[];
  resourceId?: string;
  timeZone: string;
  now?: number;
  idempotencyKey?: string;
  /** Hash of the request body: a reused key with another body is a conflict. */
  requestHash?: string;
}

export type EvaluateResult = { readings: MeterReading[] } | { conflict: true };

export interface UpdateCounterInput {
  counterId: string;
  limit: number;
  period: Period;
  uniqueResources: boolean;
  timeZone: string;
  /** Integer, may be negative; default 1. */
  update?: number;
  resourceId?: string;
  now?: number;
  idempotencyKey?: string;
  requestHash?: string;
}

export type UpdateCounterResult = { reading: MeterReading } | { conflict: true };

export interface CounterExport {
  counterId: string;
  period: Period;
  timeZone: string;
  periodStart: number;
  consumed: number;
  resources: string[];
}

export interface StoredCounter {
  counterId: string;
  period: Period;
  timeZone: string;
  /** ISO-8601 start of the period the units belong to. */
  periodStart: string;
  consumedUnits: number;
  /** False when the stored period is over (the counter reads as 0 until it is next used). */
  current: boolean;
  uniqueResourceCount: number;
}

export type CreditResult = { ok: true; balance: number } | { ok: false; reason: "insufficient_credits"; balance: number } | { conflict: true };

interface CounterRow {
  counter_id: string;
  period: Period;
  time_zone: string;
  period_start: number;
  consumed: number;
  [key: string]: SqlStorageValue;
}

export class MeterObject extends DurableObject<Env> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`
      CREATE TABLE IF NOT EXISTS counters (counter_id TEXT PRIMARY KEY, period TEXT NOT NULL, time_zone TEXT NOT NULL,
        period_start INTEGER NOT NULL, consumed INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS resources (counter_id TEXT NOT NULL, period_start INTEGER NOT NULL, resource_id TEXT NOT NULL,
        PRIMARY KEY (counter_id, period_start, resource_id));
      CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, request_hash TEXT NOT NULL, result TEXT NOT NULL, created_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS credits (credit_id TEXT PRIMARY KEY, balance INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS credit_grants (credit_id TEXT NOT NULL, period_start INTEGER NOT NULL, PRIMARY KEY (credit_id, period_start));
      CREATE TABLE IF NOT EXISTS custom_data (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS links (link_key TEXT PRIMARY KEY, created_at INTEGER NOT NULL);
    `);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Meters

  /** Reads every counter and, for those with `consume`, consumes one unit each — all or nothing. */
  evaluate(input: EvaluateInput): EvaluateResult {
    const now = input.now ?? Date.now();
    return this.idempotent(input.idempotencyKey, input.requestHash, now, () => {
      const states = input.counters.map((counter) => {
        const start = periodStart(counter.period, now, input.timeZone);
        const consumed = this.consumedIn(counter.counterId, start);
        const seen = counter.uniqueResources && input.resourceId !== undefined && this.resourceSeen(counter.counterId, start, input.resourceId);
        return { counter, start, consumed, seen, needsUnit: counter.consume && !seen };
      });
      const granted = states.every((state) => !state.needsUnit || state.consumed < state.counter.limit);
      const readings = states.map((state): MeterReading => {
        const consumedNow = granted && state.needsUnit;
        if (consumedNow) this.addUnits(state.counter, input.timeZone, state.start, 1, state.consumed, input.resourceId);
        const consumed = state.consumed + (consumedNow ? 1 : 0);
        const limit = state.counter.limit;
        return {
          counterId: state.counter.counterId,
          hasAccess: state.counter.consume ? consumedNow || state.seen : state.seen || consumed < limit,
          consumedUnits: consumed,
          remainingUnits: Math.max(0, limit - consumed),
          totalUnits: limit,
          periodStart: new Date(state.start).toISOString(),
          uniqueResources: state.counter.uniqueResources,
          resourceIdUsed: state.seen,
          consumedInRequest: consumedNow,
          consumedUnitsInRequest: consumedNow ? 1 : 0,
          excessUnitsInRequest: state.needsUnit && !consumedNow ? 1 : 0,
        };
      });
      return { readings };
    });
  }

  /** `POST /api/v1/counter-updates`: adds `update` units (negative to give back), never below zero. */
  updateCounter(input: UpdateCounterInput): UpdateCounterResult {
    const now = input.now ?? Date.now();
    return this.idempotent(input.idempotencyKey, input.requestHash, now, () => {
      const update = input.update ?? 1;
      const start = periodStart(input.period, now, input.timeZone);
      const before = this.consumedIn(input.counterId, start);
      const seen = input.uniqueResources && input.resourceId !== undefined && this.resourceSeen(input.counterId, start, input.resourceId);
      // Under a unique-resources meter a resource counts once: a repeated positive update for it changes nothing.
      const delta = update > 0 && seen ? 0 : Math.max(-before, update);
      const counter = { counterId: input.counterId, period: input.period, limit: input.limit, uniqueResources: input.uniqueResources };
      if (delta !== 0 || (update > 0 && input.resourceId !== undefined)) {
        this.addUnits(counter, input.timeZone, start, delta, before, update > 0 ? input.resourceId : undefined);
      }
      const consumed = before + delta;
      return {
        reading: {
          counterId: input.counterId,
          hasAccess: consumed < input.limit,
          consumedUnits: consumed,
          remainingUnits: Math.max(0, input.limit - consumed),
          totalUnits: input.limit,
          periodStart: new Date(start).toISOString(),
          uniqueResources: input.uniqueResources,
          resourceIdUsed: seen,
          consumedInRequest: delta > 0,
          consumedUnitsInRequest: Math.max(0, delta),
          excessUnitsInRequest: Math.max(0, consumed - input.limit),
        },
      };
    });
  }

  /** Every stored counter, for the admin API. */
  readCounters(now = Date.now()): StoredCounter[] {
    const rows = this.sql.exec<CounterRow>("SELECT * FROM counters ORDER BY counter_id").toArray();
    return rows.map((row) => {
      const current = periodStart(row.period, now, row.time_zone) === row.period_start;
      return {
        counterId: row.counter_id,
        period: row.period,
        timeZone: row.time_zone,
        periodStart: new Date(row.period_start).toISOString(),
        consumedUnits: current ? row.consumed : 0,
        current,
        uniqueResourceCount: this.sql
          .exec<{ n: number }>("SELECT COUNT(*) AS n FROM resources WHERE counter_id = ? AND period_start = ?", row.counter_id, row.period_start)
          .one().n,
      };
    });
  }

  resetCounter(counterId: string): boolean {
    const existed = this.sql.exec("SELECT 1 FROM counters WHERE counter_id = ?", counterId).toArray().length > 0;
    this.sql.exec("DELETE FROM counters WHERE counter_id = ?", counterId);
    this.sql.exec("DELETE FROM resources WHERE counter_id = ?", counterId);
    return existed;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Linked identities (copy_once)

  /** The current-period counters of this identity, for carrying them over to another one. */
  exportCounters(now = Date.now()): CounterExport[] {
    const rows = this.sql.exec<CounterRow>("SELECT * FROM counters").toArray();
    return rows
      .filter((row) => periodStart(row.period, now, row.time_zone) === row.period_start && row.consumed > 0)
      .map((row) => ({
        counterId: row.counter_id,
        period: row.period,
        timeZone: row.time_zone,
        periodStart: row.period_start,
        consumed: row.consumed,
        resources: this.sql
          .exec<{ resource_id: string }>("SELECT resource_id FROM resources WHERE counter_id = ? AND period_start = ?", row.counter_id, row.period_start)
          .toArray()
          .map((resource) => resource.resource_id),
      }));
  }

  /** Adds another identity's counters once per `linkKey`; a second call with the same key changes nothing. */
  importOnce(linkKey: string, counters: CounterExport[], now = Date.now()): { linked: boolean; counters: number } {
    if (this.sql.exec("SELECT 1 FROM links WHERE link_key = ?", linkKey).toArray().length > 0) return { linked: false, counters: 0 };
    let imported = 0;
    for (const counter of counters) {
      const start = periodStart(counter.period, now, counter.timeZone);
      if (start !== counter.periodStart) continue;
      const before = this.consumedIn(counter.counterId, start);
      let added = 0;
      for (const resource of counter.resources) {
        if (!this.resourceSeen(counter.counterId, start, resource)) {
          this.sql.exec("INSERT INTO resources (counter_id, period_start, resource_id) VALUES (?, ?, ?)", counter.counterId, start, resource);
          added++;
        }
      }
      // Units of resources both identities saw are counted once; units without resources add up.
      const units = counter.resources.length > 0 ? added + Math.max(0, counter.consumed - counter.resources.length) : counter.consumed;
      this.writeCounter(counter.counterId, counter.period, counter.timeZone, start, before + units);
      imported++;
    }
    this.sql.exec("INSERT INTO links (link_key, created_at) VALUES (?, ?)", linkKey, now);
    this.schedulePrune(now);
    return { linked: true, counters: imported };
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Credits

  getBalance(creditId: string): number {
    return this.sql.exec<{ balance: number }>("SELECT balance FROM credits WHERE credit_id = ?", creditId).toArray()[0]?.balance ?? 0;
  }

  grantCredits(input: { creditId: string; amount: number; idempotencyKey?: string; requestHash?: string; now?: number }): CreditResult {
    const now = input.now ?? Date.now();
    return this.idempotent(input.idempotencyKey, input.requestHash, now, () => {
      const balance = Math.max(0, this.getBalance(input.creditId) + Math.trunc(input.amount));
      this.sql.exec("INSERT INTO credits (credit_id, balance) VALUES (?, ?) ON CONFLICT (credit_id) DO UPDATE SET balance = excluded.balance", input.creditId, balance);
      return { ok: true, balance } as const;
    });
  }

  /** Deducts `cost` if the balance covers it; never below zero. */
  deductCredits(input: { creditId: string; cost: number; idempotencyKey?: string; requestHash?: string; now?: number }): CreditResult {
    const now = input.now ?? Date.now();
    return this.idempotent(input.idempotencyKey, input.requestHash, now, () => {
      const balance = this.getBalance(input.creditId);
      const cost = Math.max(0, Math.trunc(input.cost));
      if (balance < cost) return { ok: false, reason: "insufficient_credits", balance } as const;
      this.sql.exec("INSERT INTO credits (credit_id, balance) VALUES (?, ?) ON CONFLICT (credit_id) DO UPDATE SET balance = excluded.balance", input.creditId, balance - cost);
      return { ok: true, balance: balance - cost } as const;
    });
  }

  /** A plan's periodic allowance: tops the balance up by `amount` once per period. */
  ensurePeriodicGrant(input: { creditId: string; amount: number; period: Period; timeZone: string; now?: number }): { granted: boolean; balance: number } {
    const now = input.now ?? Date.now();
    const start = periodStart(input.period, now, input.timeZone);
    if (this.sql.exec("SELECT 1 FROM credit_grants WHERE credit_id = ? AND period_start = ?", input.creditId, start).toArray().length > 0) {
      return { granted: false, balance: this.getBalance(input.creditId) };
    }
    this.sql.exec("INSERT INTO credit_grants (credit_id, period_start) VALUES (?, ?)", input.creditId, start);
    const balance = this.getBalance(input.creditId) + Math.max(0, Math.trunc(input.amount));
    this.sql.exec("INSERT INTO credits (credit_id, balance) VALUES (?, ?) ON CONFLICT (credit_id) DO UPDATE SET balance = excluded.balance", input.creditId, balance);
    return { granted: true, balance };
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Custom data (workflow utils)

  customDataGet(key: string): unknown {
    const row = this.sql.exec<{ value: string }>("SELECT value FROM custom_data WHERE key = ?", key).toArray()[0];
    return row ? JSON.parse(row.value) : null;
  }

  customDataSet(key: string, value: unknown): void {
    this.sql.exec("INSERT INTO custom_data (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", key, JSON.stringify(value ?? null));
  }

  customDataDelete(key: string): boolean {
    const existed = this.sql.exec("SELECT 1 FROM custom_data WHERE key = ?", key).toArray().length > 0;
    this.sql.exec("DELETE FROM custom_data WHERE key = ?", key);
    return existed;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Housekeeping

  /** Drops finished periods, their resources, and idempotency keys older than 24 h. Stale rows are never read. */
  override async alarm(): Promise<void> {
    this.prune(Date.now());
  }

  prune(now: number): { counters: number; resources: number; idempotencyKeys: number } {
    let counters = 0;
    for (const row of this.sql.exec<CounterRow>("SELECT * FROM counters").toArray()) {
      if (periodStart(row.period, now, row.time_zone) !== row.period_start) {
        this.sql.exec("DELETE FROM counters WHERE counter_id = ?", row.counter_id);
        counters++;
      }
    }
    const resources = this.sql.exec(
      "DELETE FROM resources WHERE NOT EXISTS (SELECT 1 FROM counters c WHERE c.counter_id = resources.counter_id AND c.period_start = resources.period_start)",
    ).rowsWritten;
    const idempotencyKeys = this.sql.exec("DELETE FROM idempotency WHERE created_at < ?", now - IDEMPOTENCY_TTL_MS).rowsWritten;
    const remaining =
      this.sql.exec<{ n: number }>("SELECT (SELECT COUNT(*) FROM counters) + (SELECT COUNT(*) FROM idempotency) AS n").one().n;
    if (remaining > 0) void this.ctx.storage.setAlarm(now + PRUNE_INTERVAL_MS);
    return { counters, resources, idempotencyKeys };
  }

  private schedulePrune(now: number): void {
    // getAlarm/setAlarm are cheap but async; they do not break atomicity because nothing after them reads state.
    void this.ctx.storage.getAlarm().then((alarm) => {
      if (alarm === null) return this.ctx.storage.setAlarm(now + PRUNE_INTERVAL_MS);
    });
  }

  private consumedIn(counterId: string, start: number): number {
    const row = this.sql.exec<{ period_start: number; consumed: number }>("SELECT period_start, consumed FROM counters WHERE counter_id = ?", counterId).toArray()[0];
    return row && row.period_start === start ? row.consumed : 0;
  }

  private resourceSeen(counterId: string, start: number, resourceId: string): boolean {
    return this.sql.exec("SELECT 1 FROM resources WHERE counter_id = ? AND period_start = ? AND resource_id = ?", counterId, start, resourceId).toArray().length > 0;
  }

  private writeCounter(counterId: string, period: Period, timeZone: string, start: number, consumed: number): void {
    this.sql.exec(
      `INSERT INTO counters (counter_id, period, time_zone, period_start, consumed) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (counter_id) DO UPDATE SET period = excluded.period, time_zone = excluded.time_zone,
         period_start = excluded.period_start, consumed = excluded.consumed`,
      counterId,
      period,
      timeZone,
      start,
      consumed,
    );
  }

  private addUnits(
    counter: Pick<MeterRequest, "counterId" | "period" | "uniqueResources">,
    timeZone: string,
    start: number,
    units: number,
    before: number,
    resourceId: string | undefined,
  ): void {
    this.writeCounter(counter.counterId, counter.period, timeZone, start, Math.max(0, before + units));
    if (counter.uniqueResources && resourceId !== undefined) {
      this.sql.exec("INSERT OR IGNORE INTO resources (counter_id, period_start, resource_id) VALUES (?, ?, ?)", counter.counterId, start, resourceId);
    }
    this.schedulePrune(Date.now());
  }

  /**
   * Runs `effect` once per idempotency key: the result is stored in the same synchronous step as the effect, so a
   * retry (even a concurrent one) returns the first result and changes nothing; another body under the same key is
   * a conflict.
   */
  private idempotent<T extends object>(key: string | undefined, requestHash: string | undefined, now: number, effect: () => T): T | { conflict: true } {
    if (key === undefined) return effect();
    const hash = requestHash ?? "";
    const stored = this.sql
      .exec<{ request_hash: string; result: string; created_at: number }>("SELECT request_hash, result, created_at FROM idempotency WHERE key = ?", key)
      .toArray()[0];
    if (stored && stored.created_at >= now - IDEMPOTENCY_TTL_MS) {
      return stored.request_hash === hash ? (JSON.parse(stored.result) as T) : { conflict: true };
    }
    const result = effect();
    this.sql.exec(
      "INSERT INTO idempotency (key, request_hash, result, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET request_hash = excluded.request_hash, result = excluded.result, created_at = excluded.created_at",
      key,
      hash,
      JSON.stringify(result),
      now,
    );
    this.schedulePrune(now);
    return result;
  }
}
