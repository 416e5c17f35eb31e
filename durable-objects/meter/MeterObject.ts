/**
 * One user's meters, credits, idempotency keys and custom data: one SQLite-backed Durable Object per
 * (organization, user data store, identifier).
 *
 * Atomicity: every public method does its whole read-check-write synchronously (no `await` between reading and
 * writing). A Durable Object runs one event at a time and synchronous SQL cannot yield, so each call is atomic without
 * locks: no lost updates, no over-grant, and an idempotency record is written in the same step as the effect it
 * records. Storage layout and pruning: storage-schema.md.
 */
import { createHash } from "node:crypto";
import { DurableObject } from "cloudflare:workers";
import type { Period } from "../../schema/config";
import type { CreditReading, CreditRequest, MeterReading, MeterRequest } from "../../workers/engine/types";
import {
  AGENT_SCHEMA,
  AGENT_SCHEMA_OBJECTS,
  beginX402Settlement,
  claimNonce,
  completeX402Settlement,
  pruneAgentRows,
  readAgentLedger,
  recordAgentCharge,
  storePendingPayment,
  type AgentCharge,
  type AgentLedger,
  type AuthorizedX402Payment,
  type BeginX402Settlement,
  type PendingX402Payment,
  type SettledX402Payment,
} from "./agentLedger";
import { periodStart } from "./periods";
import { RESERVATIONS_SCHEMA, RESERVATIONS_SCHEMA_OBJECTS, Reservations, type ReserveInput, type ReserveOutcome, type SettleInput, type SettleOutcome } from "./reservations";

export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
export const PRUNE_INTERVAL_MS = 60 * 60 * 1000;
export const CREDIT_LEDGER_TTL_MS = 90 * 24 * 60 * 60 * 1000;

// ---------------------------------------------------------------------------------------------------------------
// RPC types

// CreditRequest / CreditReading are the engine's (workers/engine/types.ts): one definition for both sides of the call.
export type { CreditReading, CreditRequest };

/** One write of MeterObject.customDataApply: set `value`, or delete the key. */
export type CustomDataWrite = { key: string; delete?: false; value: unknown } | { key: string; delete: true };

/**
 * What a write set was decided on: the value `key` held when it was read, as the SHA-256 (hex) of its JSON text —
 * `null` for a key without a value, as `customDataGet` answers. A digest rather than the value, so what a workflow
 * read costs a few bytes on the way back however large it was.
 */
export interface CustomDataExpectation {
  key: string;
  sha256: string;
}

/**
 * `conflict`: the key whose value is no longer the one read; nothing was written. `replayed`: the apply id was
 * applied before (its writes stand); nothing was written this time.
 */
export type CustomDataApplyResult = { applied: true; replayed?: true } | { applied: false; conflict: string };

/** The digest a CustomDataExpectation carries for a value (JSON text; `null` when there is none). */
const customDataDigest = (json: string): string => createHash("sha256").update(json, "utf8").digest("hex");

export interface EvaluateInput {
  counters: MeterRequest[];
  /** The plans the user holds in this decision: remembered, and a change reported (`plansChanged`). */
  plans?: string[];
  credits?: CreditRequest[];
  resourceId?: string;
  /** IANA zone of the organization; "UTC" when unset. */
  timeZone: string;
  /** Injected clock (ms); defaults to Date.now(). */
  now?: number;
  idempotencyKey?: string;
  /** Hash of the request body: a reused key with another body is a conflict. */
  requestHash?: string;
  /** A priced request paid for (pay-per-crawl, x402): appended to the ledger in the same step (agentLedger.ts). */
  agentCharge?: AgentCharge;
  /** An x402 `upto` authorization the decision accepted: stored as a pending payment in the same step (agentLedger.ts). */
  x402Payment?: PendingX402Payment;
}

export interface IdempotencyConflict {
  conflict: true;
}

/**
 * On a result of a keyed call (`evaluate`, `updateCounter`, `grantCredits`): `replayed: true` when the
 * key was already known and the stored first result is returned (nothing was changed); absent on the call that ran
 * the effect. Added on the way out, never stored, so the other fields of a replay equal the first result's.
 */
export interface Replayable {
  replayed?: true;
}

export type EvaluateResult =
  | ({
      readings: MeterReading[];
      credits?: CreditReading[];
      /** This call stored the first state this user ever had (their object was empty): the `user.added` trigger. */
      userAdded?: boolean;
      /** `plans` differed from the ones this user held last time (`from` is null the first time): `plans.changed`. */
      plansChanged?: { from: string[] | null; to: string[] };
      /** The `agentCharge` was recorded (false: a charge with its id already was, so nothing was charged again). */
      agentCharged?: boolean;
      /** The `x402Payment` was stored under this id (null: this identity already holds that authorization). */
      x402Authorized?: AuthorizedX402Payment | null;
    } & Replayable)
  | IdempotencyConflict;

export interface UpdateCounterInput {
  counterId: string;
  period: Period;
  timeZone: string;
  /** Integer, may be negative; default 1. The counter never goes below 0. */
  update?: number;
  /** Only used for the reading's `totalUnits`/`remainingUnits`/`hasAccess`; an update is never refused. */
  limit?: number;
  /** An overflow setting's limit (MeterRequest.overflowLimit): units past it not yet billed are billed (`overageBilledUnits`). */
  overflowLimit?: number;
  uniqueResources?: boolean;
  resourceId?: string;
  now?: number;
  idempotencyKey?: string;
  requestHash?: string;
}

export type UpdateCounterResult = ({ reading: MeterReading } & Replayable) | IdempotencyConflict;

export interface ReadCountersInput {
  /** Zone for period boundaries; defaults to the zone each counter was last written with. */
  timeZone?: string;
  now?: number;
  /** Read exactly these (also when never written: 0); default: every stored counter. */
  counters?: { counterId: string; period: Period }[];
}

export interface StoredCounter {
  counterId: string;
  period: Period;
  timeZone: string;
  /** ISO-8601 start of the current period. */
  periodStart: string;
  /** Units of the current period (0 when the stored period is over). */
  consumedUnits: number;
  /** Resources counted this period (unique-resources meters). */
  uniqueResourceCount: number;
}

export interface CounterExport {
  counterId: string;
  period: Period;
  timeZone: string;
  /** Start (ms) of the period the units belong to. */
  periodStart: number;
  consumed: number;
  resources: string[];
}

export type CreditResult =
  | ({ ok: true; balance: number } & Replayable)
  | ({ ok: false; reason: "insufficient_credits"; balance: number } & Replayable)
  | IdempotencyConflict;

export interface GrantCreditsInput {
  creditId: string;
  /** May be negative (a correction); the balance never goes below 0. */
  amount: number;
  reason?: string;
  idempotencyKey?: string;
  requestHash?: string;
  now?: number;
}

// ---------------------------------------------------------------------------------------------------------------

interface CounterRow {
  counter_id: string;
  period: Period;
  time_zone: string;
  period_start: number;
  consumed: number;
  [key: string]: SqlStorageValue;
}

/**
 * The core: the counters, the one table every metered identity writes. WITHOUT ROWID, so a counter's first write is
 * one row, not a row and its key's index (objects created before this keep their rowid table; the statements are the
 * same for both).
 */
