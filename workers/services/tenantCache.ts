/**
 * Per-isolate caches of what every request needs before it can decide: which key is this, and which version does
 * its environment serve. Entries live briefly (a revoked key or a new deployment reaches other isolates within the
 * TTL) and the writes of this isolate invalidate its own entries at once.
 */
import { BoundedCache } from "../lib/lru";
import { findActiveKeyByHash, hashApiKey, parseApiKey, type ApiKeyInfo } from "./apiKeys";
import { getEnvironment, type Environment } from "./tenancy";

const KEY_TTL_MS = 30_000;
const ENVIRONMENT_TTL_MS = 5_000;

// A miss of a well-formed key is cached too (as null), so a flood of requests with a bad key costs one query per TTL;
// the key format bounds each entry's size.
const keysByRawKey = new BoundedCache<string, ApiKeyInfo | null>(10_000, KEY_TTL_MS);
const environmentsById = new BoundedCache<string, Environment | null>(10_000, ENVIRONMENT_TTL_MS);

/**
 * Keys revoked or rotated through this isolate. A lookup that began before the revocation can finish after it with
 * the still-active row; it must not put that row back into the cache.
 */
const revokedKeyIds = new Set<string>();

export async function lookupApiKey(db: D1Database, rawKey: string): Promise<ApiKeyInfo | null> {
  // Not a key at all: answered without the cache, so arbitrary (and arbitrarily long) tokens never fill it.
  const parsed = parseApiKey(rawKey);
  if (!parsed) return null;
  const cached = keysByRawKey.get(rawKey);
  if (cached !== undefined) return cached && revokedKeyIds.has(cached.id) ? null : cached;
  const found = await findActiveKeyByHash(db, await hashApiKey(rawKey));
  const info = found && found.environmentId === parsed.environmentId && found.type === parsed.type ? found : null;
  if (info && revokedKeyIds.has(info.id)) return null;
  keysByRawKey.set(rawKey, info);
  return info;
}

export async function lookupEnvironment(db: D1Database, environmentId: string): Promise<Environment | null> {
  const cached = environmentsById.get(environmentId);
  if (cached !== undefined) return cached;
  const environment = await getEnvironment(db, environmentId);
  environmentsById.set(environmentId, environment);
  return environment;
}

/** Entries in the key cache (for tests of its bounds). */
export function cachedKeyCount(): number {
  return keysByRawKey.size;
}

export function forgetKey(keyId: string): void {
  if (revokedKeyIds.size >= 10_000) revokedKeyIds.clear();
  revokedKeyIds.add(keyId);
  keysByRawKey.deleteWhere((info) => info?.id === keyId);
}

export function forgetEnvironment(environmentId: string, { withKeys = false } = {}): void {
  environmentsById.delete(environmentId);
  if (withKeys) keysByRawKey.deleteWhere((info) => info?.environmentId === environmentId);
}
