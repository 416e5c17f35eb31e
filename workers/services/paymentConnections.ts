/**
 * Each environment's connection to its payment provider (Stripe): the secret key and webhook signing secret, encrypted
 * at rest with SECRETS_KEY like workflow secrets. The admin API reads metadata only (`getPaymentConnection`); the
 * secrets leave this module decrypted only through `stripeCredentials`, for server-side calls to Stripe.
 *
 * A preview environment takes test-mode keys only and a production environment live-mode keys only, so a preview
 * environment can never charge real cards and live never points at test data.
 */
import { ApiError } from "../errors";
import { nowIso } from "../lib/ids";
import { decryptSecret, encryptSecret } from "../lib/secrets";
import { DEFAULT_LIFECYCLE_POLICY, type LifecyclePolicy } from "../payments/lifecycle";
import type { Environment } from "./tenancy";

export type PaymentMode = "test" | "live";

/** A secret (`sk_`) or restricted (`rk_`) Stripe API key; publishable keys (`pk_`) cannot act server-side. */
export const STRIPE_SECRET_KEY_PATTERN = /^(sk|rk)_(test|live)_[A-Za-z0-9]{8,247}$/;
/** A webhook endpoint's signing secret, as Stripe's dashboard and CLI show it. */
export const STRIPE_WEBHOOK_SECRET_PATTERN = /^whsec_[A-Za-z0-9+/=]{8,250}$/;

export interface PaymentConnectionInfo {
  provider: "stripe";
  mode: PaymentMode;
  /** The key's type and mode with its last four characters, e.g. `sk_test_…abcd`: enough to tell keys apart. */
  keyHint: string;
  webhookSecretSet: true;
  /** Path, below the platform's base URL, of the endpoint to register for the environment's Stripe webhooks. */
  webhookUrl: string;
  /** What past_due, refunds and disputes do to access. */
  policy: LifecyclePolicy;
  /** How the environment's Checkout and billing-portal sessions are opened. */
  checkout: CheckoutSettings;
  connectedAt: string;
  updatedAt: string;
}

/** How an environment opens Checkout and billing-portal sessions. */
export interface CheckoutSettings {
  /**
   * Exact origins (`https://shop.example`) that success, cancel and return URLs must belong to, so a checkout can only
   * send the buyer back to the customer's own site. Empty: every URL is refused until they are set.
   */
  allowedOrigins: string[];
  /** Stripe Tax computes and collects tax on every Checkout Session (it must be set up in the Stripe account). */
  automaticTax: boolean;
}

export const DEFAULT_CHECKOUT_SETTINGS: CheckoutSettings = { allowedOrigins: [], automaticTax: true };
export const MAX_ALLOWED_ORIGINS = 20;

