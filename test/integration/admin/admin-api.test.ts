import { describe, expect, it } from "vitest";
import { call, createOrganization, OPERATOR } from "../../support/api";
import { helloWorld, newsSite, newsSiteYaml } from "../../support/examples";

describe("organizations (operator)", () => {
  it("creates an organization with preview and live environments, four keys and an admin organization key", async () => {
    const { status, body } = await call("POST", "/api/v1/admin/organizations", { key: OPERATOR, body: { name: "Acme" } });
    expect(status).toBe(201);
    expect(body.organization.name).toBe("Acme");
    expect(body.environments.map((e: any) => [e.slug, e.type])).toEqual([
      ["preview", "preview"],
      ["live", "production"],
    ]);
    expect(body.keys).toHaveLength(4);
    for (const key of body.keys) {
      const environment = body.environments.find((e: any) => e.id === key.environmentId);
      expect(key.key).toMatch(new RegExp(`^(sk|pk)_${environment.id}_[a-z0-9]{32}$`));
      expect(key.key.startsWith(key.prefix)).toBe(true);
      expect(key.prefix.length).toBeLessThan(key.key.length - 20);
    }
    expect(body.organizationKeys).toEqual([expect.objectContaining({ organizationId: body.organization.id, role: "admin", revokedAt: null })]);
    const [adminKey] = body.organizationKeys;
    expect(adminKey.key).toMatch(new RegExp(`^ok_${body.organization.id}_[a-z0-9]{32}$`));
    expect(adminKey.key.startsWith(adminKey.prefix)).toBe(true);
    expect(adminKey.prefix.length).toBeLessThan(adminKey.key.length - 20);
    const listed = await call("GET", "/api/v1/admin/organizations", { key: OPERATOR });
    expect(listed.body.organizations.some((o: any) => o.id === body.organization.id)).toBe(true);
  });

  it("refuses organization creation without the operator token", async () => {
    const org = await createOrganization();
    expect((await call("POST", "/api/v1/admin/organizations", { body: { name: "x" } })).status).toBe(401);
    const withKey = await call("POST", "/api/v1/admin/organizations", { key: org.live.secretKey, body: { name: "x" } });
    expect(withKey.status).toBe(403);
    expect(withKey.body).toMatchObject({ status: "error", statusCode: 403, code: "forbidden" });
    expect(withKey.body.requestId).toMatch(/^req_/);
    const withOrganizationKey = await call("POST", "/api/v1/admin/organizations", { key: org.adminKey, body: { name: "x" } });
    expect(withOrganizationKey.status).toBe(403);
    expect(withOrganizationKey.body).toMatchObject({ code: "forbidden", message: "This operation needs the operator token" });
    expect((await call("GET", "/api/v1/admin/organizations", { key: org.adminKey })).status).toBe(403);
  });

  it("lets the operator act on an organization through X-Organization-Id", async () => {
    const org = await createOrganization("Operated");
    const { status, body } = await call("GET", "/api/v1/admin/organization", { key: OPERATOR, headers: { "x-organization-id": org.id } });
    expect(status).toBe(200);
    expect(body.organization.id).toBe(org.id);
    expect((await call("GET", "/api/v1/admin/organization", { key: OPERATOR })).status).toBe(400);
  });

  it("shows the key's organization; an environment's key sees its own environment only", async () => {
    const org = await createOrganization("Mine");
    const { body } = await call("GET", "/api/v1/admin/organization", { key: org.adminKey });
    expect(body.organization).toMatchObject({ id: org.id, name: "Mine" });
    expect(body.environments).toHaveLength(2);
    const asPreview = await call("GET", "/api/v1/admin/organization", { key: org.preview.secretKey });
    expect(asPreview.body.organization).toMatchObject({ id: org.id, name: "Mine" });
    expect(asPreview.body.environments.map((environment: any) => environment.id)).toEqual([org.preview.id]);
  });
});

