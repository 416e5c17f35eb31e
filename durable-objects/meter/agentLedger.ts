/**
 * What a meter object keeps for agents (see storage-schema.md): the nonces of the Web Bot Auth signatures it has
 * accepted, so a captured signed request cannot be replayed while its signature is still valid, the ledger of what
 * the identity was charged for priced requests (pay-per-crawl charges, x402 settlements), and the x402 `upto`
 * payments authorized at decision time and settled afterwards (`POST /api/v1/x402-settlements/{id}`). Plain functions
 * over the object's SQL, called inside the object's synchronous sections: each stays atomic with the call that makes it.
 */
import { randomToken } from "../../workers/lib/crypto";

export const AGENT_SCHEMA = `
  CREATE TABLE IF NOT EXISTS agent_nonces (nonce TEXT PRIMARY KEY, expires_at INTEGER NOT NULL, claim TEXT NOT NULL) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS agent_nonces_expires_at ON agent_nonces (expires_at);
  CREATE TABLE IF NOT EXISTS agent_charges (
    id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, method TEXT NOT NULL, currency TEXT NOT NULL,
    micros INTEGER NOT NULL, surface TEXT NOT NULL, resource TEXT, url TEXT, reference TEXT);
  CREATE INDEX IF NOT EXISTS agent_charges_created_at ON agent_charges (created_at);
  CREATE TABLE IF NOT EXISTS agent_pending_payments (
    id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, payment_key TEXT NOT NULL UNIQUE,
    currency TEXT NOT NULL, max_micros INTEGER NOT NULL, surface TEXT NOT NULL, resource TEXT, url TEXT, authorization TEXT NOT NULL,
    state TEXT NOT NULL, settling_until INTEGER, settled_micros INTEGER, settled_at INTEGER, reference TEXT,
    attempted INTEGER NOT NULL DEFAULT 0);
  CREATE INDEX IF NOT EXISTS agent_pending_payments_expires_at ON agent_pending_payments (expires_at);
`;
export const AGENT_SCHEMA_OBJECTS = ["agent_nonces", "agent_nonces_expires_at", "agent_charges", "agent_charges_created_at", "agent_pending_payments", "agent_pending_payments_expires_at"];

/** Expired nonces removed per claim: keeps the table near the number of live signatures without a long delete. */
const NONCE_SWEEP = 50;
/** How long charges stay in the object: long enough to invoice a year, after which the decision records remain. */
export const AGENT_CHARGE_TTL_MS = 400 * 24 * 60 * 60 * 1000;

/** How a priced request was paid: on the operator's account (pay-per-crawl) or settled on the spot (x402). */
export type AgentChargeMethod = "crawl" | "x402";

export interface AgentCharge {
  /** Unique per payment: the signature's nonce for a crawl, the settlement's transaction for x402. A repeat is one charge. */
  id: string;
  method: AgentChargeMethod;
  /** ISO 4217, upper case. */
  currency: string;
  /** Micro-units of the currency (1 USD = 1,000,000). */
  micros: number;
  surface: string;
  resource?: string | undefined;
  url?: string | undefined;
  /** The x402 transaction, when there is one. */
  reference?: string | undefined;
}

export interface StoredAgentCharge extends AgentCharge {
  createdAt: string;
}

export interface AgentLedger {
  charges: StoredAgentCharge[];
  /** Per currency: every charge the object holds, not only the page. */
  totals: { currency: string; micros: number; count: number }[];
  /** Pass as `cursor` for the next (older) page; null on the last page. */
  nextCursor: string | null;
}

interface ChargeRow {
  id: string;
  created_at: number;
  method: AgentChargeMethod;
  currency: string;
  micros: number;
  surface: string;
  resource: string | null;
  url: string | null;
  reference: string | null;
  [key: string]: SqlStorageValue;
}

/**
 * Accepts `nonce` once while its signature is valid (`expiresAt`, ms): false when it was seen before — unless both
 * claims carry the same non-empty `claim` (the decision's Idempotency-Key): a client retrying a decision whose answer
 * it lost is the same request, not a replay. The row lives until the signature expires; after that the signature
 * itself is refused, so the nonce need not be remembered.
 */
