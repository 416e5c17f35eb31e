/**
 * Webhook subscriptions of an environment: an endpoint URL, the event types it wants and the secret its deliveries
 * are signed with. The platform makes the secret (Standard Webhooks: `whsec_` + base64 of random bytes), returns it
 * once and keeps it encrypted with SECRETS_KEY.
 */
import { ApiError } from "../errors";
import { randomToken } from "../lib/crypto";
import { encodeBase64 } from "../lib/base64";
import { nowIso } from "../lib/ids";
import { decryptSecret, encryptSecret } from "../lib/secrets";
import { forgetSubscriptions } from "./publish";

export interface WebhookSubscription {
  id: string;
  environmentId: string;
  url: string;
  description: string | null;
  eventTypes: string[];
  thresholds: number[];
  enabled: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface SubscriptionInput {
  url: string;
  eventTypes: string[];
  thresholds?: number[];
  description?: string | null;
  enabled?: boolean;
}

/** Endpoints an operator may allow over plain http (local development and tests only). */
export interface UrlPolicy {
  allowInsecureLocalhost: boolean;
}

export const urlPolicyOf = (env: { WEBHOOKS_ALLOW_INSECURE_LOCALHOST?: string }): UrlPolicy => ({
  allowInsecureLocalhost: env.WEBHOOKS_ALLOW_INSECURE_LOCALHOST === "true",
});

const DEFAULT_THRESHOLDS = [80];
const SECRET_BYTES = 32;
const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** `whsec_` + base64 of 32 random bytes. */
export function newSigningSecret(): string {
  return `whsec_${encodeBase64(crypto.getRandomValues(new Uint8Array(SECRET_BYTES)))}`;
}

/**
 * An endpoint the platform may post to: https to a public host name or address; plain http only to a loopback host
 * where the operator allows it. No credentials in the URL (they would be logged and shown back); no private,
 * loopback or link-local address literals over https (the platform's own network is no webhook receiver).
 */
export function checkEndpointUrl(raw: string, policy: UrlPolicy): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ApiError("validation_failed", "url must be an absolute URL such as https://hooks.example.com/platform");
  }
  if (url.username || url.password) throw new ApiError("validation_failed", "url must not carry credentials: authenticate deliveries by their signature");
  const host = url.hostname.toLowerCase();
  if (url.protocol === "http:") {
    if (policy.allowInsecureLocalhost && (LOOPBACK_HOSTS.has(host) || host.endsWith(".localhost"))) return url.toString();
    throw new ApiError("validation_failed", "url must use https (plain http is allowed only to localhost, where the operator enables WEBHOOKS_ALLOW_INSECURE_LOCALHOST)");
  }
  if (url.protocol !== "https:") throw new ApiError("validation_failed", "url must use https");
  if (isPrivateAddress(host)) throw new ApiError("validation_failed", `url must name a public host: ${host} is a private, loopback or link-local address`);
  return url.toString();
}

function isPrivateAddress(host: string): boolean {
  if (host === "localhost" || host.endsWith(".localhost")) return true;
  const ipv4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (ipv4) {
    const [a, b] = [Number(ipv4[1]), Number(ipv4[2])];
    return a === 0 || a === 10 || a === 127 || (a === 169 && b === 254) || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127) || a >= 224;
  }
  if (host.startsWith("[")) {
    const ipv6 = host.slice(1, -1);
    // Loopback, unspecified, unique-local (fc00::/7), link-local (fe80::/10) and IPv4-mapped addresses.
    return ipv6 === "::1" || ipv6 === "::" || /^f[cd]/.test(ipv6) || /^fe[89ab]/.test(ipv6) || ipv6.startsWith("::ffff:");
  }
  return false;
}

type Row = {
  id: string;
  environment_id: string;
  url: string;
  description: string | null;
  event_types: string;
  thresholds: string;
  enabled: number;
  created_at: string;
  updated_at: string;
};

