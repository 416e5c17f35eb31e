/**
 * Hardening found by sweeps and reviews: admin size limits (bodies, drafts, versions — 413 with nothing half-written),
 * writes that lose a race with a deletion (409), idempotent event ids per identity class, and a key cache that
 * arbitrary tokens cannot fill.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { call, createOrganization } from "../../support/api";
import { helloWorld } from "../../support/examples";
import { toApiError } from "../../../workers/app";
import { setVariable } from "../../../workers/services/environmentSettings";
import { cachedKeyCount, lookupApiKey } from "../../../workers/services/tenantCache";

const bulkyWorkflow = (index: number) => ({
  type: "endpoint",
  path: `bulky-${index}`,
  access: "none",
  // A string literal survives compilation, so the snapshot is as large as the source.
  source: `const padding = "${String(index).repeat(1).padEnd(190_000, "x")}";\nexport default () => new Response(String(padding.length));`,
});

describe("admin size limits", () => {
  it("refuses an admin body over 1 MiB with the documented error shape", async () => {
    const org = await createOrganization("Limits body");
    const response = await call("POST", "/api/v1/admin/features", { key: org.adminKey, body: { slug: "huge", name: "x".repeat(1_100_000) } });
    expect(response.status).toBe(413);
    expect(response.body).toMatchObject({ status: "error", statusCode: 413, code: "payload_too_large" });
    expect((await call("GET", "/api/v1/admin/features/huge", { key: org.live.secretKey })).status).toBe(404);
  });

  it("a draft cannot grow past 1 MiB through collection edits, and a version that would not fit a row is refused", async () => {
    const org = await createOrganization("Limits draft");
    expect((await call("PUT", "/api/v1/admin/config", { key: org.adminKey, body: helloWorld() })).status).toBe(200);
    for (let index = 0; index < 5; index++) {
      const stored = await call("PUT", `/api/v1/admin/workflows/bulky-${index}`, { key: org.adminKey, body: bulkyWorkflow(index) });
      expect(stored.status).toBe(200);
    }
    const revision = (await call("GET", "/api/v1/admin/config", { key: org.live.secretKey })).headers.get("x-draft-revision");
    const sixth = await call("PUT", "/api/v1/admin/workflows/bulky-5", { key: org.adminKey, body: bulkyWorkflow(5) });
    expect(sixth.status).toBe(413);
    expect(sixth.body).toMatchObject({ code: "payload_too_large", message: expect.stringMatching(/documents are limited to 1048576 bytes/) });
    const after = await call("GET", "/api/v1/admin/config", { key: org.live.secretKey });
    expect(after.headers.get("x-draft-revision")).toBe(revision);
    expect(Object.keys(after.body.workflows)).toHaveLength(5);

    // About 0.95 MB of document compiles to as much snapshot again: more than one D1 row holds.
    const version = await call("POST", "/api/v1/admin/versions", { key: org.adminKey, body: { description: "too big" } });
    expect(version.status).toBe(413);
    expect(version.body.message).toMatch(/compiles to \d+ bytes/);
    expect((await call("GET", "/api/v1/admin/versions", { key: org.live.secretKey })).body.versions).toEqual([]);
  });

  it("a dry run answers what the apply would: 413 when the stored document would pass the limit", async () => {
    const org = await createOrganization("Limits dry run");
    // Tabs take one byte in YAML and two in JSON: a YAML body under 1 MiB stores as more than 1 MiB.
    const document = helloWorld();
    document.workflows = Object.fromEntries(
      Array.from({ length: 4 }, (_, index) => [`tabs-${index}`, { type: "endpoint", path: `tabs-${index}`, access: "none", source: `export default () => new Response("ok");${"\t".repeat(190_000)}` }]),
    );
    const yaml = stringify(document);
    expect(new TextEncoder().encode(yaml).byteLength).toBeLessThan(1024 * 1024);
    const headers = { "content-type": "application/yaml" };
    const dryRun = await call("PUT", "/api/v1/admin/config?dryRun=true", { key: org.adminKey, rawBody: yaml, headers });
    expect(dryRun.status).toBe(413);
    const apply = await call("PUT", "/api/v1/admin/config", { key: org.adminKey, rawBody: yaml, headers });
    expect(apply.status).toBe(413);
    expect(apply.body.message).toBe(dryRun.body.message);
  });
});

describe("lost races with a deletion", () => {
  it("a write whose parent row another request deleted is a 409, not a 500 (the real D1 error, mapped)", async () => {
    const failure = await setVariable(env.DB, env.SECRETS_KEY, "env_deleted_meanwhile", { name: "X", value: "1", secret: false }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(Error);
    const mapped = toApiError(failure);
    expect(mapped.status).toBe(409);
    expect(mapped.code).toBe("conflict");
  });
});

describe("identities of one name", () => {
  it("an anonymous and a signed-in identity of one name never share an idempotent event id", async () => {
    const org = await createOrganization("Event ids per identity class");
    await call("PUT", "/api/v1/admin/config", { key: org.adminKey, body: helloWorld() });
    const version = await call("POST", "/api/v1/admin/versions", { key: org.adminKey, body: { description: "v" } });
    await call("POST", `/api/v1/admin/environments/${org.live.id}/deployments`, { key: org.live.secretKey, body: { versionId: version.body.id } });
    const decide = (key: string, identity: Record<string, string>) =>
      call("POST", "/api/v1/surface-decisions", { key, headers: { "idempotency-key": "order-42" }, body: { surfaceSlug: "hello-world", identity } });
    const spoofed = await decide(org.live.publishableKey, { anonymousIdentifier: "alice@example.com" });
    const real = await decide(org.live.secretKey, { userIdentifier: "alice@example.com" });
    expect([spoofed.status, real.status]).toEqual([200, 200]);
    expect(real.body.eventId).not.toBe(spoofed.body.eventId);
  });
});

describe("the key cache", () => {
  it("answers tokens that are not keys without caching them (arbitrary tokens cannot fill it)", async () => {
    const before = cachedKeyCount();
    for (let i = 0; i < 20; i++) expect(await lookupApiKey(env.DB, `${"x".repeat(10_000)}${i}`)).toBeNull();
    expect(cachedKeyCount()).toBe(before);
    const response = await call("GET", "/api/v1/admin/features", { key: "y".repeat(50_000) });
    expect(response.status).toBe(401);
  });
});

describe("authentication methods", () => {
  it("a JWKS URL must be https (a key set fetched in the clear could be swapped)", async () => {
    const org = await createOrganization("JWKS over http");
    const document = helloWorld();
    document.authMethods = { idp: { jwksUrl: "http://idp.example.test/.well-known/jwks.json" } };
    const refused = await call("PUT", "/api/v1/admin/config", { key: org.adminKey, body: document });
    expect(refused.status).toBe(400);
    expect(refused.body.details[0].path).toBe("authMethods.idp.jwksUrl");
    document.authMethods = { idp: { jwksUrl: "https://idp.example.test/.well-known/jwks.json", requireExpiry: true } };
    expect((await call("PUT", "/api/v1/admin/config", { key: org.adminKey, body: document })).status).toBe(200);
  });
});

describe("browsers", () => {
  it("the decision routes answer CORS for publishable keys; admin routes do not", async () => {
    const org = await createOrganization("CORS");
    const preflight = await call("OPTIONS", "/api/v1/surface-decisions", {
      headers: { origin: "https://shop.example", "access-control-request-method": "POST", "access-control-request-headers": "authorization,content-type,idempotency-key" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("*");
    expect(preflight.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("idempotency-key");
    const check = await call("POST", "/api/v1/access-checks", {
      key: org.live.publishableKey,
      headers: { origin: "https://shop.example" },
      body: { identity: { anonymousIdentifier: "browser-1" } },
    });
    expect(check.headers.get("access-control-allow-origin")).toBe("*");
    expect(check.headers.get("access-control-expose-headers")).toContain("Server-Timing");
    const admin = await call("GET", "/api/v1/admin/features", { key: org.live.secretKey, headers: { origin: "https://shop.example" } });
    expect(admin.headers.get("access-control-allow-origin")).toBeNull();
  });
});
