/**
 * API keys: `sk_{environmentId}_{secret}` / `pk_{environmentId}_{secret}`. Only the SHA-256 of the whole key is
 * stored, so a database leak does not leak usable keys; the environment id inside the key lets a lookup be checked
 * against the row it finds.
 */
import { randomToken, sha256Hex } from "../lib/crypto";
import { insertRowStatements, revokeAndReplace, type InsertStatements } from "../lib/d1Rows";
import { newId, nowIso } from "../lib/ids";

export type KeyType = "secret" | "publishable";

export interface ApiKeyInfo {
  id: string;
  organizationId: string;
  environmentId: string;
  type: KeyType;
  name: string;
  prefix: string;
  createdAt: string;
  revokedAt: string | null;
}

/** Returned once, at creation; the plain key is never readable again. */
export interface CreatedKey extends ApiKeyInfo {
  key: string;
}

interface KeyRow {
  id: string;
  organization_id: string;
  environment_id: string;
  type: KeyType;
  name: string;
  prefix: string;
  created_at: string;
  revoked_at: string | null;
}

const toInfo = (row: KeyRow): ApiKeyInfo => ({
  id: row.id,
  organizationId: row.organization_id,
  environmentId: row.environment_id,
  type: row.type,
  name: row.name,
  prefix: row.prefix,
  createdAt: row.created_at,
  revokedAt: row.revoked_at,
});

const SECRET_LENGTH = 32;

export function parseApiKey(key: string): { type: KeyType; environmentId: string } | null {
  const match = /^(sk|pk)_(env_[a-z0-9]{16})_([a-z0-9]{32})$/.exec(key);
  if (!match) return null;
  return { type: match[1] === "sk" ? "secret" : "publishable", environmentId: match[2]! };
}

export const hashApiKey = (key: string): Promise<string> => sha256Hex(key);

/** Builds a key and the statement that stores it, so callers can batch it with other writes. */
export async function createApiKey(
  db: D1Database,
  input: { organizationId: string; environmentId: string; type: KeyType; name: string },
): Promise<{ key: CreatedKey } & InsertStatements> {
  const secret = randomToken(SECRET_LENGTH);
  const plain = `${input.type === "secret" ? "sk" : "pk"}_${input.environmentId}_${secret}`;
  const info: ApiKeyInfo = {
    id: newId("key"),
    organizationId: input.organizationId,
    environmentId: input.environmentId,
    type: input.type,
    name: input.name,
    prefix: plain.slice(0, plain.length - SECRET_LENGTH + 4),
    createdAt: nowIso(),
    revokedAt: null,
  };
  const row = {
    id: info.id,
    organization_id: info.organizationId,
    environment_id: info.environmentId,
    type: info.type,
    name: info.name,
    prefix: info.prefix,
    hash: await hashApiKey(plain),
    created_at: info.createdAt,
  };
  return { key: { ...info, key: plain }, ...insertRowStatements(db, "api_keys", row) };
}

export async function insertApiKey(db: D1Database, input: Parameters<typeof createApiKey>[1]): Promise<CreatedKey> {
  const { key, statement } = await createApiKey(db, input);
  await statement.run();
  return key;
}

export async function findActiveKeyByHash(db: D1Database, hash: string): Promise<ApiKeyInfo | null> {
  const row = await db.prepare("SELECT * FROM api_keys WHERE hash = ? AND revoked_at IS NULL").bind(hash).first<KeyRow>();
  return row ? toInfo(row) : null;
}

export async function listApiKeys(db: D1Database, environmentId: string): Promise<ApiKeyInfo[]> {
  const { results } = await db.prepare("SELECT * FROM api_keys WHERE environment_id = ? ORDER BY created_at, id").bind(environmentId).all<KeyRow>();
  return results.map(toInfo);
}

export async function getApiKey(db: D1Database, id: string): Promise<ApiKeyInfo | null> {
  const row = await db.prepare("SELECT * FROM api_keys WHERE id = ?").bind(id).first<KeyRow>();
  return row ? toInfo(row) : null;
}

export async function revokeApiKey(db: D1Database, id: string): Promise<void> {
  await db.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL").bind(nowIso(), id).run();
}

/**
 * A new key of the same type, environment and name, the old one revoked in the same batch (one transaction). The new
 * key is inserted only if this batch's revocation changed the old row, so of two concurrent rotations only one yields
 * a key: null when the old key was revoked or rotated already.
 */
export async function rotateApiKey(db: D1Database, old: ApiKeyInfo): Promise<CreatedKey | null> {
  const { key, ...statements } = await createApiKey(db, old);
  return (await revokeAndReplace(db, "api_keys", old.id, nowIso(), statements)) ? key : null;
}
