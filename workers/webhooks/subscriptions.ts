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
  /** Decision and payment events (user.added, plan.changed, counters) of signed-in identities only. */
  authenticatedOnly: boolean;
  enabled: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface SubscriptionInput {
  url: string;
  eventTypes: string[];
  thresholds?: number[];
  authenticatedOnly?: boolean;
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
/** Per environment: each subscription adds a delivery row per event, and its lookup rides on every decision. */
export const MAX_SUBSCRIPTIONS_PER_ENVIRONMENT = 20;
/** How long a rotated-out secret keeps signing next to the new one: the queue's retries span about 4 hours. */
export const PREVIOUS_SECRET_LIFETIME_MS = 24 * 60 * 60 * 1000;

/** `whsec_` + base64 of 32 random bytes. */
export function newSigningSecret(): string {
  return `whsec_${encodeBase64(crypto.getRandomValues(new Uint8Array(SECRET_BYTES)))}`;
}

/**
 * An endpoint the platform may post to: https to a public host name or address; plain http only to a loopback host
 * where the operator allows it. No credentials in the URL (they would be logged and shown back); no address literal
 * of a private, loopback, link-local, shared, reserved or multicast range over https, nor an IPv6 form embedding one
 * (the platform's own network is no webhook receiver). Any port: receivers listen on 8443 and the like. A host name
 * is not resolved here: Workers' fetch() does not reach private networks anyway.
 */
export function checkEndpointUrl(raw: string, policy: UrlPolicy): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ApiError("validation_failed", "url must be an absolute URL such as https://hooks.example.com/platform");
  }
  if (url.username || url.password) throw new ApiError("validation_failed", "url must not carry credentials: authenticate deliveries by their signature");
  // `localhost.` is `localhost`: a fully qualified name's one trailing dot changes nothing about where it points.
  const host = url.hostname.toLowerCase().replace(/\.$/, "");
  if (url.protocol === "http:") {
    if (policy.allowInsecureLocalhost && (LOOPBACK_HOSTS.has(host) || host.endsWith(".localhost"))) return url.toString();
    throw new ApiError("validation_failed", "url must use https (plain http is allowed only to localhost, where the operator enables WEBHOOKS_ALLOW_INSECURE_LOCALHOST)");
  }
  if (url.protocol !== "https:") throw new ApiError("validation_failed", "url must use https");
  if (isPrivateAddress(host)) throw new ApiError("validation_failed", `url must name a public host: ${host} is a private, loopback or link-local address`);
  return url.toString();
}

/**
 * Whether the host is a name or address literal no webhook may go to. The URL parser has already normalised address
 * literals: IPv4 in dotted decimal (`0x7f.1` is `127.0.0.1`), IPv6 in lower-case hex groups (`[::127.0.0.1]` is
 * `[::7f00:1]`).
 */
export function isPrivateAddress(host: string): boolean {
  if (host === "localhost" || host.endsWith(".localhost")) return true;
  const ipv4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (ipv4) return isPrivateIpv4(ipv4.slice(1, 5).map(Number));
  if (host.startsWith("[")) {
    const groups = ipv6Groups(host.slice(1, -1));
    return groups === null || isPrivateIpv6(groups);
  }
  return false;
}

function isPrivateIpv4([a = 0, b = 0, c = 0]: number[]): boolean {
  return (
    a === 0 || // "this network" (0.0.0.0/8)
    a === 10 ||
    a === 127 ||
    (a === 100 && b >= 64 && b <= 127) || // carrier-grade NAT (100.64.0.0/10)
    (a === 169 && b === 254) ||
    (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 0 && c === 0) || // IETF protocol assignments (192.0.0.0/24)
    (a === 192 && b === 168) ||
    (a === 198 && (b === 18 || b === 19)) || // benchmarking (198.18.0.0/15)
    a >= 224 // multicast (224.0.0.0/4), reserved (240.0.0.0/4) and broadcast
  );
}

