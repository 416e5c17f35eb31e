import { describe, expect, it } from "vitest";
import { prepareSnapshot, SNAPSHOT_SCHEMA, SNAPSHOT_UPGRADES, UnreadableSnapshotError, upgradeSnapshot, type SnapshotSchema, type StoredSnapshot } from "../../workers/engine";
import { SNAPSHOT_SCHEMA_VERSION } from "../../workers/engine/snapshot";
import { snapshotOf } from "./engineFixtures";

const current = async () =>
  JSON.parse(JSON.stringify(await snapshotOf({ features: { widget: {} }, plans: { p: { features: { widget: { enabled: "on" } } } }, surfaces: { page: { consumes: ["widget.enabled"] } } })));

/**
 * A synthetic schema 0 (no such snapshot was ever written): surfaces were a list instead of a record by slug, and
 * plans had no `stripeProductIds`. Its step is what a real one would be: a pure function to the next shape.
 */
function toSchema0(snapshot: StoredSnapshot): StoredSnapshot {
  const plans = (snapshot.plans as Record<string, unknown>[]).map(({ stripeProductIds: _, ...plan }) => plan);
  return { ...snapshot, schemaVersion: 0, surfaces: Object.values(snapshot.surfaces as object), plans };
}
const fromSchema0 = (snapshot: StoredSnapshot): StoredSnapshot => ({
  ...snapshot,
  surfaces: Object.fromEntries((snapshot.surfaces as { slug: string }[]).map((surface) => [surface.slug, surface])),
  plans: (snapshot.plans as Record<string, unknown>[]).map((plan) => ({ stripeProductIds: [], ...plan })),
});
const WITH_SCHEMA_0: SnapshotSchema = { current: SNAPSHOT_SCHEMA_VERSION, upgrades: { 0: fromSchema0 } };

describe("upgradeSnapshot", () => {
  it("returns a snapshot of this build's schema as it is", async () => {
    const stored = await current();
    expect(upgradeSnapshot(stored)).toBe(stored);
    expect(SNAPSHOT_SCHEMA).toEqual({ current: SNAPSHOT_SCHEMA_VERSION, upgrades: SNAPSHOT_UPGRADES });
  });

  it("upgrades an older schema through its step, to a snapshot the engine reads", async () => {
    const stored = await current();
    const old = toSchema0(structuredClone(stored));
    // This build has no step from schema 0 (none was ever written): refused, not misread.
    expect(() => upgradeSnapshot(structuredClone(old))).toThrow(UnreadableSnapshotError);
    const upgraded = upgradeSnapshot(old, WITH_SCHEMA_0);
    expect(upgraded).toEqual(stored);
    expect(prepareSnapshot(upgraded).surfaceBySlug.has("page")).toBe(true);
  });

  it("applies the steps one schema at a time, in order", () => {
    const seen: unknown[] = [];
    const step = (snapshot: StoredSnapshot) => {
      seen.push(snapshot.schemaVersion);
      return { ...snapshot, trail: [...((snapshot.trail as number[]) ?? []), snapshot.schemaVersion as number] };
    };
    const upgraded = upgradeSnapshot({ schemaVersion: 1 }, { current: 4, upgrades: { 1: step, 2: step, 3: step } }) as unknown as StoredSnapshot;
    expect(seen).toEqual([1, 2, 3]);
    expect(upgraded).toEqual({ schemaVersion: 4, trail: [1, 2, 3] });
  });

  it.each([
    ["a newer schema", { schemaVersion: SNAPSHOT_SCHEMA_VERSION + 1 }, /schema 2 by a newer build/],
    ["an older schema without a step", { schemaVersion: SNAPSHOT_SCHEMA_VERSION - 1 }, /schema 0, which this build cannot upgrade to schema 1/],
    ["no schema", { features: [] }, /schema \(none\)/],
    ["a schema that is not an integer", { schemaVersion: "1" }, /schema "1"/],
    ["a negative schema", { schemaVersion: -1 }, /schema -1/],
    ["not an object", [1, 2], /schema \(none\)/],
  ])("refuses %s", (_, stored, message) => {
    expect(() => upgradeSnapshot(stored)).toThrow(UnreadableSnapshotError);
    expect(() => upgradeSnapshot(stored)).toThrow(message);
  });

  it("refuses a chain with a gap", () => {
    const step = (snapshot: StoredSnapshot) => snapshot;
    expect(() => upgradeSnapshot({ schemaVersion: 1 }, { current: 3, upgrades: { 1: step } })).toThrow(/schema 1, which this build cannot upgrade to schema 3/);
  });
});