const SCHEMA = `
  CREATE TABLE IF NOT EXISTS counters (
    counter_id TEXT PRIMARY KEY, period TEXT NOT NULL, time_zone TEXT NOT NULL,
    period_start INTEGER NOT NULL, consumed INTEGER NOT NULL) WITHOUT ROWID;
`;

/** The tables and index SCHEMA creates: when all are in `sqlite_master` the DDL is skipped. */
const SCHEMA_OBJECTS = ["counters"];

const RESOURCES_SCHEMA = `
  CREATE TABLE IF NOT EXISTS resources (
    counter_id TEXT NOT NULL, period_start INTEGER NOT NULL, resource_id TEXT NOT NULL,
    PRIMARY KEY (counter_id, period_start, resource_id)) WITHOUT ROWID;
`;
const OVERAGE_SCHEMA = `
  CREATE TABLE IF NOT EXISTS overage_billed (
    counter_id TEXT NOT NULL, period_start INTEGER NOT NULL, billed_through INTEGER NOT NULL,
    PRIMARY KEY (counter_id, period_start)) WITHOUT ROWID;
`;
const IDEMPOTENCY_SCHEMA = `
  CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY, request_hash TEXT NOT NULL, result TEXT NOT NULL, created_at INTEGER NOT NULL);
  CREATE INDEX IF NOT EXISTS idempotency_created_at ON idempotency (created_at);
`;

const CREDITS_SCHEMA = `
  CREATE TABLE IF NOT EXISTS credits (credit_id TEXT PRIMARY KEY, balance REAL NOT NULL);
  CREATE TABLE IF NOT EXISTS credit_allowances (
    credit_id TEXT NOT NULL, period_start INTEGER NOT NULL, amount REAL NOT NULL,
    PRIMARY KEY (credit_id, period_start)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS credit_carry (
    credit_id TEXT NOT NULL, period_start INTEGER NOT NULL, carried REAL NOT NULL, spent REAL NOT NULL,
    PRIMARY KEY (credit_id, period_start)) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS credit_ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT, credit_id TEXT NOT NULL, delta REAL NOT NULL, balance REAL NOT NULL,
    reason TEXT NOT NULL, created_at INTEGER NOT NULL);
`;

/**
 * Tables only some objects ever need — unique resources, overage marks, idempotency keys, credit balances, workflows'
 * custom data, identity links, the remembered plan set, an agent operator's nonces, charges and pending payments,
 * reservations — are created on their first use, apart from SCHEMA: each table or index created is rows written
 * (billed), and most objects (a visitor's) use none of them. A group is created before the transaction of the call
 * that first writes it (the public methods know from their input which groups a write may need).
 */
const TABLE_GROUPS = {
  resources: { ddl: RESOURCES_SCHEMA, objects: ["resources"] },
  overage: { ddl: OVERAGE_SCHEMA, objects: ["overage_billed"] },
  idempotency: { ddl: IDEMPOTENCY_SCHEMA, objects: ["idempotency", "idempotency_created_at"] },
  credits: { ddl: CREDITS_SCHEMA, objects: ["credits", "credit_allowances", "credit_carry", "credit_ledger"] },
  custom: { ddl: "CREATE TABLE IF NOT EXISTS custom_data (key TEXT PRIMARY KEY, value TEXT NOT NULL);", objects: ["custom_data"] },
  links: { ddl: "CREATE TABLE IF NOT EXISTS links (link_key TEXT PRIMARY KEY, created_at INTEGER NOT NULL);", objects: ["links"] },
  profile: { ddl: "CREATE TABLE IF NOT EXISTS profile (key TEXT PRIMARY KEY, value TEXT NOT NULL);", objects: ["profile"] },
  agents: { ddl: AGENT_SCHEMA, objects: AGENT_SCHEMA_OBJECTS },
  reservations: { ddl: RESERVATIONS_SCHEMA, objects: RESERVATIONS_SCHEMA_OBJECTS },
} as const;
type TableGroup = keyof typeof TABLE_GROUPS;

const ALL_OBJECTS = [...SCHEMA_OBJECTS, ...Object.values(TABLE_GROUPS).flatMap((group) => group.objects)];
const SCHEMA_CHECK = `SELECT name FROM sqlite_master WHERE name IN (${ALL_OBJECTS.map((name) => `'${name}'`).join(", ")})`;

/** The same counter twice in one request is one counter (consumed once if either entry consumes). */
function mergedCounters(counters: readonly MeterRequest[]): MeterRequest[] {
  const byId = new Map<string, MeterRequest>();
  for (const counter of counters) {
    const known = byId.get(counter.counterId);
    byId.set(counter.counterId, known ? { ...known, consume: known.consume || counter.consume } : counter);
  }
  return [...byId.values()];
}

/** Credits may be fractional (cost multipliers); keep them to 6 decimals so sums do not drift. */
const money = (value: number): number => Math.round(value * 1e6) / 1e6;

/**
 * Inputs are validated by the routes; the object still never throws on a bad number (a throw would surface as an
 * error instead of a decision). A cost that is not a number can never be covered (fail closed); a negative one is 0.
 */
function costOf(value: number): number {
  if (Number.isNaN(value)) return Infinity;
  return value < 0 ? 0 : money(value);
}

/** Grants: anything but a finite number grants nothing. */
function amountOf(value: number): number {
  return Number.isFinite(value) ? money(value) : 0;
}

function limitOf(limit: number | undefined): number {
  if (limit === undefined || Number.isNaN(limit)) return Number.MAX_SAFE_INTEGER;
  return Math.max(0, Math.min(Number.MAX_SAFE_INTEGER, Math.floor(limit)));
}