export function claimNonce(sql: SqlStorage, nonce: string, expiresAt: number, now: number, claim = ""): boolean {
  sql.exec("DELETE FROM agent_nonces WHERE nonce IN (SELECT nonce FROM agent_nonces WHERE expires_at <= ? LIMIT ?)", now, NONCE_SWEEP);
  if (sql.exec("INSERT OR IGNORE INTO agent_nonces (nonce, expires_at, claim) VALUES (?, ?, ?)", nonce, expiresAt, claim).rowsWritten > 0) return true;
  if (claim === "") return false;
  return sql.exec<{ claim: string }>("SELECT claim FROM agent_nonces WHERE nonce = ?", nonce).toArray()[0]?.claim === claim;
}

/** Appends a charge; false when a charge with its id is already there (nothing is charged twice). */
export function recordAgentCharge(sql: SqlStorage, charge: AgentCharge, now: number): boolean {
  return (
    sql.exec(
      "INSERT OR IGNORE INTO agent_charges (id, created_at, method, currency, micros, surface, resource, url, reference) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
      charge.id,
      now,
      charge.method,
      charge.currency,
      Math.max(0, Math.trunc(charge.micros)),
      charge.surface,
      charge.resource ?? null,
      charge.url ?? null,
      charge.reference ?? null,
    ).rowsWritten > 0
  );
}

/** The newest charges first (`limit` of them, after the `cursor` of the previous page when given) and the totals per currency. */
export function readAgentLedger(sql: SqlStorage, options: { limit: number; cursor?: string | undefined }): AgentLedger {
  const after = cursorOf(options.cursor);
  const rows = sql
    .exec<ChargeRow>(
      `SELECT * FROM agent_charges ${after ? "WHERE created_at < ? OR (created_at = ? AND id < ?)" : ""} ORDER BY created_at DESC, id DESC LIMIT ?`,
      ...(after ? [after.at, after.at, after.id] : []),
      options.limit + 1,
    )
    .toArray();
  const page = rows.slice(0, options.limit);
  const totals = sql
    .exec<{ currency: string; micros: number; count: number }>("SELECT currency, SUM(micros) AS micros, COUNT(*) AS count FROM agent_charges GROUP BY currency ORDER BY currency")
    .toArray()
    .map((row) => ({ currency: row.currency, micros: row.micros, count: row.count }));
  const last = page[page.length - 1];
  return {
    charges: page.map((row) => ({
      id: row.id,
      createdAt: new Date(row.created_at).toISOString(),
      method: row.method,
      currency: row.currency,
      micros: row.micros,
      surface: row.surface,
      ...(row.resource === null ? {} : { resource: row.resource }),
      ...(row.url === null ? {} : { url: row.url }),
      ...(row.reference === null ? {} : { reference: row.reference }),
    })),
    totals,
    nextCursor: rows.length > options.limit && last ? `${last.created_at}:${last.id}` : null,
  };
}

/** `{ms}:{id}` of the last charge of a page; anything else reads from the newest. */
function cursorOf(cursor: string | undefined): { at: number; id: string } | null {
  const match = cursor === undefined ? null : /^(\d{1,16}):(.+)$/.exec(cursor);
  return match ? { at: Number(match[1]), id: match[2]! } : null;
}

/**
 * Housekeeping (the object's alarm): expired nonces, charges past their retention, x402 authorizations past their
 * expiry released (nothing charged), and settled or released payments dropped a day after their expiry (replays of
 * their settle call are answered until then).
 */
export function pruneAgentRows(sql: SqlStorage, now: number): { nonces: number; charges: number; payments: number; remaining: number } {
  const nonces = sql.exec("DELETE FROM agent_nonces WHERE expires_at <= ?", now).rowsWritten;
  const charges = sql.exec("DELETE FROM agent_charges WHERE created_at < ?", now - AGENT_CHARGE_TTL_MS).rowsWritten;
  // An authorization whose settlement's outcome went unknown is not released: it may have been paid (the decision
  // record and the payment's row say so until it is dropped).
  sql.exec("UPDATE agent_pending_payments SET state = 'released' WHERE state = 'authorized' AND attempted = 0 AND expires_at <= ?", now);
  const payments = sql.exec("DELETE FROM agent_pending_payments WHERE expires_at < ?", now - PAYMENT_REPLAY_MS).rowsWritten;
  const remaining = sql
    .exec<{ n: number }>("SELECT (SELECT COUNT(*) FROM agent_nonces) + (SELECT COUNT(*) FROM agent_charges) + (SELECT COUNT(*) FROM agent_pending_payments) AS n")
    .one().n;
  return { nonces, charges, payments, remaining };
}

