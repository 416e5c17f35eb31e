/** Admin API on one identity's meter object: counters, reset, credit balances and grants, each write audited. */
import { beforeAll, describe, expect, it } from "vitest";
import { call, createOrganization, OPERATOR, type TestOrganization } from "../../support/api";
import { eventsFor, helloWorldOrg, uniqueId, type PublishedOrg } from "./helpers";

let hello: PublishedOrg;
let stranger: TestOrganization;
beforeAll(async () => {
  [hello, stranger] = await Promise.all([helloWorldOrg(), createOrganization("Stranger")]);
});

const identityPath = (identifier: string, environmentId = hello.org.live.id) => `/api/v1/admin/environments/${environmentId}/identities/${encodeURIComponent(identifier)}`;
const use = (identifier: string) =>
  call("POST", "/api/v1/surface-decisions", { key: hello.key, body: { surfaceSlug: "hello-world", identity: { userIdentifier: identifier } } });

describe("admin: counters", () => {
  it("reads an identity's counters and resets one, audited", async () => {
    const identifier = uniqueId("visitor");
    await use(identifier);
    await use(identifier);

    const read = await call("GET", `${identityPath(identifier)}/counters`, { key: hello.key });
    expect(read.status).toBe(200);
    expect(read.body).toEqual({
      identifier,
      counters: [expect.objectContaining({ counterId: hello.counterId, period: "lifetime", consumedUnits: 2, uniqueResourceCount: 0, periodStart: "1970-01-01T00:00:00.000Z" })],
    });
    // The operator token works with X-Organization-Id.
    const asOperator = await call("GET", `${identityPath(identifier)}/counters`, { key: OPERATOR, headers: { "x-organization-id": hello.org.id } });
    expect(asOperator.body.counters[0].consumedUnits).toBe(2);

    const reset = await call("DELETE", `${identityPath(identifier)}/counters/${encodeURIComponent(hello.counterId)}`, { key: hello.key });
    expect(reset.status).toBe(200);
    expect(reset.body).toEqual({ identifier, counterId: hello.counterId, reset: true });
    expect((await call("GET", `${identityPath(identifier)}/counters`, { key: hello.key })).body.counters).toEqual([]);
    const after = await use(identifier);
    expect(after.body.features.widget.properties.enabled).toMatchObject({ consumedUnits: 1, hasAccess: true });

    const audit = await eventsFor(hello.key, `kind=admin&identifier=${identifier}`, 1);
    expect(audit).toHaveLength(1);
    expect(audit[0].record).toMatchObject({ action: "counter.reset", counterId: hello.counterId, identifier });

    const missing = await call("DELETE", `${identityPath(identifier)}/counters/${encodeURIComponent("default:feat_nothere00.enabled")}`, { key: hello.key });
    expect(missing.status).toBe(404);
  });

  it("reads an empty list for an identity that never used anything", async () => {
    const read = await call("GET", `${identityPath(uniqueId("nobody"))}/counters`, { key: hello.key });
    expect(read.status).toBe(200);
    expect(read.body.counters).toEqual([]);
  });
});

describe("admin: credits", () => {
  it("reads balances and grants credits idempotently, audited", async () => {
    const identifier = uniqueId("buyer");
    const balance = await call("GET", `${identityPath(identifier)}/credits/tokens`, { key: hello.key });
    expect(balance.status).toBe(200);
    expect(balance.body).toEqual({ identifier, creditId: "tokens", balance: 0 });

    const headers = { "idempotency-key": uniqueId("grant") };
    const grant = () => call("POST", `${identityPath(identifier)}/credits/tokens/grants`, { key: hello.key, headers, body: { amount: 100, reason: "welcome" } });
    const grants = await Promise.all([grant(), grant(), grant()]);
    for (const result of grants) {
      expect(result.status).toBe(200);
      expect(result.body).toEqual({ identifier, creditId: "tokens", balance: 100 });
    }
    const plain = await call("POST", `${identityPath(identifier)}/credits/tokens/grants`, { key: hello.key, body: { amount: 25.5, reason: "top-up" } });
    expect(plain.body.balance).toBe(125.5);
    expect((await call("GET", `${identityPath(identifier)}/credits/tokens`, { key: hello.key })).body.balance).toBe(125.5);

    const reused = await call("POST", `${identityPath(identifier)}/credits/tokens/grants`, { key: hello.key, headers, body: { amount: 999, reason: "welcome" } });
    expect(reused.status).toBe(422);
    expect(reused.body).toMatchObject({ status: "error", code: "idempotency_key_reused" });
    expect((await call("GET", `${identityPath(identifier)}/credits/tokens`, { key: hello.key })).body.balance).toBe(125.5);

    const audit = await eventsFor(hello.key, `kind=admin&identifier=${identifier}`, 2);
    expect(audit).toHaveLength(2);
    expect(audit.map((event: any) => event.record).sort((a: any, b: any) => a.amount - b.amount)).toEqual([
      expect.objectContaining({ action: "credits.grant", creditId: "tokens", amount: 25.5, reason: "top-up", balance: 125.5 }),
      expect.objectContaining({ action: "credits.grant", creditId: "tokens", amount: 100, reason: "welcome", balance: 100, idempotencyKey: headers["idempotency-key"] }),
    ]);
  });

  it("refuses bad grants", async () => {
    const path = `${identityPath(uniqueId("bad"))}/credits/tokens/grants`;
    expect((await call("POST", path, { key: hello.key, body: { amount: -5, reason: "x" } })).status).toBe(400);
    expect((await call("POST", path, { key: hello.key, body: { amount: 5 } })).status).toBe(400);
    expect((await call("POST", path, { key: hello.key, body: { amount: "5", reason: "x" } })).status).toBe(400);
  });
});

describe("admin: tenancy", () => {
  it("hides one organization's identities from another's key (404) and refuses publishable keys", async () => {
    const identifier = uniqueId("private");
    await use(identifier);
    const foreign = stranger.live.secretKey;
    const paths: [string, string, unknown?][] = [
      ["GET", `${identityPath(identifier)}/counters`],
      ["DELETE", `${identityPath(identifier)}/counters/${encodeURIComponent(hello.counterId)}`],
      ["GET", `${identityPath(identifier)}/credits/tokens`],
      ["POST", `${identityPath(identifier)}/credits/tokens/grants`, { amount: 1, reason: "sneaky" }],
    ];
    for (const [method, path, body] of paths) {
      const result = await call(method, path, { key: foreign, body });
      expect(result.status, `${method} ${path}`).toBe(404);
      expect(result.body.code).toBe("not_found");
      expect((await call(method, path, { key: hello.org.live.publishableKey, body })).status).toBe(403);
    }
    // Nothing changed.
    expect((await call("GET", `${identityPath(identifier)}/counters`, { key: hello.key })).body.counters[0].consumedUnits).toBe(1);
    expect((await call("GET", `${identityPath(identifier)}/credits/tokens`, { key: hello.key })).body.balance).toBe(0);
  });

  it("keeps the preview store apart from the live one", async () => {
    const identifier = uniqueId("stores");
    await use(identifier);
    const preview = await call("GET", `${identityPath(identifier, hello.org.preview.id)}/counters`, { key: hello.org.adminKey });
    expect(preview.status).toBe(200);
    expect(preview.body.counters).toEqual([]);
  });
});