export class MeterObject extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  /** Whether any overage mark exists (looked up once, then kept; undefined until a consumption needs to know). */
  private hasOverageMarks: boolean | undefined;
  /** An alarm is known to be set (in memory; re-checked after eviction). */
  private pruneScheduled = false;
  /**
   * The core tables exist (set by readSchema). False only for an object that has never written anything (no table of ours in
   * `sqlite_master`): its reads are empty without touching SQL, and the DDL runs right before its first write, in the
   * same synchronous section, so creating a new object costs one storage commit instead of two (and a read-only
   * call on a new identifier costs none).
   */
  private schemaReady = false;
  /** The table groups (TABLE_GROUPS) this object has created: a group it never used reads as empty. */
  private readonly groups = new Set<TableGroup>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.readSchema();
  }

  /**
   * Sets the flags from what storage holds (one `sqlite_master` read). The core or a group found with some of its
   * tables but not all (an object from an older schema, a DDL cut short) is completed at once, so no read ever sees
   * a partial schema.
   */
  private readSchema(): void {
    const present = new Set(this.sql.exec<{ name: string }>(SCHEMA_CHECK).toArray().map((row) => row.name));
    const created = (objects: readonly string[], ddl: string): boolean => {
      const count = objects.filter((name) => present.has(name)).length;
      if (count > 0 && count < objects.length) this.sql.exec(ddl);
      return count > 0;
    };
    this.schemaReady = created(SCHEMA_OBJECTS, SCHEMA);
    // Re-read with the groups: a mark seen before a rollback may be gone with its table.
    this.hasOverageMarks = undefined;
    this.groups.clear();
    for (const [name, group] of Object.entries(TABLE_GROUPS) as [TableGroup, (typeof TABLE_GROUPS)[TableGroup]][]) {
      if (created(group.objects, group.ddl)) this.groups.add(name);
    }
  }

  /** Creates a table group (and the core tables) before its first write; never inside a transaction. */
  private ensureGroup(group: TableGroup): void {
    this.ensureSchema();
    if (this.groups.has(group)) return;
    this.sql.exec(TABLE_GROUPS[group].ddl);
    this.groups.add(group);
  }

  /**
   * A write's own check that its group exists. The public methods create the groups a call may write before its
   * transaction; this only catches a path that did not. Created inside a transaction that then rolls back, the group
   * is marked but absent until readSchema runs again (after a throw in evaluate, or on wake), so it must stay a guard.
   */
  private requireGroup(group: TableGroup): void {
    if (this.groups.has(group)) return;
    console.warn(JSON.stringify({ event: "meter_table_group_late", group }));
    this.ensureGroup(group);
  }

  /** Remembers the plan set the user holds; returns the change when it differs from the last one seen. */
  private recordPlans(plans: string[]): { from: string[] | null; to: string[] } | undefined {
    const to = [...new Set(plans)].sort();
    const stored = this.groups.has("profile") ? this.sql.exec<{ value: string }>("SELECT value FROM profile WHERE key = 'plans'").toArray()[0] : undefined;
    const from = stored ? (JSON.parse(stored.value) as string[]) : null;
    if (from && from.length === to.length && from.every((slug, index) => slug === to[index])) return undefined;
    this.ensureGroup("profile");
    this.sql.exec("INSERT INTO profile (key, value) VALUES ('plans', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", JSON.stringify(to));
    return { from, to };
  }

  /**
   * A payment changed which plans the user's purchases link (webhooks, outside any decision): the remembered plan set
   * loses `remove` and gains `add`, so the next decision does not report the same change again. Null when the user
   * has no remembered plan set (no decision tracked it yet): nothing is stored, and the first decision stays the
   * user's first state (`user.added`).
   */
  replaceLinkedPlans(change: { remove: string[]; add: string[] }): { from: string[]; to: string[] } | null {
    if (!this.groups.has("profile")) return null;
    const stored = this.sql.exec<{ value: string }>("SELECT value FROM profile WHERE key = 'plans'").toArray()[0];
    if (!stored) return null;
    const from = JSON.parse(stored.value) as string[];
    const removed = new Set(change.remove);
    const to = [...new Set([...from.filter((slug) => !removed.has(slug)), ...change.add])].sort();
    if (to.length !== from.length || to.some((slug, index) => slug !== from[index])) {
      this.sql.exec("UPDATE profile SET value = ? WHERE key = 'plans'", JSON.stringify(to));
    }
    return { from, to };
  }

  /** Creates the tables if this object has none yet. Call before any SQL that needs them (never inside a transaction). */
  private ensureSchema(): void {
    if (this.schemaReady) return;
    this.sql.exec(SCHEMA);
    this.schemaReady = true;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Meters

  /**
   * The one call of a decision: reads every counter (and credit balance) and, for those with `consume`, consumes one
   * unit each (and deducts each cost) — all or nothing: if any of them has no room, none is consumed.
   */
  evaluate(input: EvaluateInput): EvaluateResult {
    const now = input.now ?? Date.now();
    const timeZone = input.timeZone || "UTC";
    // An object without tables has never stored anything: the call that first writes is this user's first state.
    const wasEmpty = !this.schemaReady;
    try {
      // Keyed calls and periodic credit grants always write: one transaction around everything.
      // Marked inside the idempotent effect, so a retry returns exactly the first result (flags included), plus
      // `replayed: true`: the caller must not act on the flags again (its triggers were enqueued the first time).
      const marked = (result: EvaluateResult): EvaluateResult => {
        if ("conflict" in result) return result;
        const plansChanged = input.plans ? this.recordPlans(input.plans) : undefined;
        let out: EvaluateResult = plansChanged ? { ...result, plansChanged } : result;
        if (input.agentCharge) {
          out = { ...out, agentCharged: recordAgentCharge(this.sql, input.agentCharge, now) };
          this.schedulePrune();
        }
        if (input.x402Payment) {
          out = { ...out, x402Authorized: storePendingPayment(this.sql, input.x402Payment, now) };
          this.schedulePrune();
        }
        if (wasEmpty && this.schemaReady) out = { ...out, userAdded: true };
        return out;
      };
      if (input.agentCharge !== undefined || input.x402Payment !== undefined) this.ensureGroup("agents");
      // Tables a write of this call may need, created before any transaction opens (a read creates none).
      if (input.plans) this.ensureGroup("profile");
      if (input.idempotencyKey !== undefined || input.agentCharge !== undefined || input.x402Payment !== undefined || input.credits?.some((credit) => credit.grant !== undefined)) {
        // These calls always write (their key, charge or grant), inside the transaction `idempotent` opens: the groups
        // a consumption may write are created before it, whether or not the consumption is then granted.
        this.ensureConsumptionGroups(mergedCounters(input.counters).filter((counter) => counter.consume), input.resourceId, input.credits ?? []);
        return this.idempotent("evaluate", input.idempotencyKey, input.requestHash, now, () => marked(this.evaluateIn(input, now, timeZone, true)));
      }
      return marked(this.evaluateIn(input, now, timeZone, false));
    } catch (error) {
      // After a throw the flags follow what storage really holds (never "no tables" while tables exist).
      this.readSchema();
      throw error;
    }
  }

  /**
   * Reads, decides, then writes. `inTransaction`: the caller already runs this inside `transactionSync`. Otherwise the
   * reads run without a transaction and only a call that writes (something granted) opens one around its writes: a
   * pure read or a refusal writes nothing, so it needs no transaction and causes no storage commit. Everything stays
   * in one synchronous section, so the check and the write cannot interleave with another call either way.
   */
  private evaluateIn(input: EvaluateInput, now: number, timeZone: string, inTransaction: boolean): EvaluateResult {
    const resourceId = input.resourceId;
    const states = mergedCounters(input.counters).map((counter) => {
      const limit = limitOf(counter.limit);
      const start = periodStart(counter.period, now, timeZone);
      const consumed = this.consumedIn(counter.counterId, start);
      const seen = counter.uniqueResources && resourceId !== undefined && this.resourceSeen(counter.counterId, start, resourceId);
      return { counter, limit, start, consumed, seen, needsUnit: counter.consume && !seen };
    });

    const creditStates = (input.credits ?? []).map((credit) => {
      if (credit.grant) this.applyPeriodicGrant(credit.creditId, credit.grant, timeZone, now);
      const cost = costOf(credit.cost);
      return { credit, cost, balance: this.getBalance(credit.creditId) };
    });
    // Two entries for one balance must be covered together.
    const wanted = new Map<string, number>();
    for (const state of creditStates) if (state.credit.consume) wanted.set(state.credit.creditId, money((wanted.get(state.credit.creditId) ?? 0) + state.cost));

    const granted =
      states.every((state) => !state.needsUnit || state.consumed < state.limit) &&
      creditStates.every((state) => !state.credit.consume || state.balance >= (wanted.get(state.credit.creditId) ?? 0));
    const writes = granted && (states.some((state) => state.needsUnit) || creditStates.some((state) => state.credit.consume && state.cost > 0));

    const finish = (): EvaluateResult => {
      const readings = states.map((state): MeterReading => {
        const consumedNow = granted && state.needsUnit;
        if (consumedNow) {
          this.writeCounter(state.counter.counterId, state.counter.period, timeZone, state.start, state.consumed + 1);
          if (state.counter.uniqueResources && resourceId !== undefined) this.addResource(state.counter.counterId, state.start, resourceId);
        }
        const consumed = state.consumed + (consumedNow ? 1 : 0);
        const overflowLimit = state.counter.overflowLimit;
        // A consumption is always a write, so this runs inside the transaction that consumes.
        const billed = overflowLimit === undefined ? undefined : consumedNow ? this.billOverage(state.counter.counterId, state.start, state.consumed, consumed, overflowLimit) : 0;
        if (overflowLimit === undefined && consumedNow) this.moveOverageMark(state.counter.counterId, state.start, consumed);
        return {
          counterId: state.counter.counterId,
          hasAccess: state.counter.consume ? consumedNow || state.seen : state.seen || consumed < state.limit,
          consumedUnits: consumed,
          remainingUnits: Math.max(0, state.limit - consumed),
          totalUnits: state.limit,
          periodStart: new Date(state.start).toISOString(),
          uniqueResources: state.counter.uniqueResources,
          resourceIdUsed: state.seen,
          consumedInRequest: consumedNow,
          consumedUnitsInRequest: consumedNow ? 1 : 0,
          excessUnitsInRequest: state.needsUnit && !consumedNow ? 1 : 0,
          ...(billed === undefined ? {} : { overageBilledUnits: billed }),
        };
      });

      if (creditStates.length === 0) return { readings };
      const credits = creditStates.map(({ credit, cost }): CreditReading => {
        const deducted = granted && credit.consume;
        if (deducted && cost > 0) {
          this.changeBalance(credit.creditId, -cost, "consume", now);
          // What a capped carry-over needs to know at the next period: how much of this period's credits were spent —
          // kept under every allowance, so a plan that gains carryOver later still knows what was spent before.
          if (credit.grant) this.addSpent(credit.creditId, periodStart(credit.grant.period, now, timeZone), cost);
        }
        const balance = this.getBalance(credit.creditId);
        const hasAccess = deducted || (!credit.consume && balance >= cost);
        const covered = credit.consume ? balance + (deducted ? cost : 0) >= (wanted.get(credit.creditId) ?? 0) : balance >= cost;
        return { creditId: credit.creditId, hasAccess, balance, cost, deductedInRequest: deducted, ...(covered ? {} : { reason: "insufficient_credits" as const }) };
      });
      return { readings, credits };
    };
    if (!writes || inTransaction) return finish();
    // Only a call that writes creates tables (a refusal stays a read: no storage, no `userAdded`), before its transaction.
    this.ensureSchema();
    this.ensureConsumptionGroups(
      states.filter((state) => state.needsUnit).map((state) => state.counter),
      resourceId,
      creditStates.map((state) => state.credit),
    );
    return this.ctx.storage.transactionSync(finish);
  }

  /** The groups consuming these counters and credits may write: unique resources, overage marks, credit balances. */
  private ensureConsumptionGroups(consumed: readonly MeterRequest[], resourceId: string | undefined, credits: readonly CreditRequest[]): void {
    if (resourceId !== undefined && consumed.some((counter) => counter.uniqueResources)) this.ensureGroup("resources");
    if (consumed.some((counter) => counter.overflowLimit !== undefined)) this.ensureGroup("overage");
    if (credits.some((credit) => credit.grant !== undefined || (credit.consume && credit.cost > 0))) this.ensureGroup("credits");
  }

  /**
   * `POST /api/v1/counter-updates`: adds `update` units (negative gives units back), never below zero, never refused.
   * Under a unique-resources meter with a `resourceId`, a positive update counts the resource once (+1 when new, 0 when
   * already seen this period), and a negative update subtracts |update| and forgets the resource.
   */
  updateCounter(input: UpdateCounterInput): UpdateCounterResult {
    const now = input.now ?? Date.now();
    const timeZone = input.timeZone || "UTC";
    // Integers only (the route validates): a fraction is truncated toward 0, anything else is no change.
    const update = Number.isFinite(input.update ?? 1) ? Math.trunc(input.update ?? 1) : 0;
    if (input.uniqueResources === true && input.resourceId !== undefined && update > 0) this.ensureGroup("resources");
    if (input.overflowLimit !== undefined && update > 0) this.ensureGroup("overage");
    return this.idempotent("updateCounter", input.idempotencyKey, input.requestHash, now, () => {
      const limit = limitOf(input.limit);
      const unique = input.uniqueResources === true && input.resourceId !== undefined;
      const start = periodStart(input.period, now, timeZone);
      const before = this.consumedIn(input.counterId, start);
      const seen = unique && this.resourceSeen(input.counterId, start, input.resourceId!);
      let delta: number;
      if (unique && update > 0) delta = seen ? 0 : 1;
      else delta = Math.max(-before, update);
      const after = before + delta;
      if (delta !== 0 || update !== 0) this.writeCounter(input.counterId, input.period, timeZone, start, after);
      if (unique && update > 0 && !seen) this.addResource(input.counterId, start, input.resourceId!);
      if (unique && update < 0 && seen) {
        this.sql.exec("DELETE FROM resources WHERE counter_id = ? AND period_start = ? AND resource_id = ?", input.counterId, start, input.resourceId!);
      }
      const resourceIdUsed = unique && (update > 0 || (update === 0 && seen));
      const billed = input.overflowLimit === undefined ? undefined : delta > 0 ? this.billOverage(input.counterId, start, before, after, input.overflowLimit) : 0;
      if (input.overflowLimit === undefined && delta > 0) this.moveOverageMark(input.counterId, start, after);
      return {
        reading: {
          counterId: input.counterId,
          hasAccess: resourceIdUsed || after < limit,
          consumedUnits: after,
          remainingUnits: Math.max(0, limit - after),
          totalUnits: limit,
          periodStart: new Date(start).toISOString(),
          uniqueResources: input.uniqueResources === true,
          resourceIdUsed: seen,
          consumedInRequest: delta > 0,
          consumedUnitsInRequest: Math.max(0, delta),
          excessUnitsInRequest: delta > 0 ? Math.min(delta, Math.max(0, after - limit)) : 0,
          ...(billed === undefined ? {} : { overageBilledUnits: billed }),
        },
      };
    });
  }

  /** Counters for the admin API: the requested ones, or every stored one. Reads only. */
  readCounters(input: ReadCountersInput = {}): StoredCounter[] {
    if (!this.schemaReady) return []; // reads never create tables: the first write does (user.added)
    const now = input.now ?? Date.now();
    const rows = new Map(this.sql.exec<CounterRow>("SELECT * FROM counters ORDER BY counter_id").toArray().map((row) => [row.counter_id, row]));
    const wanted = input.counters ?? [...rows.values()].map((row) => ({ counterId: row.counter_id, period: row.period }));
    return wanted.map(({ counterId, period }) => {
      const row = rows.get(counterId);
      const timeZone = input.timeZone ?? row?.time_zone ?? "UTC";
      const start = periodStart(period, now, timeZone);
      const current = row !== undefined && row.period_start === start;
      return {
        counterId,
        period,
        timeZone,
        periodStart: new Date(start).toISOString(),
        consumedUnits: current ? row.consumed : 0,
        uniqueResourceCount: current && this.groups.has("resources")
          ? this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM resources WHERE counter_id = ? AND period_start = ?", counterId, start).one().n
          : 0,
      };
    });
  }

  /**
   * Forgets a counter's units, resources and billed overage (admin): the period starts over for it, so overage consumed
   * after the reset is billed again. Returns whether it existed.
   */
  resetCounter(counterId: string): boolean {
    if (!this.schemaReady) return false; // an object without tables has nothing to reset
    return this.ctx.storage.transactionSync(() => {
      const existed = this.sql.exec("DELETE FROM counters WHERE counter_id = ?", counterId).rowsWritten > 0;
      if (this.groups.has("resources")) this.sql.exec("DELETE FROM resources WHERE counter_id = ?", counterId);
      if (this.groups.has("overage")) this.sql.exec("DELETE FROM overage_billed WHERE counter_id = ?", counterId);
      return existed;
    });
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Linked identities (copy_once)

  /** The current-period counters of this identity, for carrying them over to another one. */
  exportCounters(now = Date.now()): CounterExport[] {
    if (!this.schemaReady) return []; // reads never create tables: the first write does (user.added)
    return this.sql
      .exec<CounterRow>("SELECT * FROM counters ORDER BY counter_id")
      .toArray()
      .filter((row) => periodStart(row.period, now, row.time_zone) === row.period_start && row.consumed > 0)
      .map((row) => ({
        counterId: row.counter_id,
        period: row.period,
        timeZone: row.time_zone,
        periodStart: row.period_start,
        consumed: row.consumed,
        resources: !this.groups.has("resources")
          ? []
          : this.sql
              .exec<{ resource_id: string }>("SELECT resource_id FROM resources WHERE counter_id = ? AND period_start = ?", row.counter_id, row.period_start)
              .toArray()
              .map((resource) => resource.resource_id),
      }));
  }

  /**
   * Adds another identity's counters once per `linkKey` (e.g. `anon->user`); a second call with the same key changes
   * nothing. Only units of the current period are carried; a resource both identities saw counts once.
   */
  importOnce(linkKey: string, counters: CounterExport[], now = Date.now()): { linked: boolean; counters: number } {
    this.ensureGroup("links");
    if (counters.some((counter) => counter.resources.length > 0)) this.ensureGroup("resources");
    // One transaction: a throw part-way leaves neither half the counters nor the link marker.
    return this.ctx.storage.transactionSync(() => this.importOnceInTransaction(linkKey, counters, now));
  }

  private importOnceInTransaction(linkKey: string, counters: CounterExport[], now: number): { linked: boolean; counters: number } {
    if (this.sql.exec("SELECT 1 FROM links WHERE link_key = ?", linkKey).toArray().length > 0) return { linked: false, counters: 0 };
    let imported = 0;
    for (const counter of counters) {
      const start = periodStart(counter.period, now, counter.timeZone);
      if (start !== counter.periodStart || !(counter.consumed > 0)) continue;
      const before = this.consumedIn(counter.counterId, start);
      let added = 0;
      for (const resource of counter.resources) if (this.addResource(counter.counterId, start, resource)) added++;
      const unitsWithoutResource = Math.max(0, Math.floor(counter.consumed) - counter.resources.length);
      this.writeCounter(counter.counterId, counter.period, counter.timeZone, start, before + added + unitsWithoutResource);
      imported++;
    }
    this.sql.exec("INSERT INTO links (link_key, created_at) VALUES (?, ?)", linkKey, now);
    return { linked: true, counters: imported };
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Credits

  getBalance(creditId: string): number {
    if (!this.groups.has("credits")) return 0;
    return this.sql.exec<{ balance: number }>("SELECT balance FROM credits WHERE credit_id = ?", creditId).toArray()[0]?.balance ?? 0;
  }

  /** Adds `amount` (a negative amount removes, down to 0). */
  grantCredits(input: GrantCreditsInput): CreditResult {
    const now = input.now ?? Date.now();
    this.ensureGroup("credits");
    return this.idempotent("grantCredits", input.idempotencyKey, input.requestHash, now, () => {
      const balance = this.changeBalance(input.creditId, amountOf(input.amount), input.reason ?? "grant", now);
      return { ok: true, balance } as const;
    });
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Custom data (workflow utils)

  customDataGet(key: string): unknown {
    if (!this.groups.has("custom")) return null; // reads never create tables: the first write does (user.added)
    const row = this.sql.exec<{ value: string }>("SELECT value FROM custom_data WHERE key = ?", key).toArray()[0];
    return row ? JSON.parse(row.value) : null;
  }

  customDataSet(key: string, value: unknown): void {
    this.ensureGroup("custom");
    this.sql.exec("INSERT INTO custom_data (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", key, JSON.stringify(value ?? null));
  }

  customDataDelete(key: string): boolean {
    if (!this.groups.has("custom")) return false; // an object without the table has nothing to delete
    return this.sql.exec("DELETE FROM custom_data WHERE key = ?", key).rowsWritten > 0;
  }

  /**
   * Several writes at once, all or nothing (a redemption workflow's staged writes, applied once it succeeded): each
   * `value` is set, or the key deleted when `delete` is true, in the order given — a compare-and-set: only if every
   * `expected` key still holds the value it was read with, checked in the same synchronous step as the writes, so a
   * "claim once" check cannot pass twice and a write made meanwhile is never silently overwritten.
   *
   * `applyId` (a redemption's `redemption:<token id>`) applies once: it is recorded with the writes, in the same
   * transaction, and a repeat within IDEMPOTENCY_TTL_MS answers `replayed` without writing or comparing — the caller
   * whose first call failed on the way back (the writes committed, the answer was lost) learns they stand.
   */
  customDataApply(writes: CustomDataWrite[], expected: CustomDataExpectation[] = [], applyId?: string): CustomDataApplyResult {
    const now = Date.now();
    const storedKey = applyId === undefined ? undefined : `customDataApply:${applyId}`;
    // Before the comparison: the first apply's own writes changed the values this repeat was decided on.
    if (storedKey !== undefined && this.groups.has("idempotency")) {
      const done = this.sql.exec<{ created_at: number }>("SELECT created_at FROM idempotency WHERE key = ?", storedKey).toArray()[0];
      if (done && done.created_at > now - IDEMPOTENCY_TTL_MS) return { applied: true, replayed: true };
    }
    const changed = expected.find(({ key, sha256 }) => customDataDigest(this.customDataJson(key)) !== sha256);
    if (changed) return { applied: false, conflict: changed.key };
    if (writes.length === 0 && storedKey === undefined) return { applied: true };
    if (writes.length > 0) this.ensureGroup("custom");
    else this.ensureSchema();
    if (storedKey !== undefined) this.ensureGroup("idempotency");
    this.ctx.storage.transactionSync(() => {
      for (const write of writes) {
        if (write.delete) this.sql.exec("DELETE FROM custom_data WHERE key = ?", write.key);
        else this.sql.exec("INSERT INTO custom_data (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", write.key, JSON.stringify(write.value ?? null));
      }
      if (storedKey !== undefined) {
        this.sql.exec(
          `INSERT INTO idempotency (key, request_hash, result, created_at) VALUES (?, '', '{"applied":true}', ?)
           ON CONFLICT (key) DO UPDATE SET result = excluded.result, created_at = excluded.created_at`,
          storedKey,
          now,
        );
      }
    });
    if (storedKey !== undefined) this.schedulePrune();
    return { applied: true };
  }

  /** The stored JSON text of `key`, `null` when it has none (what customDataGet parses). */
  private customDataJson(key: string): string {
    if (!this.groups.has("custom")) return "null";
    return this.sql.exec<{ value: string }>("SELECT value FROM custom_data WHERE key = ?", key).toArray()[0]?.value ?? "null";
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Agents (agentLedger.ts)

  /** A verified signature's nonce, accepted once while the signature is valid: false for a replay. */
  claimNonce(nonce: string, expiresAt: number, now = Date.now(), claim?: string): boolean {
    this.ensureGroup("agents");
    const fresh = claimNonce(this.sql, nonce, expiresAt, now, claim);
    if (fresh) this.schedulePrune();
    return fresh;
  }

  /** A charge booked outside a decision's call (a settled x402 payment whose decision's call failed); once per id. */
  recordAgentCharge(charge: AgentCharge, now = Date.now()): boolean {
    this.ensureGroup("agents");
    const recorded = recordAgentCharge(this.sql, charge, now);
    this.schedulePrune();
    return recorded;
  }

  /**
   * Takes a charge off the ledger (a pay-per-crawl decision answered 503 after its meter call failed); false if absent.
   * With the decision's idempotency key, its stored result goes too: a retry under that key decides (and charges) anew
   * instead of replaying a payment that no longer stands.
   */
  voidAgentCharge(id: string, idempotencyKey?: string): boolean {
    if (!this.groups.has("agents")) return false;
    return this.ctx.storage.transactionSync(() => {
      if (idempotencyKey !== undefined && this.groups.has("idempotency")) this.sql.exec("DELETE FROM idempotency WHERE key = ?", `evaluate:${idempotencyKey}`);
      return this.sql.exec("DELETE FROM agent_charges WHERE id = ?", id).rowsWritten > 0;
    });
  }

  /** What this identity was charged for priced requests, newest first, with the totals per currency. */
  agentLedger(options: { limit?: number; cursor?: string } = {}): AgentLedger {
    if (!this.groups.has("agents")) return { charges: [], totals: [], nextCursor: null };
    return readAgentLedger(this.sql, { limit: Math.max(1, Math.min(200, Math.trunc(options.limit ?? 50))), cursor: options.cursor });
  }

  /** `POST /api/v1/x402-settlements/{id}`, first step: what the settle call may do with the payment (agentLedger.ts). */
  beginX402Settlement(id: string, micros: number, now = Date.now()): BeginX402Settlement {
    if (!this.groups.has("agents")) return { refused: "payment_not_found" }; // an object without these tables authorized nothing
    return this.ctx.storage.transactionSync(() => beginX402Settlement(this.sql, id, micros, now));
  }

  /** Second step, after the facilitator: the charge on the ledger and the payment settled, or back to authorized. */
  completeX402Settlement(id: string, outcome: { ok: true; micros: number; transaction: string } | { ok: false; unknown?: boolean }, now = Date.now()): SettledX402Payment | null {
    if (!this.groups.has("agents")) return null;
    return this.ctx.storage.transactionSync(() => completeX402Settlement(this.sql, id, outcome, now));
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Reservations (reservations.ts)

  /**
   * `POST /api/v1/reservations`: takes the amount if there is room and stores the reservation, in one step; the alarm
   * is then set to ring by its expiry (one alarm serves pruning and expiries: the earlier time wins).
   */
  async reserve(input: ReserveInput): Promise<(ReserveOutcome & Replayable) | IdempotencyConflict> {
    const now = input.now ?? Date.now();
    this.ensureGroup("reservations");
    if (input.credit) this.ensureGroup("credits");
    const result = this.idempotent("reserve", input.idempotencyKey, input.requestHash, now, () => this.reservations().reserve(input, now));
    if ("reservation" in result && result.reservation) await this.alarmBy(Date.parse(result.reservation.expiresAt));
    return result;
  }

  /** `…/reservations/{id}/finalize` and `…/release`, in one step (see Reservations.settle). */
  settleReservation(input: SettleInput): SettleOutcome {
    if (!this.groups.has("reservations")) return { refused: "reservation_not_found" }; // an object without these tables reserved nothing
    const now = input.now ?? Date.now();
    this.ensureGroup("overage");
    return this.ctx.storage.transactionSync(() => this.reservations().settle(input, now));
  }

  private reservations(): Reservations {
    return new Reservations(this.sql, {
      consumedIn: (counterId, start) => this.consumedIn(counterId, start),
      writeCounter: (counterId, period, timeZone, start, consumed) => this.writeCounter(counterId, period, timeZone, start, consumed),
      billOverage: (counterId, start, before, after, overflowLimit) => this.billOverage(counterId, start, before, after, overflowLimit),
      moveOverageMark: (counterId, start, after) => this.moveOverageMark(counterId, start, after),
      getBalance: (creditId) => this.getBalance(creditId),
      changeBalance: (creditId, delta, reason, now) => this.changeBalance(creditId, delta, reason, now),
      applyPeriodicGrant: (creditId, grant, timeZone, now) => this.applyPeriodicGrant(creditId, grant, timeZone, now),
      addSpent: (creditId, start, cost) => this.addSpent(creditId, start, cost),
    });
  }

  /** Makes the alarm ring at `at` or earlier (an alarm has one time: an earlier one already set stands). */
  private async alarmBy(at: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.ctx.storage.setAlarm(at);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Housekeeping

  override async alarm(): Promise<void> {
    this.pruneScheduled = false;
    const now = Date.now();
    // Expired reservations give their amount back first, whether or not anyone settles them.
    this.ensureSchema();
    const reservations = this.groups.has("reservations") ? this.ctx.storage.transactionSync(() => this.reservations().expireDue(now)) : { nextExpiry: undefined, kept: 0 };
    const { remaining, soon } = this.prune(now);
    // Hourly while something expires within a day (idempotency keys, minute/hour/day counters, settled reservations),
    // else daily; by the next reservation's expiry if that is sooner.
    let next = remaining > 0 || reservations.kept > 0 ? now + (soon || reservations.kept > 0 ? PRUNE_INTERVAL_MS : 24 * PRUNE_INTERVAL_MS) : undefined;
    if (reservations.nextExpiry !== undefined) next = Math.min(next ?? Number.POSITIVE_INFINITY, reservations.nextExpiry);
    if (next !== undefined) {
      this.pruneScheduled = true;
      await this.ctx.storage.setAlarm(next);
    }
  }

  /**
   * Drops finished periods (counters, their resources and overage marks, periodic-grant markers of past periods), idempotency keys
   * older than 24 h and ledger entries older than 90 days. Stale rows are never read, so pruning only saves space.
   */
  private prune(now: number): {
    counters: number;
    resources: number;
    overageMarks: number;
    idempotencyKeys: number;
    grants: number;
    ledger: number;
    /** Rows that will expire later (0: the alarm need not be re-armed). */
    remaining: number;
    /** Some of them expire within a day. */
    soon: boolean;
  } {
    let counters = 0;
    this.ensureSchema();
    for (const row of this.sql.exec<CounterRow>("SELECT * FROM counters").toArray()) {
      if (periodStart(row.period, now, row.time_zone) !== row.period_start) {
        counters += this.sql.exec("DELETE FROM counters WHERE counter_id = ? AND period_start = ?", row.counter_id, row.period_start).rowsWritten;
      }
    }
    const resources = !this.groups.has("resources")
      ? 0
      : this.sql.exec(
          "DELETE FROM resources WHERE NOT EXISTS (SELECT 1 FROM counters c WHERE c.counter_id = resources.counter_id AND c.period_start = resources.period_start)",
        ).rowsWritten;
    // Marks are written with their period's units: a mark without them belongs to a finished period.
    const overageMarks = !this.groups.has("overage")
      ? 0
      : this.sql.exec(
          "DELETE FROM overage_billed WHERE NOT EXISTS (SELECT 1 FROM counters c WHERE c.counter_id = overage_billed.counter_id AND c.period_start = overage_billed.period_start)",
        ).rowsWritten;
    const keys = this.groups.has("idempotency");
    const idempotencyKeys = keys ? this.sql.exec("DELETE FROM idempotency WHERE created_at < ?", now - IDEMPOTENCY_TTL_MS).rowsWritten : 0;
    const keysLeft = keys ? this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM idempotency").one().n : 0;
    const credits = this.groups.has("credits");
    const grants = !credits
      ? 0
      : this.sql.exec(
        "DELETE FROM credit_allowances WHERE period_start < (SELECT MAX(g.period_start) FROM credit_allowances g WHERE g.credit_id = credit_allowances.credit_id)",
      ).rowsWritten +
      this.sql.exec(
        "DELETE FROM credit_carry WHERE period_start < (SELECT MAX(g.period_start) FROM credit_allowances g WHERE g.credit_id = credit_carry.credit_id)",
      ).rowsWritten;
    const ledger = credits ? this.sql.exec("DELETE FROM credit_ledger WHERE created_at < ?", now - CREDIT_LEDGER_TTL_MS).rowsWritten : 0;
    const agents = this.groups.has("agents") ? pruneAgentRows(this.sql, now) : { nonces: 0, charges: 0, remaining: 0 };
    // Lifetime counters never expire; only rows that can expire keep the alarm alive.
    const remaining = this.sql
      .exec<{ n: number }>("SELECT COUNT(*) AS n FROM counters WHERE period <> 'lifetime'")
      .one().n + keysLeft + (credits ? this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM credit_ledger").one().n : 0) + agents.remaining;
    const soon = keysLeft + this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM counters WHERE period IN ('minute', 'hour', 'day')").one().n > 0;
    return { counters, resources, overageMarks, idempotencyKeys, grants, ledger, remaining, soon };
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Internals (synchronous)

  /** Makes sure an alarm will prune what was just written. Scheduled against the real clock, never an injected one. */
  private schedulePrune(): void {
    if (this.pruneScheduled) return;
    this.pruneScheduled = true;
    const storage = this.ctx.storage;
    void storage.getAlarm().then((alarm) => {
      if (alarm === null) return storage.setAlarm(Date.now() + PRUNE_INTERVAL_MS);
    });
  }

  private consumedIn(counterId: string, start: number): number {
    if (!this.schemaReady) return 0;
    const row = this.sql
      .exec<{ period_start: number; consumed: number }>("SELECT period_start, consumed FROM counters WHERE counter_id = ?", counterId)
      .toArray()[0];
    return row && row.period_start === start ? row.consumed : 0;
  }

  private resourceSeen(counterId: string, start: number, resourceId: string): boolean {
    if (!this.groups.has("resources")) return false;
    return (
      this.sql.exec("SELECT 1 FROM resources WHERE counter_id = ? AND period_start = ? AND resource_id = ?", counterId, start, resourceId).toArray()
        .length > 0
    );
  }

  /** Returns whether the resource was new. */
  private addResource(counterId: string, start: number, resourceId: string): boolean {
    this.requireGroup("resources");
    return (
      this.sql.exec("INSERT OR IGNORE INTO resources (counter_id, period_start, resource_id) VALUES (?, ?, ?)", counterId, start, resourceId)
        .rowsWritten > 0
    );
  }

  /**
   * A consumption without an overflow limit (a capped or unlimited plan now, a workflow's counters): a counter billed
   * earlier this period moves its mark along, so these units are never billed once an overflow setting applies again.
   * Objects that never billed overage skip it after one lookup (`hasOverageMarks`).
   */
  private moveOverageMark(counterId: string, start: number, after: number): void {
    this.hasOverageMarks ??= this.groups.has("overage") && this.sql.exec("SELECT 1 FROM overage_billed LIMIT 1").toArray().length > 0;
    if (!this.hasOverageMarks) return;
    this.sql.exec("UPDATE overage_billed SET billed_through = ? WHERE counter_id = ? AND period_start = ? AND billed_through < ?", after, counterId, start, after);
  }

  /**
   * The overage units a consumption that took the counter from `before` to `after` units bills: the units past the
   * limit that no earlier consumption of the period billed. The mark is the highest unit billed so far (a unit given
   * back and consumed again is not billed twice); a counter's first mark starts at `before`, so units consumed before
   * any overflow setting applied (under a capped plan, by a workflow) are never billed after the fact, and a limit
   * that changes mid-period bills only the units past both the new limit and the mark.
   */
  private billOverage(counterId: string, start: number, before: number, after: number, overflowLimit: number): number {
    const limit = limitOf(overflowLimit);
    this.requireGroup("overage");
    const marked = this.sql
      .exec<{ billed_through: number }>("SELECT billed_through FROM overage_billed WHERE counter_id = ? AND period_start = ?", counterId, start)
      .toArray()[0]?.billed_through;
    // Within the limit: nothing to bill, but a counter already marked moves its mark along, so units consumed under a
    // higher limit now are never billed when the limit comes down again.
    if (after <= limit && (marked === undefined || after <= marked)) return 0;
    const through = marked ?? before;
    const billable = Math.max(0, after - Math.max(limit, through));
    if (marked === undefined || after > marked) {
      this.sql.exec(
        "INSERT INTO overage_billed (counter_id, period_start, billed_through) VALUES (?, ?, ?) ON CONFLICT (counter_id, period_start) DO UPDATE SET billed_through = excluded.billed_through",
        counterId,
        start,
        Math.max(through, after),
      );
      this.hasOverageMarks = true;
    }
    return billable;
  }

  /** Stores the counter's units for the period starting at `start` (a new period replaces the old row). */
  private writeCounter(counterId: string, period: Period, timeZone: string, start: number, consumed: number): void {
    this.sql.exec(
      `INSERT INTO counters (counter_id, period, time_zone, period_start, consumed) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (counter_id) DO UPDATE SET period = excluded.period, time_zone = excluded.time_zone,
         period_start = excluded.period_start, consumed = excluded.consumed`,
      counterId,
      period,
      timeZone,
      start,
      Math.max(0, consumed),
    );
    if (period !== "lifetime") this.schedulePrune();
  }

  /** Adds `delta` to a balance (clamped at 0), records it in the ledger, returns the new balance. */
  private changeBalance(creditId: string, delta: number, reason: string, now: number): number {
    const before = this.getBalance(creditId);
    const balance = money(Math.max(0, before + delta));
    this.sql.exec(
      "INSERT INTO credits (credit_id, balance) VALUES (?, ?) ON CONFLICT (credit_id) DO UPDATE SET balance = excluded.balance",
      creditId,
      balance,
    );
    this.sql.exec(
      "INSERT INTO credit_ledger (credit_id, delta, balance, reason, created_at) VALUES (?, ?, ?, ?, ?)",
      creditId,
      money(balance - before),
      balance,
      reason,
      now,
    );
    this.schedulePrune();
    return balance;
  }

  /**
   * A plan's allowance for the current period: given once per period (an upgrade mid-period adds the difference). When
   * a new period begins and the grant limits `carryOver`, the unused part of the last period's allowance beyond it
   * expires first: the allowance is taken to be spent before other credits, so unused = min(balance, last allowance).
   */
  private applyPeriodicGrant(creditId: string, grant: { amount: number; period: Period; carryOver?: number }, timeZone: string, now: number): void {
    const { period } = grant;
    const start = periodStart(period, now, timeZone);
    const amount = Math.max(0, amountOf(grant.amount));
    // The allowance given this period so far: a plan upgrade mid-period grants the difference, a downgrade nothing.
    const given = this.sql
      .exec<{ amount: number }>("SELECT amount FROM credit_allowances WHERE credit_id = ? AND period_start = ?", creditId, start)
      .toArray()[0]?.amount;
    if (given !== undefined && amount <= given) return;
    if (given === undefined && grant.carryOver !== undefined) this.expireUnusedAllowance(creditId, start, Math.max(0, amountOf(grant.carryOver)), now);
    this.sql.exec(
      "INSERT INTO credit_allowances (credit_id, period_start, amount) VALUES (?, ?, ?) ON CONFLICT (credit_id, period_start) DO UPDATE SET amount = excluded.amount",
      creditId,
      start,
      amount,
    );
    this.changeBalance(creditId, amount - (given ?? 0), `periodic_grant:${period}:${new Date(start).toISOString()}`, now);
  }

  /**
   * At the start of a new period (`start`): of the last period's allowance plus what it had carried in, the part not
   * spent (and still in the balance) stays up to `carryOver`; the rest expires. Credits from elsewhere (packs,
   * top-ups, grants by hand) never count as allowance, so they never expire. The amount carried is remembered for the
   * new period, where it counts as allowance again: carried credits do not pile up beyond `carryOver`.
   */
  private expireUnusedAllowance(creditId: string, start: number, carryOver: number, now: number): void {
    const last = this.sql
      .exec<{ amount: number; period_start: number }>(
        "SELECT amount, period_start FROM credit_allowances WHERE credit_id = ? AND period_start < ? ORDER BY period_start DESC LIMIT 1",
        creditId,
        start,
      )
      .toArray()[0];
    if (!last) return;
    const carry = this.sql
      .exec<{ carried: number; spent: number }>("SELECT carried, spent FROM credit_carry WHERE credit_id = ? AND period_start = ?", creditId, last.period_start)
      .toArray()[0] ?? { carried: 0, spent: 0 };
    const unused = money(Math.max(0, Math.min(this.getBalance(creditId), last.amount + carry.carried - carry.spent)));
    const kept = Math.min(unused, carryOver);
    const expired = money(unused - kept);
    if (expired > 0) this.changeBalance(creditId, -expired, `carry_over_expired:${new Date(last.period_start).toISOString()}`, now);
    this.sql.exec(
      "INSERT INTO credit_carry (credit_id, period_start, carried, spent) VALUES (?, ?, ?, 0) ON CONFLICT (credit_id, period_start) DO UPDATE SET carried = excluded.carried",
      creditId,
      start,
      kept,
    );
  }

  /** Credits spent under an allowance in the period starting at `start` (what a capped carry-over reads). */
  private addSpent(creditId: string, start: number, cost: number): void {
    this.sql.exec(
      "INSERT INTO credit_carry (credit_id, period_start, carried, spent) VALUES (?, ?, 0, ?) ON CONFLICT (credit_id, period_start) DO UPDATE SET spent = round(spent + excluded.spent, 6)",
      creditId,
      start,
      cost,
    );
  }

  /**
   * Runs `effect` once per (operation, idempotency key): the result is stored in the same synchronous step as the
   * effect, so a retry (even a concurrent one) returns the first result, marked `replayed: true`, and changes nothing;
   * the same key with another request hash is a conflict. Keys older than 24 h are treated as new (and pruned by the
   * alarm). The mark is added on the way out: the stored JSON is the first result exactly as the effect returned it.
   */
  private idempotent<T extends object>(
    operation: string,
    key: string | undefined,
    requestHash: string | undefined,
    now: number,
    effect: () => T,
  ): (T & Replayable) | IdempotencyConflict {
    // Every caller writes (or may): the tables must exist before the transaction opens.
    this.ensureSchema();
    // transactionSync: a throw part-way leaves no half-applied effect (and no key).
    if (key === undefined) return this.ctx.storage.transactionSync(effect);
    this.ensureGroup("idempotency");
    const storedKey = `${operation}:${key}`;
    const hash = requestHash ?? "";
    const stored = this.sql
      .exec<{ request_hash: string; result: string; created_at: number }>(
        "SELECT request_hash, result, created_at FROM idempotency WHERE key = ?",
        storedKey,
      )
      .toArray()[0];
    if (stored && stored.created_at > now - IDEMPOTENCY_TTL_MS) {
      return stored.request_hash === hash ? { ...(JSON.parse(stored.result) as T), replayed: true } : { conflict: true };
    }
    return this.ctx.storage.transactionSync(() => {
      const result = effect();
      this.sql.exec(
        `INSERT INTO idempotency (key, request_hash, result, created_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (key) DO UPDATE SET request_hash = excluded.request_hash, result = excluded.result, created_at = excluded.created_at`,
        storedKey,
        hash,
        JSON.stringify(result),
        now,
      );
      this.schedulePrune();
      return result;
    });
  }
}