/** The 8 groups of an IPv6 address as the URL parser writes it (hex groups, at most one `::`); null if not that. */
function ipv6Groups(text: string): number[] | null {
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const parse = (part: string | undefined) => (part ? part.split(":").map((group) => (/^[0-9a-f]{1,4}$/.test(group) ? parseInt(group, 16) : NaN)) : []);
  const head = parse(halves[0]);
  const tail = parse(halves[1]);
  const groups = halves.length === 2 ? [...head, ...Array<number>(8 - head.length - tail.length).fill(0), ...tail] : head;
  return groups.length === 8 && groups.every((group) => Number.isInteger(group)) ? groups : null;
}

function isPrivateIpv6(groups: number[]): boolean {
  const [g0 = 0, g1 = 0, g2 = 0, g3 = 0, g4 = 0, g5 = 0, g6 = 0, g7 = 0] = groups;
  const embedded = (high: number, low: number) => [high >> 8, high & 0xff, low >> 8, low & 0xff];
  const upperZero = g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0;
  // Unspecified, loopback and IPv4-compatible (::/96, deprecated) as well as IPv4-mapped (::ffff:0:0/96): all of
  // ::/80 but NAT64 below — an IPv4 address reached as IPv6 goes to the platform's IPv4 network.
  if (upperZero && (g5 === 0 || g5 === 0xffff)) return true;
  // NAT64 (64:ff9b::/96) embeds the IPv4 address it reaches; the local-use prefix 64:ff9b:1::/48 is private as a whole.
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 0 && g3 === 0 && g4 === 0 && g5 === 0) return isPrivateIpv4(embedded(g6, g7));
  if (g0 === 0x64 && g1 === 0xff9b && g2 === 1) return true;
  // 6to4 (2002::/16) embeds an IPv4 address in its next 32 bits.
  if (g0 === 0x2002) return isPrivateIpv4(embedded(g1, g2));
  return (
    (g0 & 0xfe00) === 0xfc00 || // unique local (fc00::/7)
    (g0 & 0xffc0) === 0xfe80 || // link-local (fe80::/10)
    (g0 & 0xffc0) === 0xfec0 || // site-local (fec0::/10, deprecated)
    (g0 & 0xff00) === 0xff00 // multicast (ff00::/8)
  );
}

type Row = {
  id: string;
  environment_id: string;
  url: string;
  description: string | null;
  event_types: string;
  thresholds: string;
  authenticated_only: number;
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
  authenticatedOnly: row.authenticated_only === 1,
  enabled: row.enabled === 1,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

const COLUMNS = "id, environment_id, url, description, event_types, thresholds, authenticated_only, enabled, created_at, updated_at";
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
    authenticatedOnly: input.authenticatedOnly ?? false,
    enabled: input.enabled ?? true,
    createdAt: now,
    updatedAt: now,
  };
  // The cap is checked by the insert itself: creates racing each other cannot pass it together.
  const inserted = await db
    .prepare(
      `INSERT INTO webhook_subscriptions (id, organization_id, environment_id, url, description, event_types, thresholds, authenticated_only, enabled, secret, created_at, updated_at)
       SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12
       WHERE (SELECT COUNT(*) FROM webhook_subscriptions WHERE environment_id = ?3) < ${MAX_SUBSCRIPTIONS_PER_ENVIRONMENT}`,
    )
    .bind(
      subscription.id,
      environment.organizationId,
      environment.id,
      url,
      subscription.description,
      JSON.stringify(subscription.eventTypes),
      JSON.stringify(subscription.thresholds),
      subscription.authenticatedOnly ? 1 : 0,
      subscription.enabled ? 1 : 0,
      await encryptSecret(secretsKey, secret),
      now,
      now,
    )
    .run();
  if (inserted.meta.changes === 0) {
    throw new ApiError(
      "conflict",
      `This environment has ${MAX_SUBSCRIPTIONS_PER_ENVIRONMENT} webhook subscriptions, the most it may have: delete one, or subscribe an existing endpoint to more event types`,
    );
  }
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
    ...(changes.authenticatedOnly !== undefined ? { authenticatedOnly: changes.authenticatedOnly } : {}),
    ...(changes.enabled !== undefined ? { enabled: changes.enabled } : {}),
    updatedAt: nowIso(),
  };
  await db
    .prepare(
      "UPDATE webhook_subscriptions SET url = ?, description = ?, event_types = ?, thresholds = ?, authenticated_only = ?, enabled = ?, updated_at = ? WHERE id = ? AND environment_id = ?",
    )
    .bind(
      next.url,
      next.description,
      JSON.stringify(next.eventTypes),
      JSON.stringify(next.thresholds),
      next.authenticatedOnly ? 1 : 0,
      next.enabled ? 1 : 0,
      next.updatedAt,
      id,
      environmentId,
    )
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

