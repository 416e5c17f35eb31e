/**
 * Versions (immutable compiled snapshots of the draft) and deployments (which version an environment serves).
 */
import { compileSnapshot } from "../config/compile";
import { verifyCompiledWorkflow, WORKFLOW_COMPILER_GENERATION } from "../config/workflowModule";
import { prepareSnapshot, type PreparedSnapshot } from "../engine";
import type { ConfigSnapshot, SnapshotWorkflow } from "../engine/snapshot";
import { SNAPSHOT_SCHEMA, UnreadableSnapshotError, upgradeSnapshot, type SnapshotSchema } from "../engine/snapshotUpgrade";
import { ApiError } from "../errors";
import { sha256Hex } from "../lib/crypto";
import { isUniqueConstraintError } from "../lib/d1Errors";
import { newId, nowIso } from "../lib/ids";
import { getDraft, validateDocument } from "./drafts";
import { isRecord, utf8ByteLength } from "../lib/json";

export interface VersionInfo {
  id: string;
  organizationId: string;
  number: number;
  description: string;
  createdAt: string;
}

export interface Version extends VersionInfo {
  /**
   * The document exactly as it was frozen. It is not validated again: rules that tightened since (schema/config.ts)
   * must not make an immutable version unreadable — only the draft is held to today's rules.
   */
  document: Record<string, unknown>;
}

interface VersionRow {
  id: string;
  organization_id: string;
  number: number;
  description: string;
  created_at: string;
  document?: string;
}

const toInfo = (row: VersionRow): VersionInfo => ({
  id: row.id,
  organizationId: row.organization_id,
  number: row.number,
  description: row.description,
  createdAt: row.created_at,
});

/** One D1 row (at most 2,000,000 bytes) holds a version's document and snapshot; the rest is headroom. */
const MAX_VERSION_BYTES = 1_900_000;

export type WorkflowCompiler = (slug: string, source: string) => string;

/** Validates the whole draft, compiles it and stores the result as the next version. */
export async function createVersion(
  db: D1Database,
  organizationId: string,
  description: string,
  compileWorkflow?: WorkflowCompiler,
): Promise<VersionInfo> {
  const draft = await getDraft(db, organizationId);
  const document = validateDocument(draft.stored ?? draft.document);
  const id = newId("ver");
  const snapshot = await compileSnapshot(document, { versionId: id, organizationId, compileWorkflow });
  const documentJson = JSON.stringify(document);
  const snapshotJson = JSON.stringify(snapshot);
  const rowBytes = utf8ByteLength(documentJson) + utf8ByteLength(snapshotJson);
  if (rowBytes > MAX_VERSION_BYTES) {
    throw new ApiError(
      "payload_too_large",
      `This configuration compiles to ${rowBytes} bytes (document and snapshot); a version holds at most ${MAX_VERSION_BYTES}: shrink workflow sources or split features`,
    );
  }
  for (let attempt = 0; ; attempt++) {
    const createdAt = nowIso();
    try {
      // The number is computed inside the INSERT so that two concurrent creations cannot pick the same one silently:
      // the UNIQUE (organization_id, number) constraint rejects the loser, which retries.
      await db
        .prepare(
          `INSERT INTO versions (id, organization_id, number, description, document, snapshot, created_at)
           VALUES (?, ?, (SELECT COALESCE(MAX(number), 0) + 1 FROM versions WHERE organization_id = ?), ?, ?, ?, ?)`,
        )
        .bind(id, organizationId, organizationId, description, documentJson, snapshotJson, createdAt)
        .run();
      const row = await db.prepare("SELECT id, organization_id, number, description, created_at FROM versions WHERE id = ?").bind(id).first<VersionRow>();
      return toInfo(row!);
    } catch (error) {
      if (attempt >= 3 || !isUniqueConstraintError(error)) throw error;
    }
  }
}

export async function listVersions(db: D1Database, organizationId: string): Promise<VersionInfo[]> {
  const { results } = await db
    .prepare("SELECT id, organization_id, number, description, created_at FROM versions WHERE organization_id = ? ORDER BY number DESC")
    .bind(organizationId)
    .all<VersionRow>();
  return results.map(toInfo);
}

export async function getVersion(db: D1Database, organizationId: string, id: string): Promise<Version | null> {
  const row = await db
    .prepare("SELECT id, organization_id, number, description, created_at, document FROM versions WHERE id = ? AND organization_id = ?")
    .bind(id, organizationId)
    .first<VersionRow>();
  if (!row) return null;
  const document = parseStored(row.document!);
  return { ...toInfo(row), document: isRecord(document) ? document : {} };
}