describe("environments and keys", () => {
  it("creates, reads, renames and deletes an environment", async () => {
    const org = await createOrganization();
    const key = org.adminKey;
    const created = await call("POST", "/api/v1/admin/environments", { key, body: { slug: "staging", type: "production" } });
    expect(created.status).toBe(201);
    expect(created.body.keys.map((k: any) => k.type).sort()).toEqual(["publishable", "secret"]);
    const id = created.body.environment.id;
    expect((await call("POST", "/api/v1/admin/environments", { key, body: { slug: "staging", type: "preview" } })).status).toBe(409);
    expect((await call("GET", `/api/v1/admin/environments/${id}`, { key })).body.slug).toBe("staging");
    expect((await call("PATCH", `/api/v1/admin/environments/${id}`, { key, body: { name: "Staging" } })).body.name).toBe("Staging");
    expect((await call("GET", "/api/v1/admin/environments", { key })).body.environments).toHaveLength(3);
    // An environment's key deletes no environment, its own included; the organization's admin key can.
    const ownKey = created.body.keys.find((k: any) => k.type === "secret").key;
    expect((await call("DELETE", `/api/v1/admin/environments/${id}`, { key: ownKey })).status).toBe(403);
    expect((await call("DELETE", `/api/v1/admin/environments/${id}`, { key: org.live.secretKey })).status).toBe(403);
    expect((await call("DELETE", `/api/v1/admin/environments/${id}`, { key })).status).toBe(200);
    expect((await call("GET", `/api/v1/admin/environments/${id}`, { key })).status).toBe(404);
    expect((await call("GET", "/api/v1/admin/organization", { key: ownKey })).status).toBe(401);
  });

  it("lists keys by prefix only, creates, revokes and rotates them", async () => {
    const org = await createOrganization();
    const key = org.adminKey;
    const listed = await call("GET", `/api/v1/admin/environments/${org.live.id}/keys`, { key });
    expect(listed.body.keys).toHaveLength(2);
    for (const k of listed.body.keys) expect(k.key).toBeUndefined();
    expect(JSON.stringify(listed.body)).not.toContain(org.live.secretKey);

    const created = await call("POST", `/api/v1/admin/environments/${org.live.id}/keys`, { key, body: { type: "secret", name: "CI" } });
    expect(created.status).toBe(201);
    const fresh = created.body.key as string;
    expect((await call("GET", "/api/v1/admin/organization", { key: fresh })).status).toBe(200);

    const revoked = await call("DELETE", `/api/v1/admin/keys/${created.body.id}`, { key });
    expect(revoked.body.revokedAt).toBeTruthy();
    const afterRevoke = await call("GET", "/api/v1/admin/organization", { key: fresh });
    expect(afterRevoke.status).toBe(401);
    expect(afterRevoke.body).toMatchObject({ status: "error", statusCode: 401, code: "invalid_api_key" });

    const live = (await call("GET", `/api/v1/admin/environments/${org.live.id}/keys`, { key })).body.keys.find((k: any) => k.type === "secret" && !k.revokedAt && k.id !== created.body.id);
    const rotated = await call("POST", `/api/v1/admin/keys/${live.id}/rotate`, { key });
    expect(rotated.status).toBe(201);
    expect(rotated.body.key).not.toBe(org.live.secretKey);
    expect((await call("GET", "/api/v1/admin/organization", { key: org.live.secretKey })).status).toBe(401);
    expect((await call("GET", "/api/v1/admin/organization", { key: rotated.body.key })).status).toBe(200);
    expect((await call("POST", `/api/v1/admin/keys/${live.id}/rotate`, { key })).status).toBe(409);
  });

  it("refuses publishable keys, malformed and unknown keys on the admin API", async () => {
    const org = await createOrganization();
    expect((await call("GET", "/api/v1/admin/environments", { key: org.live.publishableKey })).status).toBe(403);
    expect((await call("GET", "/api/v1/admin/environments", { key: "sk_nope" })).status).toBe(401);
    const forged = org.live.secretKey.slice(0, -4) + "zzzz";
    expect((await call("GET", "/api/v1/admin/environments", { key: forged })).status).toBe(401);
    expect((await call("GET", "/api/v1/admin/environments")).status).toBe(401);
  });
});

