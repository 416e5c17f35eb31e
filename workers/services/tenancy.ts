/**
 * Organizations and environments in D1. Plain functions taking the database, with bound parameters.
 */
import { EMPTY_DOCUMENT } from "../../schema/config";
import { newId, nowIso } from "../lib/ids";
import { createApiKey, type CreatedKey } from "./apiKeys";
import { createOrganizationKey, type CreatedOrganizationKey } from "./organizationKeys";

export type EnvironmentType = "preview" | "production";

export interface Organization {
  id: string;
  name: string;
  createdAt: string;
}

export interface Environment {
  id: string;
  organizationId: string;
  slug: string;
  name: string;
  type: EnvironmentType;
  deployedVersionId: string | null;
  createdAt: string;
}

interface EnvironmentRow {
  id: string;
  organization_id: string;
  slug: string;
  name: string;
  type: EnvironmentType;
  deployed_version_id: string | null;
  created_at: string;
  tail_lease_until: number | null;
}

const toEnvironment = (row: EnvironmentRow): Environment => ({
  id: row.id,
  organizationId: row.organization_id,
  slug: row.slug,
  name: row.name,
  type: row.type,
  deployedVersionId: row.deployed_version_id,
  createdAt: row.created_at,
});

/** The user data store an environment reads and writes: shared by all environments of the same type. */
export function storeOf(environment: Pick<Environment, "type">): string {
  return environment.type === "production" ? "default" : "preview";
}

export interface CreatedOrganization {
  organization: Organization;
  environments: Environment[];
  keys: CreatedKey[];
  /** One `admin` organization key: the credential for work across environments (configuration, deploys, keys). */
  organizationKeys: CreatedOrganizationKey[];
}

/**
 * Creates the organization, its `preview` and `live` environments, an empty draft, one key pair per environment and
 * an admin organization key, in one batch.
 */
export async function createOrganization(db: D1Database, name: string): Promise<CreatedOrganization> {
  const createdAt = nowIso();
  const organization: Organization = { id: newId("org"), name, createdAt };
  const environments: Environment[] = [
    { id: newId("env"), organizationId: organization.id, slug: "preview", name: "Preview", type: "preview", deployedVersionId: null, createdAt },
    { id: newId("env"), organizationId: organization.id, slug: "live", name: "Live", type: "production", deployedVersionId: null, createdAt },
  ];
  const keys: CreatedKey[] = [];
  const keyStatements: D1PreparedStatement[] = [];
  for (const environment of environments) {
    for (const type of ["secret", "publishable"] as const) {
      const created = await createApiKey(db, { organizationId: organization.id, environmentId: environment.id, type, name: `Default ${type} key` });
      keys.push(created.key);
      keyStatements.push(created.statement);
    }
  }
  const adminKey = await createOrganizationKey(db, { organizationId: organization.id, role: "admin", name: "Default admin key" });
  await db.batch([
    db.prepare("INSERT INTO organizations (id, name, created_at) VALUES (?, ?, ?)").bind(organization.id, name, createdAt),
    ...environments.map((environment) => insertEnvironment(db, environment)),
    db
      .prepare("INSERT INTO drafts (organization_id, document, revision, updated_at) VALUES (?, ?, 0, ?)")
      .bind(organization.id, JSON.stringify(EMPTY_DOCUMENT), createdAt),
    ...keyStatements,
    adminKey.statement,
  ]);
  return { organization, environments, keys, organizationKeys: [adminKey.key] };
}

function insertEnvironment(db: D1Database, environment: Environment): D1PreparedStatement {
  return db
    .prepare("INSERT INTO environments (id, organization_id, slug, name, type, deployed_version_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
    .bind(environment.id, environment.organizationId, environment.slug, environment.name, environment.type, environment.deployedVersionId, environment.createdAt);
}

export async function listOrganizations(db: D1Database): Promise<Organization[]> {
  const { results } = await db.prepare("SELECT id, name, created_at FROM organizations ORDER BY created_at, id").all<{ id: string; name: string; created_at: string }>();
  return results.map((row) => ({ id: row.id, name: row.name, createdAt: row.created_at }));
}

export async function getOrganization(db: D1Database, id: string): Promise<Organization | null> {
  const row = await db.prepare("SELECT id, name, created_at FROM organizations WHERE id = ?").bind(id).first<{ id: string; name: string; created_at: string }>();
  return row ? { id: row.id, name: row.name, createdAt: row.created_at } : null;
}

export async function listEnvironments(db: D1Database, organizationId: string): Promise<Environment[]> {
  const { results } = await db.prepare("SELECT * FROM environments WHERE organization_id = ? ORDER BY created_at, slug").bind(organizationId).all<EnvironmentRow>();
  return results.map(toEnvironment);
}

export async function getEnvironment(db: D1Database, id: string): Promise<Environment | null> {
  return (await getEnvironmentWithTailLease(db, id))?.environment ?? null;
}

/**
 * The environment and until when (ms) a live tail holds it (durable-objects/live-tail): null or past means no tail.
 * Read with the environment, so the lookup every decision already makes says whether its record goes to a tail.
 */
export async function getEnvironmentWithTailLease(db: D1Database, id: string): Promise<{ environment: Environment; tailLeaseUntil: number | null } | null> {
  const row = await db.prepare("SELECT * FROM environments WHERE id = ?").bind(id).first<EnvironmentRow>();
  return row ? { environment: toEnvironment(row), tailLeaseUntil: row.tail_lease_until ?? null } : null;
}

/** Sets (or, with null, ends) the live tail's lease on the environment. */
export async function setTailLease(db: D1Database, environmentId: string, until: number | null): Promise<void> {
  await db.prepare("UPDATE environments SET tail_lease_until = ? WHERE id = ?").bind(until, environmentId).run();
}

export async function createEnvironment(
  db: D1Database,
  input: { organizationId: string; slug: string; name: string; type: EnvironmentType },
): Promise<{ environment: Environment; keys: CreatedKey[] }> {
  const environment: Environment = { id: newId("env"), deployedVersionId: null, createdAt: nowIso(), ...input };
  const secret = await createApiKey(db, { organizationId: input.organizationId, environmentId: environment.id, type: "secret", name: "Default secret key" });
  const publishable = await createApiKey(db, { organizationId: input.organizationId, environmentId: environment.id, type: "publishable", name: "Default publishable key" });
  await db.batch([insertEnvironment(db, environment), secret.statement, publishable.statement]);
  return { environment, keys: [secret.key, publishable.key] };
}

export async function renameEnvironment(db: D1Database, id: string, name: string): Promise<void> {
  await db.prepare("UPDATE environments SET name = ? WHERE id = ?").bind(name, id).run();
}

/**
 * Deletes an environment with everything that refers to it (keys, deployment history, workflow variables and
 * secrets, dead letters — which could only be read or retried through it), in one batch; its events stay for audit.
 */
export async function deleteEnvironment(db: D1Database, id: string): Promise<void> {
  await db.batch([
    db.prepare("DELETE FROM api_keys WHERE environment_id = ?").bind(id),
    db.prepare("DELETE FROM dead_letters WHERE environment_id = ?").bind(id),
    db.prepare("DELETE FROM webhook_subscriptions WHERE environment_id = ?").bind(id),
    db.prepare("DELETE FROM webhook_deliveries WHERE environment_id = ?").bind(id),
    db.prepare("DELETE FROM environment_variables WHERE environment_id = ?").bind(id),
    db.prepare("DELETE FROM deployments WHERE environment_id = ?").bind(id),
    db.prepare("DELETE FROM environments WHERE id = ?").bind(id),
  ]);
}