/**
 * A new signing secret. The one it replaces keeps signing next to it for 24 hours (each delivery then carries both
 * signatures), so deliveries already queued or being retried verify whichever secret the receiver holds. Only one
 * secret is kept beside the current one: a rotation is refused (409) while the previous one still signs, since it
 * would drop that secret before its 24 hours are up.
 */
export async function rotateSubscriptionSecret(db: D1Database, secretsKey: string, environmentId: string, id: string): Promise<{ subscription: WebhookSubscription; secret: string }> {
  const secret = newSigningSecret();
  const updatedAt = nowIso();
  const previousExpiresAt = new Date(Date.parse(updatedAt) + PREVIOUS_SECRET_LIFETIME_MS).toISOString();
  // Checked by the update itself, so two rotations racing each other cannot both pass.
  const result = await db
    .prepare(
      `UPDATE webhook_subscriptions SET previous_secret = secret, previous_secret_expires_at = ?, secret = ?, updated_at = ?
       WHERE id = ? AND environment_id = ? AND (previous_secret_expires_at IS NULL OR previous_secret_expires_at <= ?)`,
    )
    .bind(previousExpiresAt, await encryptSecret(secretsKey, secret), updatedAt, id, environmentId, updatedAt)
    .run();
  if (result.meta.changes === 0) {
    const row = await db
      .prepare("SELECT previous_secret_expires_at FROM webhook_subscriptions WHERE id = ? AND environment_id = ?")
      .bind(id, environmentId)
      .first<{ previous_secret_expires_at: string | null }>();
    if (!row) throw new ApiError("not_found", `Webhook subscription ${id} not found`);
    throw new ApiError(
      "conflict",
      `Webhook subscription ${id} was rotated less than 24 hours ago: its previous secret signs until ${row.previous_secret_expires_at}, and rotating again now would drop it early. Rotate after that (a leaked secret: delete the subscription and create a new one)`,
    );
  }
  return { subscription: await getSubscription(db, environmentId, id), secret };
}

/**
 * What the consumer needs to send a delivery: the endpoint and its decrypted secrets — the current one, then the one
 * it replaced while that still signs (null when deleted).
 */
export async function endpointOf(db: D1Database, secretsKey: string, id: string): Promise<{ url: string; secrets: string[]; enabled: boolean } | null> {
  const row = await db
    .prepare("SELECT url, secret, previous_secret, previous_secret_expires_at, enabled FROM webhook_subscriptions WHERE id = ?")
    .bind(id)
    .first<{ url: string; secret: string; previous_secret: string | null; previous_secret_expires_at: string | null; enabled: number }>();
  if (!row) return null;
  const previousSigns = row.previous_secret !== null && row.previous_secret_expires_at !== null && Date.parse(row.previous_secret_expires_at) > Date.now();
  const secrets = [await decryptSecret(secretsKey, row.secret), ...(previousSigns ? [await decryptSecret(secretsKey, row.previous_secret!)] : [])];
  return { url: row.url, secrets, enabled: row.enabled === 1 };
}

/** Whether the subscription exists and is enabled (what a replay needs before it queues anything). */
export async function subscriptionState(db: D1Database, id: string): Promise<"enabled" | "disabled" | "deleted"> {
  const row = await db.prepare("SELECT enabled FROM webhook_subscriptions WHERE id = ?").bind(id).first<{ enabled: number }>();
  return !row ? "deleted" : row.enabled === 1 ? "enabled" : "disabled";
}
