/** GET /api/v1/admin/session: who the caller is and what it may do, for each kind of admin credential. */
import { beforeAll, describe, expect, it } from "vitest";
import { RULES } from "../../../workers/middleware/permissions";
import { call, createOrganization, OPERATOR, type TestOrganization } from "../../support/api";

let org: TestOrganization;

beforeAll(async () => {
  org = await createOrganization("Session org");
});

async function organizationKey(role: string): Promise<{ id: string; key: string }> {
  const created = await call("POST", "/api/v1/admin/organization/keys", { key: org.adminKey, body: { name: `${role} key`, role } });
  expect(created.status).toBe(201);
  return created.body;
}

const session = (key: string, headers?: Record<string, string>) => call("GET", "/api/v1/admin/session", { key, headers });

describe("GET /api/v1/admin/session", () => {
  it("describes the operator acting on an organization: every action", async () => {
    const { status, body } = await session(OPERATOR, { "x-organization-id": org.id });
    expect(status).toBe(200);
    expect(body).toEqual({ credential: "operator", role: null, organizationId: org.id, environment: null, permissions: Object.keys(RULES) });
  });

  it("asks the operator to name an organization", async () => {
    const { status, body } = await session(OPERATOR);
    expect(status).toBe(400);
    expect(body.message).toContain("X-Organization-Id");
  });

  it("describes an admin organization key: every action but the operator's", async () => {
    const { status, body } = await session(org.adminKey);
    expect(status).toBe(200);
    expect(body.credential).toBe("organizationKey");
    expect(body.role).toBe("admin");
    expect(body.organizationId).toBe(org.id);
    expect(body.environment).toBeNull();
    expect(body.permissions).toContain("configuration.write");
    expect(body.permissions).toContain("organizationKeys.write");
    expect(body.permissions).not.toContain("organizations.manage");
  });

  it("gives a read-only organization key the reads only", async () => {
    const { key } = await organizationKey("read-only");
    const { status, body } = await session(key);
    expect(status).toBe(200);
    expect(body.role).toBe("read-only");
    expect(body.permissions).toContain("configuration.read");
    expect(body.permissions).toContain("events.read");
    expect(body.permissions).not.toContain("configuration.write");
    expect(body.permissions).not.toContain("deployments.write");
    expect(body.permissions).not.toContain("organizationKeys.read");
  });

  it("gives a deployer the configuration and deploys but not the keys", async () => {
    const { key } = await organizationKey("deployer");
    const { body } = await session(key);
    expect(body.role).toBe("deployer");
    expect(body.permissions).toEqual(expect.arrayContaining(["configuration.write", "versions.create", "deployments.write"]));
    expect(body.permissions).not.toContain("organizationKeys.write");
    expect(body.permissions).not.toContain("settings.write");
  });

  it("describes an environment's secret key: its environment, and no configuration writes", async () => {
    const { status, body } = await session(org.live.secretKey);
    expect(status).toBe(200);
    expect(body.credential).toBe("environmentKey");
    expect(body.role).toBeNull();
    expect(body.organizationId).toBe(org.id);
    expect(body.environment).toEqual({ id: org.live.id, slug: "live" });
    expect(body.permissions).toEqual(expect.arrayContaining(["configuration.read", "keys.write", "deployments.write", "events.read"]));
    expect(body.permissions).not.toContain("configuration.write");
    expect(body.permissions).not.toContain("environments.create");
  });

  it("refuses a publishable key", async () => {
    const { status } = await session(org.live.publishableKey);
    expect(status).toBe(403);
  });

  it("refuses a missing, an unknown and a revoked credential with 401", async () => {
    expect((await call("GET", "/api/v1/admin/session")).status).toBe(401);
    expect((await session("ok_org_0000000000000000_nope")).status).toBe(401);
    const { id, key } = await organizationKey("read-only");
    expect((await session(key)).status).toBe(200);
    expect((await call("DELETE", `/api/v1/admin/organization/keys/${id}`, { key: org.adminKey })).status).toBe(200);
    const revoked = await session(key);
    expect(revoked.status).toBe(401);
    expect(revoked.body.code).toBe("invalid_api_key");
  });
});
