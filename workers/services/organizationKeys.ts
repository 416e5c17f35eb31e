/**
 * Organization keys: `ok_{organizationId}_{secret}`, with a role (admin, deployer, read-only). They act on every
 * environment of their organization, through the admin API only. Stored like API keys: only the SHA-256 of the whole
 * key, and the organization id inside the key lets a lookup be checked against the row it finds.
 */
import { randomToken } from "../lib/crypto";
import { insertRowStatements, revokeAndReplace, type InsertStatements } from "../lib/d1Rows";
import { newId, nowIso } from "../lib/ids";
import { hashApiKey } from "./apiKeys";

export const ORGANIZATION_ROLES = ["admin", "deployer", "read-only"] as const;
export type OrganizationRole = (typeof ORGANIZATION_ROLES)[number];

export interface OrganizationKeyInfo {
  id: string;
  organizationId: string;
  role: OrganizationRole;
  name: string;
  prefix: string;
  createdAt: string;
  revokedAt: string | null;
}

/** Returned once, at creation; the plain key is never readable again. */
export interface CreatedOrganizationKey extends OrganizationKeyInfo {
  key: string;
}

interface OrganizationKeyRow {
  id: string;
  organization_id: string;
  role: OrganizationRole;
  name: string;
  prefix: string;
  created_at: string;
  revoked_at: string | null;
}

const toInfo = (row: OrganizationKeyRow): OrganizationKeyInfo => ({
  id: row.id,
  organizationId: row.organization_id,
  role: row.role,
  name: row.name,
  prefix: row.prefix,
  createdAt: row.created_at,
  revokedAt: row.revoked_at,
});

const SECRET_LENGTH = 32;
// Organization ids are `org_` and 16 characters of [a-z0-9] (lib/ids.ts newId).
const ORGANIZATION_KEY = /^ok_(org_[a-z0-9]{16})_([a-z0-9]{32})$/;

export function parseOrganizationKey(key: string): { organizationId: string } | null {
  const match = ORGANIZATION_KEY.exec(key);
  return match ? { organizationId: match[1]! } : null;
}

/** Builds a key and the statement that stores it, so callers can batch it with other writes. */
export async function createOrganizationKey(
  db: D1Database,
  input: { organizationId: string; role: OrganizationRole; name: string },
): Promise<{ key: CreatedOrganizationKey } & InsertStatements> {
  const plain = `ok_${input.organizationId}_${randomToken(SECRET_LENGTH)}`;
  const info: OrganizationKeyInfo = {
    id: newId("key"),
    organizationId: input.organizationId,
    role: input.role,
    name: input.name,
    prefix: plain.slice(0, plain.length - SECRET_LENGTH + 4),
    createdAt: nowIso(),
    revokedAt: null,
  };
  const row = {
    id: info.id,
    organization_id: info.organizationId,
    role: info.role,
    name: info.name,
    prefix: info.prefix,
    hash: await hashApiKey(plain),
    created_at: info.createdAt,
  };
  return { key: { ...info, key: plain }, ...insertRowStatements(db, "organization_keys", row) };
}

export async function insertOrganizationKey(db: D1Database, input: Parameters<typeof createOrganizationKey>[1]): Promise<CreatedOrganizationKey> {
  const { key, statement } = await createOrganizationKey(db, input);
  await statement.run();
  return key;
}

export async function findActiveOrganizationKeyByHash(db: D1Database, hash: string): Promise<OrganizationKeyInfo | null> {
  const row = await db.prepare("SELECT * FROM organization_keys WHERE hash = ? AND revoked_at IS NULL").bind(hash).first<OrganizationKeyRow>();
  return row ? toInfo(row) : null;
}

export async function listOrganizationKeys(db: D1Database, organizationId: string): Promise<OrganizationKeyInfo[]> {
  const { results } = await db
    .prepare("SELECT * FROM organization_keys WHERE organization_id = ? ORDER BY created_at, id")
    .bind(organizationId)
    .all<OrganizationKeyRow>();
  return results.map(toInfo);
}

/** A key of this organization; another organization's key is indistinguishable from a missing one. */
export async function getOrganizationKey(db: D1Database, organizationId: string, id: string): Promise<OrganizationKeyInfo | null> {
  const row = await db.prepare("SELECT * FROM organization_keys WHERE id = ? AND organization_id = ?").bind(id, organizationId).first<OrganizationKeyRow>();
  return row ? toInfo(row) : null;
}

export async function revokeOrganizationKey(db: D1Database, id: string): Promise<void> {
  await db.prepare("UPDATE organization_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL").bind(nowIso(), id).run();
}

/**
 * A new key of the same role and name, the old one revoked in the same batch (one transaction). The new key is
 * inserted only if this batch's revocation changed the old row, so of two concurrent rotations only one yields a
 * key: null when the old key was revoked or rotated already.
 */
export async function rotateOrganizationKey(db: D1Database, old: OrganizationKeyInfo): Promise<CreatedOrganizationKey | null> {
  const { key, ...statements } = await createOrganizationKey(db, old);
  return (await revokeAndReplace(db, "organization_keys", old.id, nowIso(), statements)) ? key : null;
}