/** Stored JSON; a row that is not JSON at all (written by hand) reads as nothing rather than failing the reader. */
function parseStored(json: string): unknown {
  try {
    return JSON.parse(json) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * The schema stored snapshots are read into: this build's. A test-only seam replaces it
 * (`readSnapshotsWithSchemaForTests`) to run a synthetic older schema and its upgrade step through the real routes
 * before a second schema exists; nothing else changes it.
 */
let snapshotSchema: SnapshotSchema = SNAPSHOT_SCHEMA;

/** Tests only: read snapshots with `schema` until the returned function restores this build's. */
export function readSnapshotsWithSchemaForTests(schema: SnapshotSchema): () => void {
  snapshotSchema = schema;
  return () => {
    snapshotSchema = SNAPSHOT_SCHEMA;
  };
}

/**
 * A version's compiled snapshot, ready to serve: upgraded to the schema this build reads (engine/snapshotUpgrade.ts),
 * so a version compiled by an older build is served as it was frozen; its workflows' compiled code checked again
 * (config/workflowModule.ts) unless the snapshot is stamped with this build's compiler generation or a later one, since
 * an older build's compiler may have let through what this one refuses; and prepared for the engine. A workflow whose
 * code is refused is marked `refused` and given code that runs nothing: only that workflow is unusable (its calls fail
 * as `unavailable`, so its fallback applies), the rest of the version is served. A snapshot this build cannot read — a
 * newer schema, a row that is not a snapshot, one whose structure preparing it trips over — is a 503
 * `version_unreadable` naming the version (deploy and rollback turn it into a 409), never a 500. The work is done once
 * per version per isolate (services/snapshots.ts caches the result, refusals included), never on a decision's hot path.
 */
export async function loadPreparedSnapshot(db: D1Database, versionId: string): Promise<PreparedSnapshot | null> {
  const row = await db.prepare("SELECT snapshot FROM versions WHERE id = ?").bind(versionId).first<{ snapshot: string }>();
  if (!row) return null;
  let snapshot: ConfigSnapshot;
  try {
    snapshot = upgradeSnapshot(parseStored(row.snapshot), snapshotSchema);
  } catch (error) {
    if (error instanceof UnreadableSnapshotError) throw versionUnreadable(versionId, error.message);
    throw error;
  }
  const workflows = await checkedWorkflows(snapshot);
  if (typeof workflows === "string") throw versionUnreadable(versionId, workflows);
  try {
    return prepareSnapshot(workflows === snapshot.workflows ? snapshot : { ...snapshot, workflows });
  } catch (error) {
    throw versionUnreadable(versionId, `its stored snapshot is malformed (${error instanceof Error ? error.message : String(error)})`);
  }
}

/** The snapshot of `loadPreparedSnapshot`, for the admin routes (deploy and rollback check it before anything moves). */
export async function loadSnapshot(db: D1Database, versionId: string): Promise<ConfigSnapshot | null> {
  return (await loadPreparedSnapshot(db, versionId))?.snapshot ?? null;
}

/** Whether stored workflow code must be checked again: it was compiled by an older compiler than this build's. */
function needsVerification(snapshot: ConfigSnapshot): boolean {
  const generation: unknown = snapshot.workflowCompiler;
  return typeof generation !== "number" || generation < WORKFLOW_COMPILER_GENERATION;
}

/**
 * The snapshot's workflows as this build serves them: the same list when nothing was refused, otherwise a copy in
 * which each refused workflow is marked and its code replaced. A string when the list itself is malformed.
 */
async function checkedWorkflows(snapshot: ConfigSnapshot): Promise<SnapshotWorkflow[] | string> {
  const workflows: unknown = snapshot.workflows;
  if (!Array.isArray(workflows)) return "its stored snapshot is malformed (workflows is not a list)";
  for (const workflow of workflows as unknown[]) {
    if (!isRecord(workflow) || typeof workflow.slug !== "string") return "its stored snapshot is malformed (a workflow without a slug)";
  }
  if (!needsVerification(snapshot)) return workflows as SnapshotWorkflow[];
  let checked: SnapshotWorkflow[] | null = null;
  for (const [index, workflow] of (workflows as SnapshotWorkflow[]).entries()) {
    const violation = verifyCompiledWorkflow(workflow.code);
    if (!violation) continue;
    checked ??= [...(workflows as SnapshotWorkflow[])];
    checked[index] = await refusedWorkflow(workflow, `${violation.reason} (line ${violation.line}, column ${violation.column})`);
  }
  return checked ?? (workflows as SnapshotWorkflow[]);
}

/**
 * A workflow whose stored code was refused: marked, so that the runners answer `unavailable` without starting
 * anything, and with code that only throws why, so that a runner that ran it anyway would run none of the stored code.
 */
async function refusedWorkflow(workflow: SnapshotWorkflow, reason: string): Promise<SnapshotWorkflow> {
  const refused = `the compiled code of workflow ${workflow.slug} was refused by this build of the platform: ${reason}`;
  const code = `export default () => {\n  throw new Error(${JSON.stringify(refused)});\n};\n`;
  return { ...workflow, code, codeHash: await sha256Hex(code), refused };
}

function versionUnreadable(versionId: string, reason: string): ApiError {
  return new ApiError(
    "version_unreadable",
    `Version ${versionId} cannot be read by this build of the platform: ${reason}. Deploy a version this build reads (create one from the draft), or finish the platform's rollout`,
  );
}

// ---------------------------------------------------------------------------------------------------------------

export interface Deployment {
  id: string;
  environmentId: string;
  versionId: string;
  previousVersionId: string | null;
  kind: "deploy" | "rollback";
  createdAt: string;
}

/** Points the environment at the version and records the move. */
export async function deployVersion(
  db: D1Database,
  input: { organizationId: string; environmentId: string; versionId: string; previousVersionId: string | null; kind: "deploy" | "rollback" },
): Promise<Deployment> {
  const deployment: Deployment = {
    id: newId("dep"),
    environmentId: input.environmentId,
    versionId: input.versionId,
    previousVersionId: input.previousVersionId,
    kind: input.kind,
    createdAt: nowIso(),
  };
  await db.batch([
    db.prepare("UPDATE environments SET deployed_version_id = ? WHERE id = ? AND organization_id = ?").bind(input.versionId, input.environmentId, input.organizationId),
    db
      .prepare("INSERT INTO deployments (id, organization_id, environment_id, version_id, previous_version_id, kind, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
      .bind(deployment.id, input.organizationId, deployment.environmentId, deployment.versionId, deployment.previousVersionId, deployment.kind, deployment.createdAt),
  ]);
  return deployment;
}

export async function listDeployments(db: D1Database, environmentId: string): Promise<Deployment[]> {
  const { results } = await db
    .prepare("SELECT * FROM deployments WHERE environment_id = ? ORDER BY created_at DESC, rowid DESC")
    .bind(environmentId)
    .all<{ id: string; environment_id: string; version_id: string; previous_version_id: string | null; kind: "deploy" | "rollback"; created_at: string }>();
  return results.map((row) => ({
    id: row.id,
    environmentId: row.environment_id,
    versionId: row.version_id,
    previousVersionId: row.previous_version_id,
    kind: row.kind,
    createdAt: row.created_at,
  }));
}

/** The version deployed before the current one (what a rollback without a target returns to). */
export async function previousDeployedVersion(db: D1Database, environmentId: string, currentVersionId: string | null): Promise<string> {
  const deployments = await listDeployments(db, environmentId);
  const candidate = deployments.find((deployment) => deployment.versionId !== currentVersionId);
  if (!candidate) throw new ApiError("conflict", "There is no earlier deployment to roll back to");
  return candidate.versionId;
}

// ---------------------------------------------------------------------------------------------------------------

export interface DiffEntry {
  path: string;
  change: "added" | "removed" | "changed";
  from?: unknown;
  to?: unknown;
}

/** A structural diff of two documents: one entry per leaf (or whole subtree) that differs. */
export function diffDocuments(from: unknown, to: unknown, path = ""): DiffEntry[] {
  if (isRecord(from) && isRecord(to)) {
    const out: DiffEntry[] = [];
    const keys = [...new Set([...Object.keys(from), ...Object.keys(to)])].sort();
    for (const key of keys) {
      const childPath = path ? `${path}.${key}` : key;
      if (!Object.hasOwn(to, key)) out.push({ path: childPath, change: "removed", from: from[key] });
      else if (!Object.hasOwn(from, key)) out.push({ path: childPath, change: "added", to: to[key] });
      else out.push(...diffDocuments(from[key], to[key], childPath));
    }
    return out;
  }
  return JSON.stringify(from) === JSON.stringify(to) ? [] : [{ path: path || "(root)", change: "changed", from, to }];
}

