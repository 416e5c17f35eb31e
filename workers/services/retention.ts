/**
 * Retention of the embedded event store (D1): decision records, audits and the other events are kept
 * `EVENT_RETENTION_DAYS` (30 by default; `0` keeps them forever), metric rollups ROLLUP_RETENTION_MS. A cron trigger
 * (wrangler.toml `[triggers]`, hourly) runs `pruneExpiredEvents`: per environment, through the
 * (environment_id, created_at) index, in bounded statements — a D1 database is capped in size and every row costs, and
 * at 1,000 decisions a second a day is 86 M rows. A run that hits its budget leaves the rest to the next hour.
 */
import { pruneRollups } from "./metrics";

export const DEFAULT_EVENT_RETENTION_DAYS = 30;
/** Rows one statement deletes: small enough to stay well inside a D1 query's limits. */
export const PRUNE_CHUNK_ROWS = 5_000;
/** Statements one run may spend; the rest waits for the next run. */
export const PRUNE_STATEMENT_BUDGET = 200;

/** `EVENT_RETENTION_DAYS` as days, or null to keep events forever ("0"); anything unreadable is the default. */
export function eventRetentionDays(configured: string | undefined): number | null {
  if (configured === undefined || configured.trim() === "") return DEFAULT_EVENT_RETENTION_DAYS;
  const days = Number(configured);
  if (!Number.isInteger(days) || days < 0) return DEFAULT_EVENT_RETENTION_DAYS;
  return days === 0 ? null : days;
}

export interface PruneReport {
  deleted: number;
  environments: number;
  /** The statement budget ran out: older events are left for the next run. */
  incomplete: boolean;
}

/** Deletes events older than `retentionDays` (every environment) and rollups past their retention. */
export async function pruneExpiredEvents(db: D1Database, now: number, retentionDays: number | null, budget = PRUNE_STATEMENT_BUDGET): Promise<PruneReport> {
  await pruneRollups(db, now);
  if (retentionDays === null) return { deleted: 0, environments: 0, incomplete: false };
  const cutoff = new Date(now - retentionDays * 24 * 60 * 60 * 1000).toISOString();
  // The environments that have events past the cutoff, deleted ones' leftovers included (events are not cascaded) —
  // found by seeking the (environment_id, created_at) index from one environment id to the next and reading each one's
  // oldest event, never by reading every row; environments with nothing to delete cost no statement.
  const { results } = await db
    .prepare(
      `WITH RECURSIVE seen(environment_id) AS (
         SELECT MIN(environment_id) FROM events
         UNION ALL
         SELECT (SELECT MIN(environment_id) FROM events WHERE environment_id > seen.environment_id) FROM seen WHERE seen.environment_id IS NOT NULL
       )
       SELECT environment_id FROM seen
       WHERE environment_id IS NOT NULL AND (SELECT MIN(created_at) FROM events WHERE events.environment_id = seen.environment_id) < ?`,
    )
    .bind(cutoff)
    .all<{ environment_id: string }>();
  const prune = db.prepare(
    "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events WHERE environment_id = ? AND created_at < ? ORDER BY created_at LIMIT ?)",
  );
  let deleted = 0;
  let statements = 0;
  for (const { environment_id: environmentId } of results) {
    for (;;) {
      if (statements >= budget) return { deleted, environments: results.length, incomplete: true };
      statements += 1;
      const changes = (await prune.bind(environmentId, cutoff, PRUNE_CHUNK_ROWS).run()).meta.changes ?? 0;
      deleted += changes;
      if (changes < PRUNE_CHUNK_ROWS) break;
    }
  }
  return { deleted, environments: results.length, incomplete: false };
}
