/**
 * Each environment's x402 settings: where agents' stablecoin payments go (network, asset, recipient) and which
 * facilitator verifies and settles them. Nothing here is a secret — the facilitator holds no key of the tenant's and
 * the recipient is a public address — so the admin API reads back what it wrote.
 *
 * The decision path reads the settings through a short per-isolate cache (an environment without settings is cached
 * too: most environments never take x402, and their crawler decisions must not each cost a D1 read).
 */
import { LRUCache } from "lru-cache";
import { z } from "zod";
import { ApiError, validationError } from "../errors";
import { EXPIRE_ON_READ } from "../lib/cacheExpiry";
import { nowIso } from "../lib/ids";
import { parseFacilitatorUrl } from "../payments/x402Facilitator";
import type { Environment } from "./tenancy";

export interface X402Settings {
  /** The facilitator's base URL, ending with `/` (its /verify and /settle are below it). */
  facilitatorUrl: string;
  /** CAIP-2 chain id, e.g. `eip155:8453` (Base) or `eip155:84532` (Base Sepolia). */
  network: string;
  /** The token paid in: a 6-decimal USD stablecoin, so a USD price in micro-units is its amount in atomic units. */
  asset: string;
  /** The address that receives the payments. */
  payTo: string;
  /** How long a client's signed authorization must stay valid for the payment to be settled. */
  maxTimeoutSeconds: number;
  /** Scheme data every offer carries (e.g. an EVM token's EIP-712 domain, `{name: "USDC", version: "2"}`). */
  extra?: Record<string, unknown>;
  updatedAt: string;
}

export type X402SettingsInput = Omit<X402Settings, "updatedAt" | "maxTimeoutSeconds"> & { maxTimeoutSeconds?: number };

/** A CAIP-2 chain id, `namespace:reference`: the form x402 version 2 names networks in (payments/x402.ts). */
export const CAIP2_NETWORK_PATTERN = /^[-a-z0-9]{3,8}:[-_a-zA-Z0-9]{1,32}$/;
/** An address or token identifier: printable ASCII without spaces (EVM hex, Solana base58…). */
export const X402_ADDRESS_PATTERN = /^[\x21-\x7e]{1,256}$/;
export const MAX_FACILITATOR_URL_LENGTH = 2048;
export const DEFAULT_MAX_TIMEOUT_SECONDS = 60;
export const MAX_TIMEOUT_SECONDS = 3600;
/** `extra` travels in every PAYMENT-REQUIRED header: kept small. */
export const MAX_EXTRA_BYTES = 1024;

const InputSchema = z.object({
  facilitatorUrl: z.string().min(1).max(MAX_FACILITATOR_URL_LENGTH),
  network: z.string().regex(CAIP2_NETWORK_PATTERN, "must be a CAIP-2 chain id such as eip155:8453"),
  asset: z.string().regex(X402_ADDRESS_PATTERN, "must be 1-256 printable characters without spaces"),
  payTo: z.string().regex(X402_ADDRESS_PATTERN, "must be 1-256 printable characters without spaces"),
  maxTimeoutSeconds: z.number().int().min(1).max(MAX_TIMEOUT_SECONDS).optional(),
  extra: z
    .record(z.string(), z.unknown())
    .refine((extra) => new TextEncoder().encode(JSON.stringify(extra)).byteLength <= MAX_EXTRA_BYTES, `must be at most ${MAX_EXTRA_BYTES} bytes of JSON`)
    .optional(),
});

interface SettingsRow {
  facilitator_url: string;
  network: string;
  asset: string;
  pay_to: string;
  max_timeout_seconds: number;
  extra: string | null;
  updated_at: string;
}

const COLUMNS = "facilitator_url, network, asset, pay_to, max_timeout_seconds, extra, updated_at";

const settingsOf = (row: SettingsRow): X402Settings => ({
  facilitatorUrl: row.facilitator_url,
  network: row.network,
  asset: row.asset,
  payTo: row.pay_to,
  maxTimeoutSeconds: row.max_timeout_seconds,
  ...(row.extra === null ? {} : { extra: JSON.parse(row.extra) as Record<string, unknown> }),
  updatedAt: row.updated_at,
});

