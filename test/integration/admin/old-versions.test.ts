/**
 * Versions are immutable, but the platform moves on: validation rules tighten (schema/config.ts) and the snapshot
 * schema changes (engine/snapshotUpgrade.ts). A version frozen under older rules must stay readable, deployable,
 * rollback-able and servable; one this build cannot read is a clear 409 on deploy and a 503 on decisions, never a 500.
 * The rows are written straight into D1, as an older (or newer) build would have left them.
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { SNAPSHOT_SCHEMA_VERSION } from "../../../workers/engine/snapshot";
import type { SnapshotSchema, StoredSnapshot } from "../../../workers/engine";
import { WORKFLOW_COMPILER_GENERATION } from "../../../workers/config/workflowModule";
import { createSnapshotStore } from "../../../workers/services/snapshots";
import { readSnapshotsWithSchemaForTests } from "../../../workers/services/versions";
import { call, createOrganization, publish, type TestOrganization } from "../../support/api";
import { expectConsoleError } from "../../support/console";
import { eventsFor } from "../../support/events";
import { helloWorld } from "../../support/examples";

let org: TestOrganization;
/** The key that writes configuration, versions and deployments. */
let key: string;
let currentVersionId: string;
let stored: { document: Record<string, any>; snapshot: Record<string, any> };

beforeAll(async () => {
  org = await createOrganization("Old versions");
  key = org.adminKey;
  currentVersionId = await publish(key, helloWorld(), [org.live.id]);
  const row = await env.DB.prepare("SELECT document, snapshot FROM versions WHERE id = ?").bind(currentVersionId).first<{ document: string; snapshot: string }>();
  stored = { document: JSON.parse(row!.document), snapshot: JSON.parse(row!.snapshot) };
});

let restoreSchema: (() => void) | undefined;
afterEach(() => {
  restoreSchema?.();
  restoreSchema = undefined;
});

let inserted = 0;
/** A version row as another build would have written it; returns its id. */
async function insertVersion(document: unknown, snapshot: (versionId: string) => unknown, organizationId = org.id): Promise<string> {
  const id = `ver_old${String(++inserted).padStart(5, "0")}`;
  await env.DB.prepare(
    `INSERT INTO versions (id, organization_id, number, description, document, snapshot, created_at)
     VALUES (?, ?, (SELECT COALESCE(MAX(number), 0) + 1 FROM versions WHERE organization_id = ?), 'older build', ?, ?, ?)`,
  )
    .bind(id, organizationId, organizationId, JSON.stringify(document), JSON.stringify(snapshot(id)), new Date().toISOString())
    .run();
  return id;
}

const deploy = (environmentId: string, versionId: string) => call("POST", `/api/v1/admin/environments/${environmentId}/deployments`, { key, body: { versionId } });
const rollback = (environmentId: string, versionId?: string) =>
  call("POST", `/api/v1/admin/environments/${environmentId}/rollback`, { key, body: versionId ? { versionId } : {} });
const widgetOf = async () => {
  const decision = await call("POST", "/api/v1/surface-decisions", { key: org.live.secretKey, body: { surfaceSlug: "hello-world", identity: { anonymousIdentifier: `reader-${crypto.randomUUID()}` } } });
  expect(decision.status, JSON.stringify(decision.body)).toBe(200);
  return decision.body.features.widget.properties.enabled;
};

/** The anonymous plan's metered limit in a stored snapshot. */
function withAnonymousLimit(snapshot: Record<string, any>, limit: number, versionId: string): Record<string, any> {
  const copy = structuredClone(snapshot);
  copy.versionId = versionId;
  const anonymous = copy.plans.find((plan: { slug: string }) => plan.slug === "anonymous");
  for (const values of Object.values(anonymous.values) as Record<string, any>[]) values.enabled = { ...values.enabled, limit };
  return copy;
}