// ---------------------------------------------------------------------------------------------------------------------
// x402 `upto`: authorized at decision time, settled for the actual amount afterwards

/** How long a settled or released payment answers replays of its settle call, after its expiry. */
const PAYMENT_REPLAY_MS = 24 * 60 * 60 * 1000;
/**
 * How long one settle call holds a payment (`settling`) while the facilitator settles it. Past it a new call may try
 * again (the first one died): the facilitator settles one authorization once, so funds never move twice.
 */
export const SETTLING_LEASE_MS = 60 * 1000;

/** An `upto` authorization the decision verified, stored in the same meter call that granted the surface. */
export interface PendingX402Payment {
  /** The digest of the `payment-signature` header: one authorization pays for one decision of this identity. */
  paymentKey: string;
  currency: string;
  /** The most the payment may settle for (micro-units = the asset's atomic units). */
  maxMicros: number;
  /** ms: the requirements' `maxTimeoutSeconds` after the decision; unsettled by then, it is released. */
  expiresAt: number;
  surface: string;
  resource?: string | undefined;
  url?: string | undefined;
  /** The verified payload and the requirements it matched, as JSON: what settling needs. */
  authorization: string;
}

/** What the decision reports of a stored authorization. */
export interface AuthorizedX402Payment {
  id: string;
  expiresAt: string;
}

/** A payment whose settle call is done: settled for `micros` (a charge on the ledger), or released for 0. */
export interface SettledX402Payment {
  id: string;
  state: "settled" | "released";
  currency: string;
  maxMicros: number;
  micros: number;
  transaction?: string;
  settledAt: string;
}

export type X402SettleRefusal = "payment_not_found" | "payment_expired" | "payment_settling" | "payment_settled" | "payment_above_authorization";

export type BeginX402Settlement =
  | { refused: X402SettleRefusal; detail?: string }
  /** Nothing to ask the facilitator: an earlier call settled it for this amount, or the amount is 0. */
  | { done: SettledX402Payment; replayed: boolean }
  /** The payment is `settling` (held for SETTLING_LEASE_MS): settle it, then complete. */
  | {
      settle: {
        authorization: string;
        currency: string;
        maxMicros: number;
        /** An earlier attempt's outcome is unknown: it may have moved the funds, so a refusal now proves nothing. */
        attempted: boolean;
      };
    };

interface PaymentRow {
  id: string;
  expires_at: number;
  currency: string;
  max_micros: number;
  surface: string;
  resource: string | null;
  url: string | null;
  authorization: string;
  state: "authorized" | "settling" | "settled" | "released";
  settling_until: number | null;
  settled_micros: number | null;
  settled_at: number | null;
  reference: string | null;
  /** 1 once a settlement's outcome went unknown (the facilitator did not answer, or a settling call gave up). */
  attempted: number;
  [key: string]: SqlStorageValue;
}

/**
 * Stores an authorization under a new random id; null when this identity already holds one for the same
 * `payment-signature` (a payment pays for one decision: the facilitator would settle it only once).
 */
export function storePendingPayment(sql: SqlStorage, payment: PendingX402Payment, now: number): AuthorizedX402Payment | null {
  const id = `pay_${randomToken(20)}`;
  const stored = sql.exec(
    `INSERT OR IGNORE INTO agent_pending_payments
       (id, created_at, expires_at, payment_key, currency, max_micros, surface, resource, url, authorization, state)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'authorized')`,
    id,
    now,
    payment.expiresAt,
    payment.paymentKey,
    payment.currency,
    Math.trunc(payment.maxMicros),
    payment.surface,
    payment.resource ?? null,
    payment.url ?? null,
    payment.authorization,
  ).rowsWritten;
  return stored > 0 ? { id, expiresAt: new Date(payment.expiresAt).toISOString() } : null;
}

const paymentRow = (sql: SqlStorage, id: string) => sql.exec<PaymentRow>("SELECT * FROM agent_pending_payments WHERE id = ?", id).toArray()[0];