const SETTINGS_TTL_MS = 10_000;
/** Environment id → its settings, or null when it has none. */
const cache = new LRUCache<string, { settings: X402Settings | null }>({ max: 5_000, ttl: SETTINGS_TTL_MS, ...EXPIRE_ON_READ });

/**
 * Sets the environment's x402 settings, replacing any it had (`maxTimeoutSeconds` defaults to 60, `extra` to none).
 * `allowLoopbackFacilitator`: a facilitator on plain http at 127.0.0.1, [::1] or localhost is accepted (local
 * development and tests only: the operator's X402_ALLOW_LOOPBACK_FACILITATOR); otherwise it must be https.
 */
export async function putX402Settings(
  db: D1Database,
  environment: Pick<Environment, "id" | "organizationId">,
  input: X402SettingsInput,
  options: { allowLoopbackFacilitator: boolean },
): Promise<X402Settings> {
  const parsed = InputSchema.safeParse(input);
  if (!parsed.success) throw validationError(parsed.error);
  const { network, asset, payTo, extra } = parsed.data;
  const facilitator = parseFacilitatorUrl(parsed.data.facilitatorUrl, { allowInsecureLoopback: options.allowLoopbackFacilitator });
  if (!facilitator.ok) {
    const message = options.allowLoopbackFacilitator ? facilitator.message : `${facilitator.message} (plain http to loopback is not enabled on this platform)`;
    throw new ApiError("validation_failed", `Invalid request: facilitatorUrl: ${message}`, [{ path: "facilitatorUrl", message }]);
  }
  const row = await db
    .prepare(
      `INSERT INTO x402_settings (environment_id, organization_id, facilitator_url, network, asset, pay_to, max_timeout_seconds, extra, updated_at)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
       ON CONFLICT (environment_id) DO UPDATE SET
         facilitator_url = excluded.facilitator_url, network = excluded.network, asset = excluded.asset, pay_to = excluded.pay_to,
         max_timeout_seconds = excluded.max_timeout_seconds, extra = excluded.extra, updated_at = excluded.updated_at
       RETURNING ${COLUMNS}`,
    )
    .bind(
      environment.id,
      environment.organizationId,
      facilitator.url.href,
      network,
      asset,
      payTo,
      parsed.data.maxTimeoutSeconds ?? DEFAULT_MAX_TIMEOUT_SECONDS,
      extra === undefined ? null : JSON.stringify(extra),
      nowIso(),
    )
    .first<SettingsRow>();
  if (!row) throw new Error("x402_settings upsert returned no row");
  cache.delete(environment.id);
  return settingsOf(row);
}

/** The environment's x402 settings, read from D1 (the admin API's view: always current). */
export async function readX402Settings(db: D1Database, environmentId: string): Promise<X402Settings | null> {
  const row = await db.prepare(`SELECT ${COLUMNS} FROM x402_settings WHERE environment_id = ?`).bind(environmentId).first<SettingsRow>();
  return row ? settingsOf(row) : null;
}

/**
 * The environment's x402 settings for the decision path, or null when it takes no x402 payment. Cached per isolate
 * for SETTINGS_TTL_MS: a change made through another isolate reaches this one within that time.
 */
export async function getX402Settings(db: D1Database, environmentId: string): Promise<X402Settings | null> {
  const cached = cache.get(environmentId);
  if (cached) return cached.settings;
  const settings = await readX402Settings(db, environmentId);
  cache.set(environmentId, { settings });
  return settings;
}

/** Removes the environment's x402 settings; false when it had none. */
export async function deleteX402Settings(db: D1Database, environmentId: string): Promise<boolean> {
  const result = await db.prepare("DELETE FROM x402_settings WHERE environment_id = ?").bind(environmentId).run();
  cache.delete(environmentId);
  return result.meta.changes > 0;
}