describe("a version whose document today's rules refuse", () => {
  it("is listed, read as stored, diffed, deployed, served from its snapshot and rolled back to", async () => {
    const document = structuredClone(stored.document);
    // Looser rules once: a 300-character plan name and a limit above today's maximum (1,000,000,000).
    document.plans.anonymous.name = "A".repeat(300);
    document.plans.anonymous.features.widget.enabled = { metered: { limit: 5_000_000_000, period: "lifetime", uniqueResources: false } };
    const versionId = await insertVersion(document, (id) => withAnonymousLimit(stored.snapshot, 5, id));

    const listed = await call("GET", "/api/v1/admin/versions", { key });
    expect(listed.status).toBe(200);
    expect(listed.body.versions.map((version: { id: string }) => version.id)).toContain(versionId);

    const read = await call("GET", `/api/v1/admin/versions/${versionId}`, { key });
    expect(read.status, JSON.stringify(read.body)).toBe(200);
    expect(read.body).toMatchObject({ id: versionId, description: "older build" });
    expect(read.body.document).toEqual(document);

    const diff = await call("GET", `/api/v1/admin/versions/${versionId}/diff?against=${currentVersionId}`, { key });
    expect(diff.status, JSON.stringify(diff.body)).toBe(200);
    expect(diff.body.changes).toEqual(
      expect.arrayContaining([
        { path: "plans.anonymous.name", change: "changed", from: "Anonymous", to: "A".repeat(300) },
        { path: "plans.anonymous.features.widget.enabled.metered.limit", change: "changed", from: 3, to: 5_000_000_000 },
      ]),
    );
    expect((await call("GET", `/api/v1/admin/versions/${currentVersionId}/diff?against=${versionId}`, { key })).status).toBe(200);

    const deployed = await deploy(org.live.id, versionId);
    expect(deployed.status, JSON.stringify(deployed.body)).toBe(201);
    // Decisions run on the stored snapshot (its limit of 5), not on a recompiled document.
    expect(await widgetOf()).toMatchObject({ hasAccess: true, consumedUnits: 1, totalUnits: 5 });

    expect((await deploy(org.live.id, currentVersionId)).status).toBe(201);
    expect(await widgetOf()).toMatchObject({ totalUnits: 3 });
    const rolledBack = await rollback(org.live.id);
    expect(rolledBack.status, JSON.stringify(rolledBack.body)).toBe(201);
    expect(rolledBack.body).toMatchObject({ kind: "rollback", versionId, previousVersionId: currentVersionId });
    expect(await widgetOf()).toMatchObject({ totalUnits: 5 });
    expect((await deploy(org.live.id, currentVersionId)).status).toBe(201);
  });
});

describe("a version whose snapshot has an older schema", () => {
  /**
   * A synthetic schema 0 (no build ever wrote one; the seam stands in for the step a real schema change would add):
   * surfaces were a list rather than a record by slug. Read without the step, the surface would not be found.
   */
  const toSchema0 = (snapshot: Record<string, any>): StoredSnapshot => ({ ...snapshot, schemaVersion: 0, surfaces: Object.values(snapshot.surfaces) });
  const WITH_SCHEMA_0: SnapshotSchema = {
    current: SNAPSHOT_SCHEMA_VERSION,
    upgrades: { 0: (snapshot) => ({ ...snapshot, surfaces: Object.fromEntries((snapshot.surfaces as { slug: string }[]).map((surface) => [surface.slug, surface])) }) },
  };

  it("is upgraded when it is loaded: read, diffed, deployed, served and rolled back to", async () => {
    restoreSchema = readSnapshotsWithSchemaForTests(WITH_SCHEMA_0);
    const versionId = await insertVersion(stored.document, (id) => toSchema0(withAnonymousLimit(stored.snapshot, 4, id)));

    expect((await call("GET", `/api/v1/admin/versions/${versionId}`, { key })).status).toBe(200);
    const diff = await call("GET", `/api/v1/admin/versions/${versionId}/diff?against=${currentVersionId}`, { key });
    expect(diff.status).toBe(200);
    expect(diff.body.changes).toEqual([]);

    const deployed = await deploy(org.live.id, versionId);
    expect(deployed.status, JSON.stringify(deployed.body)).toBe(201);
    expect(await widgetOf()).toMatchObject({ hasAccess: true, consumedUnits: 1, totalUnits: 4 });

    expect((await deploy(org.live.id, currentVersionId)).status).toBe(201);
    const rolledBack = await rollback(org.live.id, versionId);
    expect(rolledBack.status, JSON.stringify(rolledBack.body)).toBe(201);
    expect(await widgetOf()).toMatchObject({ totalUnits: 4 });
    expect((await deploy(org.live.id, currentVersionId)).status).toBe(201);
  });

  it("without a step from its schema, deploying it is a 409 and nothing moves", async () => {
    const versionId = await insertVersion(stored.document, (id) => toSchema0(withAnonymousLimit(stored.snapshot, 4, id)));
    const deployed = await deploy(org.preview.id, versionId);
    expect(deployed.status).toBe(409);
    expect(deployed.body).toMatchObject({ status: "error", statusCode: 409, code: "conflict" });
    expect(deployed.body.message).toMatch(new RegExp(`Version ${versionId} cannot be read.*snapshot schema 0, which this build cannot upgrade`));
    expect((await call("GET", `/api/v1/admin/environments/${org.preview.id}/deployments`, { key })).body.deployments).toEqual([]);
  });
});