const fromRow = (row: Row): WebhookSubscription => ({
  id: row.id,
  environmentId: row.environment_id,
  url: row.url,
  description: row.description,
  eventTypes: JSON.parse(row.event_types) as string[],
  thresholds: JSON.parse(row.thresholds) as number[],
  enabled: row.enabled === 1,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

const COLUMNS = "id, environment_id, url, description, event_types, thresholds, enabled, created_at, updated_at";
const uniqueSorted = <T>(values: T[]) => [...new Set(values)].sort();

export async function createSubscription(
  db: D1Database,
  secretsKey: string,
  environment: { id: string; organizationId: string },
  input: SubscriptionInput,
  policy: UrlPolicy,
): Promise<{ subscription: WebhookSubscription; secret: string }> {
  const url = checkEndpointUrl(input.url, policy);
  const secret = newSigningSecret();
  const now = nowIso();
  const subscription: WebhookSubscription = {
    id: `wh_${randomToken(16)}`,
    environmentId: environment.id,
    url,
    description: input.description ?? null,
    eventTypes: input.eventTypes.includes("*") ? ["*"] : uniqueSorted(input.eventTypes),
    thresholds: uniqueSorted(input.thresholds ?? DEFAULT_THRESHOLDS).sort((a, b) => a - b),
    enabled: input.enabled ?? true,
    createdAt: now,
    updatedAt: now,
  };
  await db
    .prepare(
      `INSERT INTO webhook_subscriptions (id, organization_id, environment_id, url, description, event_types, thresholds, enabled, secret, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    )
    .bind(
      subscription.id,
      environment.organizationId,
      environment.id,
      url,
      subscription.description,
      JSON.stringify(subscription.eventTypes),
      JSON.stringify(subscription.thresholds),
      subscription.enabled ? 1 : 0,
      await encryptSecret(secretsKey, secret),
      now,
      now,
    )
    .run();
  forgetSubscriptions(environment.id);
  return { subscription, secret };
}

export async function listSubscriptions(db: D1Database, environmentId: string): Promise<WebhookSubscription[]> {
  const { results } = await db.prepare(`SELECT ${COLUMNS} FROM webhook_subscriptions WHERE environment_id = ? ORDER BY created_at, id`).bind(environmentId).all<Row>();
  return results.map(fromRow);
}

/** The subscription of this environment (another environment's id is a 404). */
export async function getSubscription(db: D1Database, environmentId: string, id: string): Promise<WebhookSubscription> {
  const row = await db.prepare(`SELECT ${COLUMNS} FROM webhook_subscriptions WHERE id = ? AND environment_id = ?`).bind(id, environmentId).first<Row>();
  if (!row) throw new ApiError("not_found", `Webhook subscription ${id} not found`);
  return fromRow(row);
}

export async function updateSubscription(
  db: D1Database,
  environmentId: string,
  id: string,
  changes: Partial<SubscriptionInput>,
  policy: UrlPolicy,
): Promise<WebhookSubscription> {
  const current = await getSubscription(db, environmentId, id);
  const next: WebhookSubscription = {
    ...current,
    ...(changes.url !== undefined ? { url: checkEndpointUrl(changes.url, policy) } : {}),
    ...(changes.description !== undefined ? { description: changes.description } : {}),
    ...(changes.eventTypes !== undefined ? { eventTypes: changes.eventTypes.includes("*") ? ["*"] : uniqueSorted(changes.eventTypes) } : {}),
    ...(changes.thresholds !== undefined ? { thresholds: uniqueSorted(changes.thresholds).sort((a, b) => a - b) } : {}),
    ...(changes.enabled !== undefined ? { enabled: changes.enabled } : {}),
    updatedAt: nowIso(),
  };
  await db
    .prepare("UPDATE webhook_subscriptions SET url = ?, description = ?, event_types = ?, thresholds = ?, enabled = ?, updated_at = ? WHERE id = ? AND environment_id = ?")
    .bind(next.url, next.description, JSON.stringify(next.eventTypes), JSON.stringify(next.thresholds), next.enabled ? 1 : 0, next.updatedAt, id, environmentId)
    .run();
  forgetSubscriptions(environmentId);
  return next;
}

/** Deletes the subscription; its deliveries stay listed (those not sent yet are dropped when their turn comes). */
export async function deleteSubscription(db: D1Database, environmentId: string, id: string): Promise<void> {
  const result = await db.prepare("DELETE FROM webhook_subscriptions WHERE id = ? AND environment_id = ?").bind(id, environmentId).run();
  forgetSubscriptions(environmentId);
  if (result.meta.changes === 0) throw new ApiError("not_found", `Webhook subscription ${id} not found`);
}

/** A new signing secret; the old one stops signing at once. */
export async function rotateSubscriptionSecret(db: D1Database, secretsKey: string, environmentId: string, id: string): Promise<{ subscription: WebhookSubscription; secret: string }> {
  const secret = newSigningSecret();
  const updatedAt = nowIso();
  const result = await db
    .prepare("UPDATE webhook_subscriptions SET secret = ?, updated_at = ? WHERE id = ? AND environment_id = ?")
    .bind(await encryptSecret(secretsKey, secret), updatedAt, id, environmentId)
    .run();
  if (result.meta.changes === 0) throw new ApiError("not_found", `Webhook subscription ${id} not found`);
  return { subscription: await getSubscription(db, environmentId, id), secret };
}

/** What the consumer needs to send a delivery: the endpoint and its decrypted secret (null when deleted). */
export async function endpointOf(db: D1Database, secretsKey: string, id: string): Promise<{ url: string; secret: string; enabled: boolean } | null> {
  const row = await db.prepare("SELECT url, secret, enabled FROM webhook_subscriptions WHERE id = ?").bind(id).first<{ url: string; secret: string; enabled: number }>();
  if (!row) return null;
  return { url: row.url, secret: await decryptSecret(secretsKey, row.secret), enabled: row.enabled === 1 };
}
