/**
 * The per-isolate store of prepared snapshots: concurrent first requests for a version share one D1 read, a missing
 * version is a 404 (and is not remembered), and the store keeps at most its bound of versions.
 */
import { describe, expect, it } from "vitest";
import type { ConfigSnapshot } from "../../../workers/engine";
import { createSnapshotStore } from "../../../workers/services/snapshots";
import { snapshotOf } from "../../unit/engineFixtures";

const helloWorld = (versionId: string) =>
  snapshotOf({ features: { widget: {} }, plans: { anonymous: { autoAssign: ["anonymous"], features: { widget: { enabled: { metered: { limit: 3 } } } } } } }, versionId);

/** A D1 stand-in that answers the snapshot query from `snapshots` a little later, counting reads. */
function fakeDatabase(snapshots: Record<string, ConfigSnapshot>) {
  const reads: string[] = [];
  const db = {
    prepare: () => ({
      bind: (versionId: string) => ({
        first: async () => {
          reads.push(versionId);
          await scheduler.wait(5);
          const snapshot = snapshots[versionId];
          return snapshot ? { snapshot: JSON.stringify(snapshot) } : null;
        },
      }),
    }),
  } as unknown as D1Database;
  return { db, reads };
}

describe("snapshot store", async () => {
  const versions = Object.fromEntries(await Promise.all(["v1", "v2", "v3"].map(async (id) => [id, await helloWorld(id)] as const)));

  it("shares one D1 read between concurrent first requests, then answers from memory", async () => {
    const { db, reads } = fakeDatabase(versions);
    const store = createSnapshotStore(10);
    const [a, b, c] = await Promise.all([store.get(db, "v1"), store.get(db, "v1"), store.get(db, "v1")]);
    expect(a).toBe(b);
    expect(b).toBe(c);
    expect(a.versionId).toBe("v1");
    expect(await store.get(db, "v1")).toBe(a);
    expect(reads).toEqual(["v1"]);
  });

  it("answers 404 for a version that does not exist, and asks again next time", async () => {
    const { db, reads } = fakeDatabase(versions);
    const store = createSnapshotStore(10);
    await expect(store.get(db, "nope")).rejects.toMatchObject({ code: "not_found", status: 404 });
    await expect(store.get(db, "nope")).rejects.toMatchObject({ code: "not_found" });
    expect(reads).toEqual(["nope", "nope"]);
    expect(store.size).toBe(0);
  });

  it("keeps at most its bound, dropping the least recently used version", async () => {
    const { db, reads } = fakeDatabase(versions);
    const store = createSnapshotStore(2);
    await store.get(db, "v1");
    await store.get(db, "v2");
    await store.get(db, "v1"); // v1 is now the most recently used
    await store.get(db, "v3"); // drops v2
    expect(store.size).toBe(2);
    await store.get(db, "v1");
    await store.get(db, "v2");
    expect(reads).toEqual(["v1", "v2", "v3", "v2"]);
  });
});