describe("a version whose snapshot has a newer schema (compiled by a newer build)", () => {
  it("is still readable; deploying it is a 409; a decision on it is a 503 version_unreadable, not a 500", async () => {
    const future = SNAPSHOT_SCHEMA_VERSION + 1;
    const versionId = await insertVersion(stored.document, (id) => ({ ...stored.snapshot, versionId: id, schemaVersion: future, somethingNew: {} }));
    expect((await call("GET", `/api/v1/admin/versions/${versionId}`, { key })).status).toBe(200);

    const deployed = await deploy(org.preview.id, versionId);
    expect(deployed.status).toBe(409);
    expect(deployed.body).toMatchObject({ code: "conflict" });
    expect(deployed.body.message).toMatch(`snapshot schema ${future} by a newer build`);

    // As if a newer build had deployed it and this one still served the environment (a gradual rollout).
    const rollout = await createOrganization("Rollout");
    const deployedByNewerBuild = await insertVersion(stored.document, (id) => ({ ...stored.snapshot, versionId: id, schemaVersion: future }), rollout.id);
    await env.DB.prepare("UPDATE environments SET deployed_version_id = ? WHERE id = ?").bind(deployedByNewerBuild, rollout.live.id).run();
    const logged = expectConsoleError(`Version ${deployedByNewerBuild} cannot be read`);
    const decision = await call("POST", "/api/v1/access-checks", { key: rollout.live.secretKey, body: { identity: { anonymousIdentifier: "a" } } });
    expect(decision.status).toBe(503);
    expect(decision.body).toMatchObject({ status: "error", statusCode: 503, code: "version_unreadable" });
    expect(decision.body.message).toMatch(new RegExp(`Version ${deployedByNewerBuild} cannot be read by this build.*schema ${future} by a newer build`));
    expect(logged.lines).toHaveLength(1);
  });
});

/**
 * A version this build cannot serve: deploying it is a 409 naming why and nothing moves; a decision on an environment
 * that serves it anyway (deployed by another build, or before this check existed) is a 503 version_unreadable.
 */
async function expectUnreadable(snapshotOf: (versionId: string) => unknown, reason: string | RegExp) {
  const versionId = await insertVersion(stored.document, snapshotOf);
  const deployed = await deploy(org.preview.id, versionId);
  expect(deployed.status, JSON.stringify(deployed.body)).toBe(409);
  expect(deployed.body).toMatchObject({ status: "error", statusCode: 409, code: "conflict" });
  expect(deployed.body.message).toContain(`Version ${versionId} cannot be read by this build`);
  expect(deployed.body.message).toMatch(reason);
  expect((await call("GET", `/api/v1/admin/environments/${org.preview.id}/deployments`, { key })).body.deployments).toEqual([]);

  const serving = await createOrganization("Serving an unreadable version");
  const servedId = await insertVersion(stored.document, snapshotOf, serving.id);
  await env.DB.prepare("UPDATE environments SET deployed_version_id = ? WHERE id = ?").bind(servedId, serving.live.id).run();
  const logged = expectConsoleError(`Version ${servedId} cannot be read`);
  for (const [path, body] of [
    ["/api/v1/access-checks", { identity: { anonymousIdentifier: "a" } }],
    ["/api/v1/surface-decisions", { surfaceSlug: "hello-world", identity: { anonymousIdentifier: "a" } }],
  ] as const) {
    const decision = await call("POST", path, { key: serving.live.secretKey, body });
    expect(decision.status, JSON.stringify(decision.body)).toBe(503);
    expect(decision.body).toMatchObject({ status: "error", statusCode: 503, code: "version_unreadable" });
    expect(decision.body.message).toMatch(reason);
  }
  expect(logged.lines.length).toBeGreaterThan(0);
}

