import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { call, createOrganization, publish, type TestOrganization } from "../../support/api";
import { expectConsoleError } from "../../support/console";
import { helloWorld } from "../../support/examples";

let org: TestOrganization;

beforeAll(async () => {
  org = await createOrganization("Errors");
  await publish(org.adminKey, helloWorld(), [org.live.id]);
});

const surface = (body: unknown, key = org.live.publishableKey, headers: Record<string, string> = {}) =>
  call("POST", "/api/v1/surface-decisions", { key, body, headers });

describe("decision API errors", () => {
  it("refuses userIdentifier with a publishable key", async () => {
    const result = await surface({ surfaceSlug: "hello-world", identity: { userIdentifier: "someone" } });
    expect(result.status).toBe(403);
    expect(result.body).toMatchObject({ status: "error", statusCode: 403, code: "forbidden_identity_form" });
    expect(result.body.message).toMatch(/publishable/i);
  });

  it("takes the key from `PublicBearer <key>` as from `Bearer <key>` (the commercial proxy relays visitors' calls so)", async () => {
    const body = { surfaceSlug: "hello-world", identity: { anonymousIdentifier: "relayed" } };
    const relayed = await call("POST", "/api/v1/surface-decisions", { body, headers: { authorization: `PublicBearer ${org.live.secretKey}` } });
    expect(relayed.status).toBe(200);
    expect(relayed.body.identity).toMatchObject({ authType: "anonymous", identifier: "relayed" });
    for (const authorization of [`PublicBearer sk_nope`, `Public Bearer ${org.live.secretKey}`, `PublicBearer`]) {
      const refused = await call("POST", "/api/v1/surface-decisions", { body, headers: { authorization } });
      expect(refused.status, authorization).toBe(401);
      expect(refused.body.code).toBe("invalid_api_key");
    }
  });

  it("answers 404 for an unknown surface and for an environment without a deployed version", async () => {
    const unknown = await surface({ surfaceSlug: "nope", identity: { anonymousIdentifier: "a" } });
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ statusCode: 404, code: "surface_not_found" });
    const undeployed = await surface({ surfaceSlug: "hello-world", identity: { anonymousIdentifier: "a" } }, org.preview.publishableKey);
    expect(undeployed.status).toBe(404);
    expect(undeployed.body.message).toMatch(/deployed/);
  });

  it("answers 400 for malformed bodies and identities, with the error shape", async () => {
    const cases: [string | undefined, unknown][] = [
      ["{not json", undefined],
      [undefined, { surfaceSlug: "hello-world" }],
      [undefined, { surfaceSlug: "hello-world", identity: {} }],
      [undefined, { surfaceSlug: "hello-world", identity: { anonymousIdentifier: "a", userJwt: "x" } }],
      [undefined, { surfaceSlug: "hello-world", identity: { anonymousIdentifier: "" } }],
      [undefined, { surfaceSlug: "hello-world", identity: { anonymousIdentifier: 42 } }],
      [undefined, { identity: { anonymousIdentifier: "a" } }],
      [undefined, [1, 2, 3]],
      ["null", undefined],
    ];
    for (const [rawBody, body] of cases) {
      const result = rawBody !== undefined
        ? await call("POST", "/api/v1/surface-decisions", { key: org.live.publishableKey, rawBody, headers: { "content-type": "application/json" } })
        : await surface(body);
      expect(result.status, JSON.stringify({ rawBody, body, got: result.body })).toBe(400);
      expect(result.body).toMatchObject({ status: "error", statusCode: 400 });
      expect(result.body.requestId).toMatch(/^req_/);
    }
  });

  it("answers 413 for bodies over 64 KiB", async () => {
    const big = { surfaceSlug: "hello-world", identity: { anonymousIdentifier: "a" }, resource: { id: "r", meta: { blob: "x".repeat(70 * 1024) } } };
    const result = await surface(big);
    expect(result.status).toBe(413);
    expect(result.body).toMatchObject({ status: "error", statusCode: 413, code: "payload_too_large" });
  });

  it("answers 401 for missing, malformed and revoked keys", async () => {
    const body = { surfaceSlug: "hello-world", identity: { anonymousIdentifier: "a" } };
    expect((await call("POST", "/api/v1/surface-decisions", { body })).status).toBe(401);
    expect((await surface(body, "pk_bogus")).status).toBe(401);
    const created = await call("POST", `/api/v1/admin/environments/${org.live.id}/keys`, { key: org.live.secretKey, body: { type: "publishable" } });
    expect((await surface(body, created.body.key)).status).toBe(200);
    await call("DELETE", `/api/v1/admin/keys/${created.body.id}`, { key: org.live.secretKey });
    expect((await surface(body, created.body.key)).status).toBe(401);
  });

  it("answers 401 with the reason for an invalid JWT, and falls back to an anonymous identity when asked", async () => {
    const invalid = await surface({ surfaceSlug: "hello-world", identity: { userJwt: "a.b.c" } });
    expect(invalid.status).toBe(401);
    expect(invalid.body).toMatchObject({ statusCode: 401, code: "invalid_jwt" });
    const fallback = await surface({ surfaceSlug: "hello-world", identity: { userJwt: "a.b.c", createAnonymousIdentifierFallback: true } });
    expect(fallback.status).toBe(200);
    expect(fallback.body.identity).toMatchObject({ authType: "anonymous", isAuthenticated: false });
    expect(fallback.body.identity.identifier).toMatch(/^anon_/);
  });

  it("never answers 500 to odd input", async () => {
    const odd: unknown[] = [
      { surfaceSlug: "hello-world", identity: { anonymousIdentifier: "a" }, resource: { id: 5 } },
      { surfaceSlug: "hello-world", identity: { anonymousIdentifier: "a" }, http: { userAgent: 7 } },
      { surfaceSlug: "hello-world", identity: { anonymousIdentifier: "a" }, cloudflare: { cf: "x" } },
      { surfaceSlug: "x".repeat(500), identity: { anonymousIdentifier: "a" } },
      { surfaceSlug: "__proto__", identity: { anonymousIdentifier: "a" } },
      { surfaceSlug: "hello-world", identity: { anonymousIdentifier: "a".repeat(600) } },
      { surfaceSlug: "hello-world", identity: { userJwt: "x".repeat(20_000) } },
    ];
    for (const body of odd) {
      const result = await surface(body, org.live.secretKey);
      expect(result.status, JSON.stringify(result.body)).toBeLessThan(500);
      expect(result.status).toBeGreaterThanOrEqual(400);
    }
  });

  it("refuses a version whose snapshot was compiled under another schema, with a message that says what to do", async () => {
    const stale = await createOrganization("Stale snapshot");
    const versionId = await publish(stale.adminKey, helloWorld(), [stale.live.id]);
    await env.DB.prepare("UPDATE versions SET snapshot = json_set(snapshot, '$.schemaVersion', 99) WHERE id = ?").bind(versionId).run();
    // A 5xx is logged with its cause, for the operator.
    const logged = expectConsoleError("compiled with snapshot schema 99");

    const decision = await call("POST", "/api/v1/access-checks", { key: stale.live.secretKey, body: { identity: { anonymousIdentifier: "a" } } });
    expect(decision.status).toBe(503);
    expect(decision.body).toMatchObject({ status: "error", statusCode: 503, code: "version_unreadable" });
    expect(decision.body.message).toMatch(/snapshot schema 99.*create one from the draft/);

    const deployed = await call("POST", `/api/v1/admin/environments/${stale.preview.id}/deployments`, { key: stale.adminKey, body: { versionId } });
    // Deploying it is refused as a conflict with the version's state: nothing moves, and it is not a platform failure.
    expect(deployed.status).toBe(409);
    expect(deployed.body).toMatchObject({ code: "conflict" });
    expect(deployed.body.message).toMatch(/snapshot schema 99/);
    const deployments = await call("GET", `/api/v1/admin/environments/${stale.preview.id}/deployments`, { key: stale.adminKey });
    expect(deployments.body.deployments).toEqual([]);
    expect(logged.lines).toHaveLength(1);
  });
});
