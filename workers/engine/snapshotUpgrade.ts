/**
 * Reading a stored snapshot, whichever build of the platform compiled it. Versions are immutable: a snapshot stays in
 * D1 under the schema version it was compiled with while the platform moves on, and an old version must stay
 * deployable, rollback-able and servable. So every schema version N below the current one has exactly one step,
 * N → N+1, and reading applies the steps in order. A snapshot of a newer schema (compiled by a newer build: during a
 * gradual rollout, or after the platform was rolled back) or of no known schema cannot be read safely: it is refused,
 * never guessed at.
 *
 * Changing the snapshot's shape: bump SNAPSHOT_SCHEMA_VERSION (snapshot.ts), compile the new shape
 * (config/compile.ts), and add the step from the previous version to SNAPSHOT_UPGRADES. A released step never
 * changes: stored versions depend on it.
 */
import { isRecord } from "../lib/json";
import { SNAPSHOT_SCHEMA_VERSION, type ConfigSnapshot } from "./snapshot";

/** A snapshot as stored (parsed JSON) under some schema version. */
export type StoredSnapshot = { schemaVersion?: unknown; [field: string]: unknown };

/**
 * Turns a snapshot of schema N into the shape of schema N+1 (upgradeSnapshot sets `schemaVersion`). It receives a
 * freshly parsed snapshot that nothing else holds, so it may change it in place or build a new one.
 */
export type SnapshotUpgradeStep = (snapshot: StoredSnapshot) => StoredSnapshot;

/** The schema this build reads, and the step from each older schema version to the next. */
export interface SnapshotSchema {
  readonly current: number;
  readonly upgrades: Readonly<Record<number, SnapshotUpgradeStep>>;
}

/** Schema 1 is the only one ever written so far, so there is no step yet. */
export const SNAPSHOT_UPGRADES: Readonly<Record<number, SnapshotUpgradeStep>> = Object.freeze({});

export const SNAPSHOT_SCHEMA: SnapshotSchema = Object.freeze({ current: SNAPSHOT_SCHEMA_VERSION, upgrades: SNAPSHOT_UPGRADES });

/** A stored snapshot this build cannot read: a newer schema, an older one without a way up, or no schema at all. */
export class UnreadableSnapshotError extends Error {
  constructor(
    /** What the snapshot says (undefined when it is not an object). */
    readonly schemaVersion: unknown,
    /** The schema version this build reads. */
    readonly readable: number,
  ) {
    super(
      typeof schemaVersion === "number" && schemaVersion > readable
        ? `it was compiled with snapshot schema ${schemaVersion} by a newer build of the platform; this build reads schema ${readable} and older`
        : `it was compiled with snapshot schema ${describe(schemaVersion)}, which this build cannot upgrade to schema ${readable}`,
    );
    this.name = "UnreadableSnapshotError";
  }
}

const describe = (value: unknown): string => (value === undefined ? "(none)" : JSON.stringify(value) ?? String(value));

/**
 * The stored snapshot in the shape of the schema `schema.current` (by default this build's), through each upgrade step
 * from its own schema version; a current snapshot is returned as it is.
 * @throws UnreadableSnapshotError for a newer schema version, an older one with a missing step, or none.
 */
export function upgradeSnapshot(stored: unknown, schema: SnapshotSchema = SNAPSHOT_SCHEMA): ConfigSnapshot {
  if (!isRecord(stored)) throw new UnreadableSnapshotError(undefined, schema.current);
  const from = stored.schemaVersion;
  if (typeof from !== "number" || !Number.isInteger(from) || from > schema.current) throw new UnreadableSnapshotError(from, schema.current);
  let snapshot: StoredSnapshot = stored;
  for (let version = from; version < schema.current; version++) {
    const step = schema.upgrades[version];
    if (step === undefined) throw new UnreadableSnapshotError(from, schema.current);
    snapshot = { ...step(snapshot), schemaVersion: version + 1 };
  }
  return snapshot as unknown as ConfigSnapshot;
}