describe("a version whose stored workflow code this build's compiler would refuse (compiled by an older build)", () => {
  const withWorkflowCode = (code: string, stamp: Record<string, unknown> = {}) => (versionId: string) => ({
    ...stored.snapshot,
    ...stamp,
    workflowCompiler: undefined,
    versionId,
    workflows: [{ slug: "sneaky", name: "sneaky", type: "surface", surface: "hello-world", code, codeHash: "0".repeat(64), required: false }],
  });
  const GUARD = `import { __mosTick } from "./__mos_guard.js";\n`;

  /** An environment serving `snapshotOf`'s version, deployed through the API; the surface decision made on it. */
  async function servedDecision(snapshotOf: (versionId: string) => unknown) {
    const serving = await createOrganization("Serving an older build's workflow code");
    const versionId = await insertVersion(stored.document, snapshotOf, serving.id);
    const deployed = await call("POST", `/api/v1/admin/environments/${serving.live.id}/deployments`, { key: serving.adminKey, body: { versionId } });
    expect(deployed.status, JSON.stringify(deployed.body)).toBe(201);
    const decision = await call("POST", "/api/v1/surface-decisions", { key: serving.live.secretKey, body: { surfaceSlug: "hello-world", identity: { anonymousIdentifier: "reader" } } });
    expect(decision.status, JSON.stringify(decision.body)).toBe(200);
    return { serving, decision };
  }

  /**
   * Only the refused workflow is unusable: the version deploys and is served, the workflow's calls fail as
   * `unavailable` without running (its fallback applies) and the decision records why.
   */
  async function expectWorkflowRefused(snapshotOf: (versionId: string) => unknown, reason: string) {
    const { serving, decision } = await servedDecision(snapshotOf);
    expect(decision.body.surfaceBehavior).toEqual({});
    expect(decision.body.features.widget.properties.enabled).toMatchObject({ hasAccess: true });
    const [event] = (await eventsFor(serving.live.secretKey, "limit=20")).filter((candidate) => candidate.id === decision.body.eventId);
    expect(event?.record.workflows).toEqual([expect.objectContaining({ slug: "sneaky", ok: false, kind: "unavailable", error: expect.stringContaining(reason) })]);
  }

  it("a dynamic import of the budget module: only that workflow is unavailable", async () => {
    const code = `${GUARD}export default async () => {\n  const budget = await import("./__mos_budget.js");\n  return { properties: { escaped: typeof budget.withOperationBudget } };\n};`;
    await expectWorkflowRefused(withWorkflowCode(code), "the compiled code of workflow sneaky was refused by this build of the platform: dynamic import() is not available to workflows (line 3, column 24)");
  });

  it("a raw-socket import: only that workflow is unavailable", async () => {
    const code = `${GUARD}import { connect } from "cloudflare:sockets";\nexport default () => ({ properties: { socket: typeof connect } });`;
    await expectWorkflowRefused(withWorkflowCode(code), "was refused by this build of the platform: workflows cannot import modules");
  });

  it("code without the guard's tick: only that workflow is unavailable", async () => {
    await expectWorkflowRefused(withWorkflowCode(`export default () => ({ properties: {} });`), "does not import the guard's tick");
  });

  it("code stamped by an older compiler generation is checked", async () => {
    const stamp = { workflowCompiler: WORKFLOW_COMPILER_GENERATION - 1 };
    await expectWorkflowRefused((id) => ({ ...withWorkflowCode(`export default () => ({ properties: {} });`)(id), ...stamp }), "does not import the guard's tick");
  });

  it("the compiler's own output, stored as it was, is served", async () => {
    const code = `${GUARD}export default () => ({ properties: { greeting: "hi" } });`;
    const { decision } = await servedDecision(withWorkflowCode(code));
    expect(decision.body.surfaceBehavior).toEqual({ properties: { greeting: "hi" } });
  });

  it("names that only start with __mos (not the platform's) are the workflow's own", async () => {
    const code = `${GUARD}const __mostRecent = "hi";\nexport default () => ({ properties: { greeting: __mostRecent } });`;
    const { decision } = await servedDecision(withWorkflowCode(code));
    expect(decision.body.surfaceBehavior).toEqual({ properties: { greeting: "hi" } });
  });
});

