/**
 * Workflow-facing settings of an environment: variables, secrets (encrypted at rest) and the egress allow-list.
 * The decision path reads them through a short per-isolate cache, and only when a workflow is about to run.
 */
import { LRUCache } from "lru-cache";
import { EXPIRE_ON_READ } from "../lib/cacheExpiry";
import { nowIso } from "../lib/ids";
import { decryptSecret, encryptSecret } from "../lib/secrets";

export interface VariableInfo {
  name: string;
  secret: boolean;
  /** Absent for secrets: they are never returned by a read API. */
  value?: string;
  updatedAt: string;
}

export interface WorkflowEnvironment {
  /** Variables and decrypted secrets, as the workflow's `env` argument. */
  values: Record<string, string>;
  egressAllowList: string[];
}

const SETTINGS_TTL_MS = 5_000;
/**
 * Bounded by an estimate of the bytes it holds: an environment's variables and decrypted secrets can be large, and
 * one tenant's must not push everyone else's out by count alone. Settings larger than the whole budget are not cached.
 */
const cache = new LRUCache<string, WorkflowEnvironment>({
  maxSize: 8 * 1024 * 1024,
  sizeCalculation: (settings, environmentId) => 2 * (environmentId.length + JSON.stringify(settings).length) + 128,
  ttl: SETTINGS_TTL_MS,
  ...EXPIRE_ON_READ,
});

export async function listVariables(db: D1Database, environmentId: string): Promise<VariableInfo[]> {
  const { results } = await db
    .prepare("SELECT name, is_secret, value, updated_at FROM environment_variables WHERE environment_id = ? ORDER BY name")
    .bind(environmentId)
    .all<{ name: string; is_secret: number; value: string; updated_at: string }>();
  return results.map((row) => ({
    name: row.name,
    secret: row.is_secret === 1,
    ...(row.is_secret === 1 ? {} : { value: row.value }),
    updatedAt: row.updated_at,
  }));
}

export async function setVariable(
  db: D1Database,
  secretsKey: string,
  environmentId: string,
  input: { name: string; value: string; secret: boolean },
): Promise<VariableInfo> {
  const updatedAt = nowIso();
  const stored = input.secret ? await encryptSecret(secretsKey, input.value) : input.value;
  await db
    .prepare(
      `INSERT INTO environment_variables (environment_id, name, is_secret, value, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (environment_id, name) DO UPDATE SET is_secret = excluded.is_secret, value = excluded.value, updated_at = excluded.updated_at`,
    )
    .bind(environmentId, input.name, input.secret ? 1 : 0, stored, updatedAt)
    .run();
  cache.delete(environmentId);
  return { name: input.name, secret: input.secret, ...(input.secret ? {} : { value: input.value }), updatedAt };
}

export async function deleteVariable(db: D1Database, environmentId: string, name: string): Promise<boolean> {
  const result = await db.prepare("DELETE FROM environment_variables WHERE environment_id = ? AND name = ?").bind(environmentId, name).run();
  cache.delete(environmentId);
  return result.meta.changes > 0;
}

export async function getEgressAllowList(db: D1Database, environmentId: string): Promise<string[]> {
  const row = await db.prepare("SELECT egress_allow_list FROM environments WHERE id = ?").bind(environmentId).first<{ egress_allow_list: string }>();
  return row ? (JSON.parse(row.egress_allow_list) as string[]) : [];
}

export async function setEgressAllowList(db: D1Database, environmentId: string, hosts: string[]): Promise<string[]> {
  const unique = [...new Set(hosts.map((host) => host.toLowerCase()))].sort();
  await db.prepare("UPDATE environments SET egress_allow_list = ? WHERE id = ?").bind(JSON.stringify(unique), environmentId).run();
  cache.delete(environmentId);
  return unique;
}

export async function workflowEnvironment(db: D1Database, secretsKey: string, environmentId: string): Promise<WorkflowEnvironment> {
  const cached = cache.get(environmentId);
  if (cached) return cached;
  const [{ results }, egressAllowList] = await Promise.all([
    db.prepare("SELECT name, is_secret, value FROM environment_variables WHERE environment_id = ?").bind(environmentId).all<{ name: string; is_secret: number; value: string }>(),
    getEgressAllowList(db, environmentId),
  ]);
  const values: Record<string, string> = {};
  for (const row of results) values[row.name] = row.is_secret === 1 ? await decryptSecret(secretsKey, row.value) : row.value;
  const settings = { values, egressAllowList };
  cache.set(environmentId, settings);
  return settings;
}