describe("draft collections", () => {
  it("creates, lists, reads, replaces and deletes every kind of item", async () => {
    const org = await createOrganization();
    const key = org.adminKey;
    const pem = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----";
    const items: [string, Record<string, unknown>][] = [
      ["features", { slug: "widget", properties: { premium: { type: "boolean" } } }],
      ["plans", { slug: "free", autoAssign: ["anonymous"], features: { widget: { enabled: "on" } } }],
      ["surfaces", { slug: "home", consumes: [], components: { banner: {} } }],
      ["auth-methods", { slug: "main", publicKey: pem, identifierClaim: "email" }],
      ["workflows", { slug: "prov", type: "provisioning", source: "export default async () => []" }],
    ];
    for (const [path, item] of items) {
      const created = await call("POST", `/api/v1/admin/${path}`, { key, body: item });
      expect(created.status, `${path}: ${JSON.stringify(created.body)}`).toBe(201);
      expect(created.body.slug).toBe(item.slug);
      expect((await call("POST", `/api/v1/admin/${path}`, { key, body: item })).status).toBe(409);
      const listed = await call("GET", `/api/v1/admin/${path}`, { key });
      expect(listed.body.items.map((i: any) => i.slug)).toContain(item.slug);
      expect((await call("GET", `/api/v1/admin/${path}/${item.slug}`, { key })).body.slug).toBe(item.slug);
    }
    const feature = (await call("GET", "/api/v1/admin/features/widget", { key })).body;
    expect(feature.id).toMatch(/^feat_[a-z0-9]{10}$/);

    const replaced = await call("PUT", "/api/v1/admin/plans/free", { key, body: { name: "Free", autoAssign: ["anonymous"], features: { widget: { premium: true } } } });
    expect(replaced.status).toBe(200);
    expect(replaced.body.name).toBe("Free");

    // A feature in use by a plan cannot be removed: the error names the referring path.
    const blocked = await call("DELETE", "/api/v1/admin/features/widget", { key });
    expect(blocked.status).toBe(409);
    expect(blocked.body.details.map((d: any) => d.path)).toContain("plans.free.features.widget");

    for (const [path, item] of [...items].reverse()) {
      expect((await call("DELETE", `/api/v1/admin/${path}/${item.slug}`, { key })).status, path).toBe(200);
      expect((await call("GET", `/api/v1/admin/${path}/${item.slug}`, { key })).status).toBe(404);
    }
  });

  it("reports validation errors with paths", async () => {
    const org = await createOrganization();
    const key = org.adminKey;
    const bad = await call("PUT", "/api/v1/admin/features/widget", {
      key,
      body: { properties: { quality: { type: "string", values: ["a", "b"], fallback: "c" }, size: { type: "colour" } } },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe("validation_failed");
    const paths = bad.body.details.map((d: any) => d.path);
    expect(paths).toContain("properties.quality.fallback");
    expect(paths.some((p: string) => p.startsWith("properties.size"))).toBe(true);
    expect(bad.body.message).toContain("properties.quality.fallback");

    const badPlan = await call("PUT", "/api/v1/admin/plans/p", { key, body: { features: { nothing: { enabled: "on" } } } });
    expect(badPlan.status).toBe(400);
    expect(badPlan.body.details[0].path).toBe("plans.p.features.nothing");
  });

  it("renames a feature slug and keeps its id and references", async () => {
    const org = await createOrganization();
    const key = org.adminKey;
    await call("PUT", "/api/v1/admin/config", { key, body: helloWorld() });
    const before = (await call("GET", "/api/v1/admin/features/widget", { key })).body;
    const renamed = await call("POST", "/api/v1/admin/features/widget/rename", { key, body: { slug: "gadget" } });
    expect(renamed.status).toBe(200);
    expect(renamed.body).toMatchObject({ slug: "gadget", id: before.id });
    const document = (await call("GET", "/api/v1/admin/config", { key })).body;
    expect(document.plans.anonymous.features.gadget).toBeDefined();
    expect(document.surfaces["hello-world"].consumes).toEqual(["gadget.enabled"]);
  });
});

describe("configuration document", () => {
  it("applies YAML, exports JSON and YAML, and keeps feature ids across re-applies", async () => {
    const org = await createOrganization();
    const key = org.adminKey;
    const applied = await call("PUT", "/api/v1/admin/config", { key, rawBody: newsSiteYaml, headers: { "content-type": "application/yaml" } });
    expect(applied.status, JSON.stringify(applied.body)).toBe(200);
    expect(applied.body.applied).toBe(true);
    const exported = await call("GET", "/api/v1/admin/config", { key });
    expect(Object.keys(exported.body.plans).sort()).toEqual(["ai-agents", "anonymous", "premium", "registered", "search-crawlers"]);
    const id = exported.body.features.articles.id;
    expect(id).toMatch(/^feat_/);
    expect(exported.headers.get("x-draft-revision")).toBe(String(applied.body.revision));

    const yaml = await call("GET", "/api/v1/admin/config?format=yaml", { key });
    expect(yaml.headers.get("content-type")).toContain("application/yaml");
    expect(yaml.body).toContain(`id: ${id}`);

    const again = await call("PUT", "/api/v1/admin/config", { key, rawBody: newsSiteYaml, headers: { "content-type": "application/yaml" } });
    expect(again.body.changes).toEqual([]);
    expect((await call("GET", "/api/v1/admin/config", { key })).body.features.articles.id).toBe(id);
  });

  it("rejects a bad document with every path and changes nothing", async () => {
    const org = await createOrganization();
    const key = org.adminKey;
    await call("PUT", "/api/v1/admin/config", { key, body: newsSite() });
    const before = await call("GET", "/api/v1/admin/config", { key });

    const bad = newsSite();
    bad.plans.premium.features.articles.quality = "4k";
    bad.plans.anonymous.features.articles.enabled = { metered: { limit: -1 } };
    bad.surfaces["article-page"].consumes = ["articles.quality"];
    bad.features.videos = { properties: { enabled: { type: "boolean" } } };
    const rejected = await call("PUT", "/api/v1/admin/config", { key, body: bad });
    expect(rejected.status).toBe(400);
    const paths = rejected.body.details.map((d: any) => d.path);
    expect(paths).toEqual(
      expect.arrayContaining(["plans.anonymous.features.articles.enabled.metered.limit", "features.videos.properties.enabled.type"]),
    );
    const after = await call("GET", "/api/v1/admin/config", { key });
    expect(after.body).toEqual(before.body);
    expect(after.headers.get("x-draft-revision")).toBe(before.headers.get("x-draft-revision"));

    const crossRef = newsSite();
    crossRef.plans.premium.features.articles.quality = "4k";
    crossRef.surfaces["article-page"].consumes = ["articles.quality"];
    const rejected2 = await call("PUT", "/api/v1/admin/config", { key, body: crossRef });
    expect(rejected2.body.details.map((d: any) => d.path)).toEqual(
      expect.arrayContaining(["plans.premium.features.articles.quality", "surfaces.article-page.consumes[0]"]),
    );
    expect((await call("GET", "/api/v1/admin/config", { key })).body).toEqual(before.body);
  });

  it("rejects malformed JSON and YAML, unsupported types and stale revisions", async () => {
    const org = await createOrganization();
    const key = org.adminKey;
    const badJson = await call("PUT", "/api/v1/admin/config", { key, rawBody: "{nope", headers: { "content-type": "application/json" } });
    expect(badJson.status).toBe(400);
    expect(badJson.body.status).toBe("error");
    const badYaml = await call("PUT", "/api/v1/admin/config", { key, rawBody: "features: [\n  - : :", headers: { "content-type": "application/yaml" } });
    expect(badYaml.status).toBe(400);
    expect(badYaml.body.code).toBe("invalid_yaml");
    // A duplicate key is refused (a YAML parser that kept the last one would silently drop a setting), at its path.
    const duplicated = "features:\n  widget:\n    name: Widget\n    name: Gadget\nplans:\n  - a\n  - b: 1\n    b: 2\n";
    const duplicate = await call("PUT", "/api/v1/admin/config", { key, rawBody: duplicated, headers: { "content-type": "application/yaml" } });
    expect(duplicate.status).toBe(400);
    expect(duplicate.body).toMatchObject({ code: "invalid_yaml", details: [{ path: "features.widget.name" }, { path: "plans[1].b" }] });
    expect(duplicate.body.details[0].message).toMatch(/unique/);
    expect((await call("PUT", "/api/v1/admin/config", { key, rawBody: "x", headers: { "content-type": "text/plain" } })).status).toBe(415);
    const stale = await call("PUT", "/api/v1/admin/config", { key, body: helloWorld(), headers: { "if-match": "999" } });
    expect(stale.status).toBe(409);
    const dry = await call("PUT", "/api/v1/admin/config?dryRun=true", { key, body: helloWorld() });
    expect(dry.body.applied).toBe(false);
    expect(dry.body.changes.length).toBeGreaterThan(0);
    expect((await call("GET", "/api/v1/admin/config", { key })).body.features).toEqual({});
  });
});

describe("versions and deployments", () => {
  it("freezes versions, deploys, diffs and rolls back", async () => {
    const org = await createOrganization();
    const key = org.adminKey;
    await call("PUT", "/api/v1/admin/config", { key, body: helloWorld() });
    const v1 = await call("POST", "/api/v1/admin/versions", { key, body: { description: "first" } });
    expect(v1.status).toBe(201);
    expect(v1.body).toMatchObject({ number: 1, description: "first" });

    // Editing the draft does not change the version: versions are immutable.
    const changed = helloWorld();
    changed.plans.anonymous.features.widget.enabled = { metered: { limit: 5, period: "lifetime" } };
    await call("PUT", "/api/v1/admin/config", { key, body: changed });
    const v1Again = await call("GET", `/api/v1/admin/versions/${v1.body.id}`, { key });
    expect(v1Again.body.document.plans.anonymous.features.widget.enabled.metered.limit).toBe(3);
    const v2 = await call("POST", "/api/v1/admin/versions", { key });
    expect(v2.body.number).toBe(2);
    expect((await call("GET", "/api/v1/admin/versions", { key })).body.versions.map((v: any) => v.number)).toEqual([2, 1]);

    const diff = await call("GET", `/api/v1/admin/versions/${v2.body.id}/diff?against=${v1.body.id}`, { key });
    expect(diff.body.changes).toEqual([{ path: "plans.anonymous.features.widget.enabled.metered.limit", change: "changed", from: 3, to: 5 }]);

    const d1 = await call("POST", `/api/v1/admin/environments/${org.live.id}/deployments`, { key, body: { versionId: v1.body.id } });
    expect(d1.status).toBe(201);
    await call("POST", `/api/v1/admin/environments/${org.live.id}/deployments`, { key, body: { versionId: v2.body.id } });
    expect((await call("GET", `/api/v1/admin/environments/${org.live.id}`, { key })).body.deployedVersionId).toBe(v2.body.id);

    const rolledBack = await call("POST", `/api/v1/admin/environments/${org.live.id}/rollback`, { key });
    expect(rolledBack.status).toBe(201);
    expect(rolledBack.body).toMatchObject({ kind: "rollback", versionId: v1.body.id, previousVersionId: v2.body.id });
    expect((await call("GET", `/api/v1/admin/environments/${org.live.id}`, { key })).body.deployedVersionId).toBe(v1.body.id);
    const history = await call("GET", `/api/v1/admin/environments/${org.live.id}/deployments`, { key });
    expect(history.body.deployments.map((d: any) => d.kind)).toEqual(["rollback", "deploy", "deploy"]);

    expect((await call("POST", `/api/v1/admin/environments/${org.preview.id}/rollback`, { key })).status).toBe(409);
    expect((await call("POST", `/api/v1/admin/environments/${org.live.id}/deployments`, { key, body: { versionId: "ver_missing" } })).status).toBe(404);
  });
});

describe("tenant isolation", () => {
  it("never lets one organization's key read or change another's data", async () => {
    const a = await createOrganization("A");
    const b = await createOrganization("B");
    await call("PUT", "/api/v1/admin/config", { key: b.adminKey, body: helloWorld() });
    const bVersion = await call("POST", "/api/v1/admin/versions", { key: b.adminKey });
    const bKeys = await call("GET", `/api/v1/admin/environments/${b.live.id}/keys`, { key: b.live.secretKey });
    const bOrganizationKeys = await call("GET", "/api/v1/admin/organization/keys", { key: b.adminKey });
    // The strongest credential of A: its admin organization key.
    const key = a.adminKey;

    const attempts = [
      call("GET", `/api/v1/admin/environments/${b.live.id}`, { key }),
      call("PATCH", `/api/v1/admin/environments/${b.live.id}`, { key, body: { name: "pwned" } }),
      call("DELETE", `/api/v1/admin/environments/${b.preview.id}`, { key }),
      call("GET", `/api/v1/admin/environments/${b.live.id}/keys`, { key }),
      call("POST", `/api/v1/admin/environments/${b.live.id}/keys`, { key, body: { type: "secret" } }),
      call("DELETE", `/api/v1/admin/keys/${bKeys.body.keys[0].id}`, { key }),
      call("POST", `/api/v1/admin/keys/${bKeys.body.keys[0].id}/rotate`, { key }),
      call("GET", `/api/v1/admin/versions/${bVersion.body.id}`, { key }),
      call("POST", `/api/v1/admin/environments/${a.live.id}/deployments`, { key, body: { versionId: bVersion.body.id } }),
      call("POST", `/api/v1/admin/environments/${b.live.id}/deployments`, { key, body: { versionId: bVersion.body.id } }),
      call("GET", `/api/v1/admin/environments/${b.live.id}/deployments`, { key }),
      call("DELETE", `/api/v1/admin/organization/keys/${bOrganizationKeys.body.keys[0].id}`, { key }),
      call("POST", `/api/v1/admin/organization/keys/${bOrganizationKeys.body.keys[0].id}/rotate`, { key }),
    ];
    for (const result of await Promise.all(attempts)) {
      expect([401, 404]).toContain(result.status);
      expect(result.body.status).toBe("error");
      expect(JSON.stringify(result.body)).not.toContain("widget");
    }
    // A's own draft stays A's: B's features are not visible.
    expect((await call("GET", "/api/v1/admin/features", { key })).body.items).toEqual([]);
    expect((await call("GET", `/api/v1/admin/environments/${b.live.id}`, { key: b.live.secretKey })).body.name).toBe("Live");
    expect((await call("GET", "/api/v1/admin/organization", { key: b.live.secretKey })).status).toBe(200);
  });
});

describe("documentation", () => {
  it("serves an OpenAPI document describing every admin route and a reference page", async () => {
    const { status, body } = await call("GET", "/openapi.json");
    expect(status).toBe(200);
    expect(body.openapi).toBe("3.1.0");
    const operations = Object.entries(body.paths).flatMap(([path, item]: [string, any]) => Object.keys(item).map((m) => `${m.toUpperCase()} ${path}`));
    expect(operations).toEqual(
      expect.arrayContaining([
        "POST /api/v1/admin/organizations",
        "GET /api/v1/admin/environments/{environmentId}/keys",
        "PUT /api/v1/admin/config",
        "POST /api/v1/admin/versions",
        "GET /api/v1/admin/versions/{versionId}/diff",
        "POST /api/v1/admin/environments/{environmentId}/rollback",
        "DELETE /api/v1/admin/workflows/{slug}",
        "POST /api/v1/admin/features/{slug}/rename",
        "GET /api/v1/admin/organization/keys",
        "POST /api/v1/admin/organization/keys/{keyId}/rotate",
      ]),
    );
    const page = await call("GET", "/docs");
    expect(page.status).toBe(200);
    expect(page.body).toContain("/openapi.json");
    // Scalar, from the Worker's own static assets: nothing is loaded from a CDN.
    expect(page.body).toContain('<script src="/docs/scalar/standalone.js"></script>');
    expect(page.body).not.toContain("cdn.jsdelivr.net");
    // Its script runs sandboxed (an opaque origin, like every page of the shared origin), so it fetches the
    // document cross-origin.
    expect(page.headers.get("content-security-policy")).toBe("sandbox allow-scripts");
    expect((await call("GET", "/openapi.json")).headers.get("access-control-allow-origin")).toBe("*");
  });

  it("answers unknown routes with the error shape", async () => {
    const { status, body } = await call("GET", "/api/v1/nothing-here");
    expect(status).toBe(404);
    expect(body).toMatchObject({ status: "error", statusCode: 404, code: "not_found" });
  });
});

describe("workflow references", () => {
  it("refuses two endpoint workflows on the same path", async () => {
    const org = await createOrganization();
    const source = "export default () => new Response('ok');";
    const document = {
      workflows: {
        first: { type: "endpoint", path: "hello", access: "none", source },
        second: { type: "endpoint", path: "/hello/", access: "none", source },
      },
    };
    const refused = await call("PUT", "/api/v1/admin/config", { key: org.adminKey, body: document });
    expect(refused.status).toBe(400);
    expect(refused.body.details).toEqual([{ path: "workflows.second.path", message: "path /hello/ is also served by endpoint workflow first" }]);
  });
});

describe("concurrent environment creation", () => {
  it("answers one create with 201 and the other with 409, never 500", async () => {
    const org = await createOrganization();
    const create = () => call("POST", "/api/v1/admin/environments", { key: org.adminKey, body: { slug: "race", type: "preview" } });
    const statuses = (await Promise.all([create(), create(), create()])).map((result) => result.status).sort();
    expect(statuses).toEqual([201, 409, 409]);
  });
});