describe("a version compiled by this build", () => {
  it("is stamped with this build's compiler generation, and its code is not checked again when it is loaded", async () => {
    expect(stored.snapshot.workflowCompiler).toBe(WORKFLOW_COMPILER_GENERATION);
    // Code the check would refuse (it does not import the tick), stamped as this generation's: served as stored.
    const serving = await createOrganization("Stamped");
    const versionId = await insertVersion(
      stored.document,
      (id) => ({
        ...stored.snapshot,
        versionId: id,
        workflows: [{ slug: "stamped", name: "stamped", type: "surface", surface: "hello-world", code: `export default () => ({ properties: { checked: false } });`, codeHash: "1".repeat(64), required: false }],
      }),
      serving.id,
    );
    await env.DB.prepare("UPDATE environments SET deployed_version_id = ? WHERE id = ?").bind(versionId, serving.live.id).run();
    const decision = await call("POST", "/api/v1/surface-decisions", { key: serving.live.secretKey, body: { surfaceSlug: "hello-world", identity: { anonymousIdentifier: "reader" } } });
    expect(decision.status, JSON.stringify(decision.body)).toBe(200);
    expect(decision.body.surfaceBehavior).toEqual({ properties: { checked: false } });
  });
});

describe("the isolate's snapshot store", () => {
  /** env.DB, counting the statements prepared on it; `failing` makes the next ones fail as an unreachable D1 would. */
  function countingDb() {
    const state = { prepared: 0, failing: false };
    const db = new Proxy(env.DB, {
      get(target, name) {
        if (name !== "prepare") return Reflect.get(target, name, target);
        return (query: string) => {
          state.prepared++;
          if (state.failing) throw new Error("D1 is unreachable");
          return target.prepare(query);
        };
      },
    });
    return { db, state };
  }

  it("remembers a version it cannot read, but not a failed read", async () => {
    const versionId = await insertVersion(stored.document, (id) => ({ ...stored.snapshot, versionId: id, schemaVersion: SNAPSHOT_SCHEMA_VERSION + 1 }));
    const store = createSnapshotStore();
    const { db, state } = countingDb();
    for (let attempt = 0; attempt < 3; attempt++) await expect(store.get(db, versionId)).rejects.toMatchObject({ code: "version_unreadable" });
    expect(state.prepared).toBe(1);

    state.failing = true;
    await expect(store.get(db, currentVersionId)).rejects.toThrow("D1 is unreachable");
    state.failing = false;
    expect((await store.get(db, currentVersionId)).snapshot.versionId).toBe(currentVersionId);
    expect(state.prepared).toBe(3);
  });
});

describe("a version whose stored snapshot is structurally broken", () => {
  it.each([
    ["without plans", (snapshot: Record<string, any>) => ({ ...snapshot, plans: undefined })],
    ["with features as an object", (snapshot: Record<string, any>) => ({ ...snapshot, features: {} })],
    ["with workflows null", (snapshot: Record<string, any>) => ({ ...snapshot, workflows: null })],
  ])("%s: deploy 409, decisions 503, never a 500", async (_what, broken) => {
    await expectUnreadable((versionId) => broken({ ...stored.snapshot, versionId }), /its stored snapshot is malformed/);
  });
});
