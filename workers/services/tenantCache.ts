/**
 * Per-isolate caches of what every request needs before it can decide: which key is this (an environment's API key
 * or an organization key), and which version does its environment serve. Entries live briefly (a revoked key or a
 * new deployment reaches other isolates within the TTL) and the writes of this isolate invalidate its own entries at
 * once.
 */
import { LRUCache, type Perf } from "lru-cache";
import { EXPIRE_ON_READ } from "../lib/cacheExpiry";
import { findActiveKeyByHash, hashApiKey, parseApiKey, type ApiKeyInfo } from "./apiKeys";
import { findActiveOrganizationKeyByHash, parseOrganizationKey, type OrganizationKeyInfo } from "./organizationKeys";
import { getEnvironmentWithTailLease, type Environment } from "./tenancy";

const KEY_TTL_MS = 30_000;
const ENVIRONMENT_TTL_MS = 5_000;

// A miss of a well-formed key is cached too (as `{ key: null }`: lru-cache holds no null values), so a flood of
// requests with a bad key costs one query per TTL; the key format bounds each entry's size.
const keysByRawKey = new LRUCache<string, { key: ApiKeyInfo | null }>({ max: 10_000, ttl: KEY_TTL_MS, ...EXPIRE_ON_READ });
// Organization keys the same way, with the same TTL: a revocation reaches every isolate within it.
const organizationKeysByRawKey = new LRUCache<string, { key: OrganizationKeyInfo | null }>({ max: 10_000, ttl: KEY_TTL_MS, ...EXPIRE_ON_READ });
/** The clock the environment entries age by (lru-cache's default); a test moves it to age an entry without waiting. */
export const environmentCacheClock: Perf = { now: () => performance.now() };
const environmentsById = new LRUCache<string, { environment: Environment | null; tailLeaseUntil: number | null }>({
  max: 10_000,
  ttl: ENVIRONMENT_TTL_MS,
  perf: environmentCacheClock,
  ...EXPIRE_ON_READ,
});

/**
 * Keys revoked or rotated through this isolate. A lookup that began before the revocation can finish after it with
 * the still-active row; it must not put that row back into the cache. Bounded: the oldest revocations are forgotten
 * first, long after any lookup that raced them has finished.
 */
const revokedKeyIds = new LRUCache<string, true>({ max: 10_000 });

export async function lookupApiKey(db: D1Database, rawKey: string): Promise<ApiKeyInfo | null> {
  // Not a key at all: answered without the cache, so arbitrary (and arbitrarily long) tokens never fill it.
  const parsed = parseApiKey(rawKey);
  if (!parsed) return null;
  return cachedKeyLookup(db, keysByRawKey, rawKey, findActiveKeyByHash, (found) => found.environmentId === parsed.environmentId && found.type === parsed.type);
}

export async function lookupOrganizationKey(db: D1Database, rawKey: string): Promise<OrganizationKeyInfo | null> {
  const parsed = parseOrganizationKey(rawKey);
  if (!parsed) return null;
  return cachedKeyLookup(db, organizationKeysByRawKey, rawKey, findActiveOrganizationKeyByHash, (found) => found.organizationId === parsed.organizationId);
}

/** A well-formed key through its cache; `belongs` checks the row it finds against what the key itself names. */
async function cachedKeyLookup<K extends { id: string }>(
  db: D1Database,
  cache: LRUCache<string, { key: K | null }>,
  rawKey: string,
  find: (db: D1Database, hash: string) => Promise<K | null>,
  belongs: (found: K) => boolean,
): Promise<K | null> {
  const cached = cache.get(rawKey);
  if (cached) return cached.key && revokedKeyIds.has(cached.key.id) ? null : cached.key;
  const found = await find(db, await hashApiKey(rawKey));
  const info = found && belongs(found) ? found : null;
  if (info && revokedKeyIds.has(info.id)) return null;
  cache.set(rawKey, { key: info });
  return info;
}

export async function lookupEnvironment(db: D1Database, environmentId: string): Promise<Environment | null> {
  const cached = environmentsById.get(environmentId);
  if (cached) return cached.environment;
  const found = await getEnvironmentWithTailLease(db, environmentId);
  environmentsById.set(environmentId, { environment: found?.environment ?? null, tailLeaseUntil: found?.tailLeaseUntil ?? null });
  return found?.environment ?? null;
}

/**
 * Whether a live tail held the environment when this isolate last looked it up — from the cache alone, never a query:
 * the decision whose record is flushed looked its environment up moments before, and an environment this isolate has
 * not looked up lately reads as untailed. An entry past its TTL still counts: a decision looked up near the end of
 * the entry's life is flushed after it, and the lease it read (a time, at most LEASE_MS ahead of its last renewal) is
 * what bounds how long a closed tail can still be published to. So the flush of an environment nobody tails costs one
 * map read, and a tail opened elsewhere reaches this isolate within the cache's TTL.
 */
export function isTailedNow(environmentId: string, now: number): boolean {
  const cached = environmentsById.peek(environmentId, { allowStale: true });
  return cached?.tailLeaseUntil != null && cached.tailLeaseUntil > now;
}

/** Entries in the key caches (for tests of their bounds). */
export function cachedKeyCount(): number {
  return keysByRawKey.size + organizationKeysByRawKey.size;
}

function forgetKeysWhere<K>(cache: LRUCache<string, { key: K | null }>, matches: (key: K) => boolean): void {
  // Collected first: the cache is not changed while it is being walked.
  const doomed = [...cache.entries()].filter(([, { key }]) => key !== null && matches(key)).map(([rawKey]) => rawKey);
  for (const rawKey of doomed) cache.delete(rawKey);
}

/** Forgets a revoked or rotated key, an environment's or an organization's (their ids never collide). */
export function forgetKey(keyId: string): void {
  revokedKeyIds.set(keyId, true);
  forgetKeysWhere(keysByRawKey, (key) => key.id === keyId);
  forgetKeysWhere(organizationKeysByRawKey, (key) => key.id === keyId);
}

export function forgetEnvironment(environmentId: string, { withKeys = false } = {}): void {
  environmentsById.delete(environmentId);
  if (withKeys) forgetKeysWhere(keysByRawKey, (key) => key.environmentId === environmentId);
}