function settledOf(row: PaymentRow): SettledX402Payment {
  return {
    id: row.id,
    state: row.state === "settled" ? "settled" : "released",
    currency: row.currency,
    maxMicros: row.max_micros,
    micros: row.settled_micros ?? 0,
    ...(row.reference === null ? {} : { transaction: row.reference }),
    settledAt: new Date(row.settled_at ?? row.expires_at).toISOString(),
  };
}

/**
 * The first half of a settle call, atomic: decides from the payment's state what the call may do. A payment settled
 * (or released for 0) answers a repeat of the same amount with the first answer, another amount with
 * `payment_settled`; one past its expiry is released (`payment_expired`, nothing charged); one another call is
 * settling is `payment_settling`; an amount above the authorization is refused and changes nothing. Otherwise 0
 * releases it at once, and any other amount marks it `settling` for the caller to settle.
 */
export function beginX402Settlement(sql: SqlStorage, id: string, micros: number, now: number): BeginX402Settlement {
  const row = paymentRow(sql, id);
  if (!row) return { refused: "payment_not_found" };
  if (row.state === "settled" || (row.state === "released" && row.settled_micros !== null)) {
    if (row.settled_micros === micros) return { done: settledOf(row), replayed: true };
    return { refused: "payment_settled", detail: `it was settled for ${row.settled_micros} micro-units` };
  }
  if (row.state === "released" || (row.state === "authorized" && row.expires_at <= now)) {
    sql.exec("UPDATE agent_pending_payments SET state = 'released' WHERE id = ?", id);
    return { refused: "payment_expired" };
  }
  if (row.state === "settling" && (row.settling_until ?? 0) > now) return { refused: "payment_settling" };
  const gaveUp = row.state === "settling";
  // Authorized, or settling by a call that gave up (its lease ran out): this call may settle it, expired or not — the
  // settling one may have moved funds, and the facilitator refuses an authorization past its window anyway.
  if (micros > row.max_micros) return { refused: "payment_above_authorization", detail: `at most ${row.max_micros} micro-units were authorized` };
  if (micros === 0) {
    sql.exec("UPDATE agent_pending_payments SET state = 'released', settled_micros = 0, settled_at = ? WHERE id = ?", now, id);
    return { done: settledOf(paymentRow(sql, id)!), replayed: false };
  }
  const attempted = row.attempted === 1 || gaveUp;
  sql.exec("UPDATE agent_pending_payments SET state = 'settling', settling_until = ?, attempted = ? WHERE id = ?", now + SETTLING_LEASE_MS, attempted ? 1 : 0, id);
  return { settle: { authorization: row.authorization, currency: row.currency, maxMicros: row.max_micros, attempted } };
}

/**
 * The second half, atomic: a settlement that went through is charged on the ledger (method x402, its transaction as
 * reference) and the payment marked settled; a failed one puts it back to `authorized`, so the call can be retried.
 */
export function completeX402Settlement(
  sql: SqlStorage,
  id: string,
  outcome: { ok: true; micros: number; transaction: string } | { ok: false; unknown?: boolean },
  now: number,
): SettledX402Payment | null {
  const row = paymentRow(sql, id);
  if (!row) return null;
  if (row.state === "settled") return settledOf(row);
  if (!outcome.ok) {
    // Back to authorized, so the call can be retried — remembering when the facilitator's answer was lost.
    if (row.state === "settling") sql.exec("UPDATE agent_pending_payments SET state = 'authorized', settling_until = NULL, attempted = MAX(attempted, ?) WHERE id = ?", outcome.unknown ? 1 : 0, id);
    return null;
  }
  recordAgentCharge(
    sql,
    {
      id: `x402:${outcome.transaction}`,
      method: "x402",
      currency: row.currency,
      micros: outcome.micros,
      surface: row.surface,
      resource: row.resource ?? undefined,
      url: row.url ?? undefined,
      reference: outcome.transaction,
    },
    now,
  );
  sql.exec(
    "UPDATE agent_pending_payments SET state = 'settled', settling_until = NULL, settled_micros = ?, settled_at = ?, reference = ? WHERE id = ?",
    outcome.micros,
    now,
    outcome.transaction,
    id,
  );
  return settledOf(paymentRow(sql, id)!);
}
