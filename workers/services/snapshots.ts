/**
 * Deployed versions, compiled once per isolate. A version is immutable, so its prepared snapshot never goes stale; the
 * bound only limits memory when one isolate serves many tenants. Concurrent first requests for a version share one
 * D1 read (lru-cache's `fetch` coalesces them).
 */
import { LRUCache } from "lru-cache";
import type { PreparedSnapshot } from "../engine";
import { ApiError } from "../errors";
import { loadPreparedSnapshot } from "./versions";

export interface SnapshotStore {
  /**
   * The prepared snapshot of a version (upgraded from an older snapshot schema when needed, its workflow code
   * verified: versions.ts loadPreparedSnapshot); 404 when the version does not exist, 503 `version_unreadable` when
   * this build cannot read or serve it. A 503 is remembered for REFUSAL_MEMORY_MS (an environment serving such a
   * version would otherwise read and parse it again on every decision); a 404 and a failed read are not.
   */
  get(db: D1Database, versionId: string): Promise<PreparedSnapshot>;
  readonly size: number;
}

/**
 * How long a refusal is remembered. A version never changes, so neither does this build's verdict on it; the bound
 * only lets a refusal that came from a transient condition of the platform (none is known) clear on its own.
 */
export const REFUSAL_MEMORY_MS = 60_000;

/** A version this build cannot read, remembered as the error its readers get. */
interface Refusal {
  refusal: ApiError;
}

export function createSnapshotStore(maxVersions = 200): SnapshotStore {
  const cache = new LRUCache<string, PreparedSnapshot | Refusal, D1Database>({
    max: maxVersions,
    // A load still in flight counts as an entry: without this, more concurrent first loads than `max` (a cold isolate
    // serving many tenants) would abort the oldest and fail its requests.
    ignoreFetchAbort: true,
    fetchMethod: async (versionId, _stale, { context: db, options }) => {
      try {
        return (await loadPreparedSnapshot(db, versionId)) ?? undefined;
      } catch (error) {
        // Only this build's verdict on the version is remembered; a failed D1 read is asked again next time.
        if (!(error instanceof ApiError) || error.code !== "version_unreadable") throw error;
        options.ttl = REFUSAL_MEMORY_MS;
        return { refusal: error };
      }
    },
  });
  return {
    async get(db, versionId) {
      // The steady state is a hit: a plain get is cheaper than fetch's bookkeeping.
      const entry = cache.get(versionId) ?? (await cache.fetch(versionId, { context: db }));
      if (!entry) throw new ApiError("not_found", `Version ${versionId} not found`);
      if ("refusal" in entry) throw entry.refusal;
      return entry;
    },
    get size() {
      return cache.size;
    },
  };
}

/** This isolate's store: every request and queue message of the isolate reads through it. */
export const isolateSnapshots = createSnapshotStore();

export function preparedSnapshotFor(db: D1Database, versionId: string): Promise<PreparedSnapshot> {
  return isolateSnapshots.get(db, versionId);
}
