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
   * this build cannot read or serve it. Neither is remembered: the next call asks again.
   */
  get(db: D1Database, versionId: string): Promise<PreparedSnapshot>;
  readonly size: number;
}

export function createSnapshotStore(maxVersions = 200): SnapshotStore {
  const cache = new LRUCache<string, PreparedSnapshot, D1Database>({
    max: maxVersions,
    // A load still in flight counts as an entry: without this, more concurrent first loads than `max` (a cold isolate
    // serving many tenants) would abort the oldest and fail its requests.
    ignoreFetchAbort: true,
    fetchMethod: async (versionId, _stale, { context: db }) => (await loadPreparedSnapshot(db, versionId)) ?? undefined,
  });
  return {
    async get(db, versionId) {
      // The steady state is a hit: a plain get is cheaper than fetch's bookkeeping.
      const prepared = cache.get(versionId) ?? (await cache.fetch(versionId, { context: db }));
      if (!prepared) throw new ApiError("not_found", `Version ${versionId} not found`);
      return prepared;
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