/** Nothing but `scheme://host[:port]`: no user info, path (not even `/`), query or fragment. */
const BARE_ORIGIN = /^[a-z][a-z0-9+.-]*:\/\/[^/?#@\\\s]+$/i;
const DEVELOPMENT_HOSTS: ReadonlySet<string> = new Set(["localhost", "127.0.0.1"]);

/**
 * Why `value` cannot be an allowed checkout origin, or null when it can: an exact `https://` origin, or `http://` on
 * localhost or 127.0.0.1 for development (a buyer's browser must never be sent back over plain HTTP elsewhere).
 */
export function checkoutOriginProblem(value: string): string | null {
  const url = BARE_ORIGIN.test(value) ? URL.parse(value) : null;
  if (!url) return "must be an origin: scheme://host[:port], without a path (not even /), query or fragment";
  if (url.protocol === "https:") return null;
  if (url.protocol === "http:" && DEVELOPMENT_HOSTS.has(url.hostname)) return null;
  return "must be an https:// origin (http:// only for localhost or 127.0.0.1)";
}

/** The origins as browsers write them (`new URL(x).origin`: lowercase host, no default port), once each. */
const normalizedOrigins = (origins: readonly string[]): string[] => [...new Set(origins.map((origin) => new URL(origin).origin))];

export interface StripeCredentials {
  mode: PaymentMode;
  policy: LifecyclePolicy;
  checkout: CheckoutSettings;
  secretKey: string;
  webhookSecret: string;
}

/**
 * The stored secrets could not be decrypted: SECRETS_KEY changed since they were written, or the row was damaged.
 * Not a server fault the caller can retry: the environment needs its Stripe connection set again.
 */
export class PaymentConnectionUnreadableError extends Error {
  constructor(
    readonly environmentId: string,
    options?: { cause: unknown },
  ) {
    super(`The Stripe connection of ${environmentId} cannot be decrypted (was SECRETS_KEY changed?): connect Stripe again`, options);
    this.name = "PaymentConnectionUnreadableError";
  }
}

interface ConnectionRow {
  environment_id: string;
  mode: PaymentMode;
  key_hint: string;
  secret_key_encrypted: string;
  webhook_secret_encrypted: string;
  past_due_grace_hours: number;
  revoke_on_refund: number;
  revoke_on_dispute: number;
  allowed_origins: string;
  automatic_tax: number;
  connected_at: string;
  updated_at: string;
}

const MODE_OF_ENVIRONMENT: Record<Environment["type"], PaymentMode> = { preview: "test", production: "live" };

export const stripeWebhookPath = (environmentId: string): string => `/api/v1/envs/${environmentId}/payments/stripe/webhooks`;

function modeOfKey(secretKey: string): PaymentMode {
  const match = STRIPE_SECRET_KEY_PATTERN.exec(secretKey);
  if (!match) throw new ApiError("bad_request", "secretKey must be a Stripe secret or restricted key (sk_test_…, rk_test_…, sk_live_… or rk_live_…)");
  return match[2] as PaymentMode;
}

/** `sk_test_`, `rk_live_`…: the key's type and mode, then its last four characters. */
const keyHintOf = (secretKey: string): string => `${secretKey.slice(0, "sk_test_".length)}…${secretKey.slice(-4)}`;

const policyOf = (row: ConnectionRow): LifecyclePolicy => ({
  pastDueGraceHours: row.past_due_grace_hours,
  revokeOnRefund: row.revoke_on_refund === 1,
  revokeOnDispute: row.revoke_on_dispute === 1,
});

const checkoutOf = (row: ConnectionRow): CheckoutSettings => ({
  allowedOrigins: JSON.parse(row.allowed_origins) as string[],
  automaticTax: row.automatic_tax === 1,
});

const CONNECTION_COLUMNS =
  "environment_id, mode, key_hint, secret_key_encrypted, webhook_secret_encrypted, past_due_grace_hours, revoke_on_refund, revoke_on_dispute, allowed_origins, automatic_tax, connected_at, updated_at";

function infoOf(row: ConnectionRow): PaymentConnectionInfo {
  return {
    provider: "stripe",
    mode: row.mode,
    keyHint: row.key_hint,
    webhookSecretSet: true,
    webhookUrl: stripeWebhookPath(row.environment_id),
    policy: policyOf(row),
    checkout: checkoutOf(row),
    connectedAt: row.connected_at,
    updatedAt: row.updated_at,
  };
}

/**
 * Connects the environment to Stripe, or replaces its keys; refuses a key whose mode does not match the environment.
 * Policy and checkout fields left out keep their stored value (the defaults on a first connection).
 */
export async function putStripeConnection(
  db: D1Database,
  secretsKey: string,
  environment: Environment,
  input: { secretKey: string; webhookSecret: string; policy?: Partial<LifecyclePolicy>; checkout?: Partial<CheckoutSettings> },
): Promise<PaymentConnectionInfo> {
  const mode = modeOfKey(input.secretKey);
  const expected = MODE_OF_ENVIRONMENT[environment.type];
  if (mode !== expected) {
    throw new ApiError(
      "bad_request",
      `A ${environment.type} environment takes Stripe ${expected}-mode keys (sk_${expected}_… or rk_${expected}_…), not a ${mode}-mode key: ` +
        (expected === "test" ? "live keys belong to a production environment" : "test keys belong to a preview environment"),
    );
  }
  if (!STRIPE_WEBHOOK_SECRET_PATTERN.test(input.webhookSecret)) throw new ApiError("bad_request", "webhookSecret must be a Stripe webhook signing secret (whsec_…)");
  const [secretKeyEncrypted, webhookSecretEncrypted] = await Promise.all([encryptSecret(secretsKey, input.secretKey), encryptSecret(secretsKey, input.webhookSecret)]);
  const now = nowIso();
  const policy = input.policy ?? {};
  const checkout = input.checkout ?? {};
  const flag = (value: boolean | undefined) => (value === undefined ? null : value ? 1 : 0);
  // Reconnecting keeps the first connection's time: connectedAt says since when the environment takes payments.
  const row = await db
    .prepare(
      `INSERT INTO payment_connections
         (environment_id, organization_id, provider, secret_key_encrypted, webhook_secret_encrypted, mode, key_hint,
          past_due_grace_hours, revoke_on_refund, revoke_on_dispute, allowed_origins, automatic_tax, connected_at, updated_at)
       VALUES (?1, ?2, 'stripe', ?3, ?4, ?5, ?6, COALESCE(?7, ?10), COALESCE(?8, ?11), COALESCE(?9, ?12),
               COALESCE(?14, ?16), COALESCE(?15, ?17), ?13, ?13)
       ON CONFLICT (environment_id) DO UPDATE SET
         secret_key_encrypted = excluded.secret_key_encrypted, webhook_secret_encrypted = excluded.webhook_secret_encrypted,
         mode = excluded.mode, key_hint = excluded.key_hint, updated_at = excluded.updated_at,
         past_due_grace_hours = COALESCE(?7, payment_connections.past_due_grace_hours),
         revoke_on_refund = COALESCE(?8, payment_connections.revoke_on_refund),
         revoke_on_dispute = COALESCE(?9, payment_connections.revoke_on_dispute),
         allowed_origins = COALESCE(?14, payment_connections.allowed_origins),
         automatic_tax = COALESCE(?15, payment_connections.automatic_tax)
       RETURNING ${CONNECTION_COLUMNS}`,
    )
    .bind(
      environment.id,
      environment.organizationId,
      secretKeyEncrypted,
      webhookSecretEncrypted,
      mode,
      keyHintOf(input.secretKey),
      policy.pastDueGraceHours ?? null,
      flag(policy.revokeOnRefund),
      flag(policy.revokeOnDispute),
      DEFAULT_LIFECYCLE_POLICY.pastDueGraceHours,
      flag(DEFAULT_LIFECYCLE_POLICY.revokeOnRefund),
      flag(DEFAULT_LIFECYCLE_POLICY.revokeOnDispute),
      now,
      checkout.allowedOrigins === undefined ? null : JSON.stringify(normalizedOrigins(checkout.allowedOrigins)),
      flag(checkout.automaticTax),
      JSON.stringify(DEFAULT_CHECKOUT_SETTINGS.allowedOrigins),
      flag(DEFAULT_CHECKOUT_SETTINGS.automaticTax),
    )
    .first<ConnectionRow>();
  if (!row) throw new Error("payment_connections upsert returned no row");
  return infoOf(row);
}

async function connectionRow(db: D1Database, environmentId: string): Promise<ConnectionRow | null> {
  return db
    .prepare(`SELECT ${CONNECTION_COLUMNS} FROM payment_connections WHERE environment_id = ? AND provider = 'stripe'`)
    .bind(environmentId)
    .first<ConnectionRow>();
}

/** The environment's Stripe connection without its secrets, or null when it has none. */
export async function getPaymentConnection(db: D1Database, environmentId: string): Promise<PaymentConnectionInfo | null> {
  const row = await connectionRow(db, environmentId);
  return row ? infoOf(row) : null;
}

/** Disconnects the environment from Stripe; false when it was not connected. */
export async function deletePaymentConnection(db: D1Database, environmentId: string): Promise<boolean> {
  const result = await db.prepare("DELETE FROM payment_connections WHERE environment_id = ?").bind(environmentId).run();
  return result.meta.changes > 0;
}

/**
 * The environment's decrypted Stripe secrets, for server-side calls (the payment gateway), or null when it has no
 * connection. Never hand these to a response or a log. Throws PaymentConnectionUnreadableError when they cannot be
 * decrypted.
 */
export async function stripeCredentials(db: D1Database, secretsKey: string, environmentId: string): Promise<StripeCredentials | null> {
  const row = await connectionRow(db, environmentId);
  if (!row) return null;
  try {
    const [secretKey, webhookSecret] = await Promise.all([decryptSecret(secretsKey, row.secret_key_encrypted), decryptSecret(secretsKey, row.webhook_secret_encrypted)]);
    return { mode: row.mode, policy: policyOf(row), checkout: checkoutOf(row), secretKey, webhookSecret };
  } catch (error) {
    throw new PaymentConnectionUnreadableError(environmentId, { cause: error });
  }
}
