/**
 * What a meter object keeps for agents (see storage-schema.md): the nonces of the Web Bot Auth signatures it has
 * accepted, so a captured signed request cannot be replayed while its signature is still valid, and the ledger of what
 * the identity was charged for priced requests (pay-per-crawl charges, x402 settlements). Plain functions over the
 * object's SQL, called inside the object's synchronous sections: each stays atomic with the call that makes it.
 */

export const AGENT_SCHEMA = `
  CREATE TABLE IF NOT EXISTS agent_nonces (nonce TEXT PRIMARY KEY, expires_at INTEGER NOT NULL, claim TEXT NOT NULL) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS agent_nonces_expires_at ON agent_nonces (expires_at);
  CREATE TABLE IF NOT EXISTS agent_charges (
    id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, method TEXT NOT NULL, currency TEXT NOT NULL,
    micros INTEGER NOT NULL, surface TEXT NOT NULL, resource TEXT, url TEXT, reference TEXT);
  CREATE INDEX IF NOT EXISTS agent_charges_created_at ON agent_charges (created_at);
`;
export const AGENT_SCHEMA_OBJECTS = ["agent_nonces", "agent_nonces_expires_at", "agent_charges", "agent_charges_created_at"];

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

/** Housekeeping (the object's alarm): expired nonces and charges past their retention. */
export function pruneAgentRows(sql: SqlStorage, now: number): { nonces: number; charges: number; remaining: number } {
  const nonces = sql.exec("DELETE FROM agent_nonces WHERE expires_at <= ?", now).rowsWritten;
  const charges = sql.exec("DELETE FROM agent_charges WHERE created_at < ?", now - AGENT_CHARGE_TTL_MS).rowsWritten;
  const remaining = sql.exec<{ n: number }>("SELECT (SELECT COUNT(*) FROM agent_nonces) + (SELECT COUNT(*) FROM agent_charges) AS n").one().n;
  return { nonces, charges, remaining };
}
