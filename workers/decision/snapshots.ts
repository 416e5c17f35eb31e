/**
 * Deployed versions, compiled once per isolate. A version is immutable, so its prepared snapshot never goes stale;
 * the LRU only bounds memory when one isolate serves many tenants. Concurrent first requests share one D1 read.
 */
import { prepareSnapshot, SnapshotCache, type PreparedSnapshot } from "../engine";
import { ApiError } from "../errors";
import { loadSnapshot } from "../services/versions";

const prepared = new SnapshotCache(200);
const loading = new Map<string, Promise<PreparedSnapshot>>();

export async function preparedSnapshotFor(db: D1Database, versionId: string): Promise<PreparedSnapshot> {
  const cached = prepared.get(versionId);
  if (cached) return cached;
  let pending = loading.get(versionId);
  if (!pending) {
    pending = (async () => {
      const snapshot = await loadSnapshot(db, versionId);
      if (!snapshot) throw new ApiError("not_found", `Version ${versionId} not found`);
      const result = prepareSnapshot(snapshot);
      prepared.set(versionId, result);
      return result;
    })().finally(() => loading.delete(versionId));
    loading.set(versionId, pending);
  }
  return pending;
}
