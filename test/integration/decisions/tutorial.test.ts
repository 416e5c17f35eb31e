/**
 * The seed tutorial's flow against examples/hello-world.yaml: an anonymous visitor, then a user the backend names,
 * then the same user by JWT (RS256, key pair generated here), then a Premium user (the provisioning workflow).
 */
import { exportSPKI, generateKeyPair, SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { call, createOrganization, publish, type TestOrganization } from "../../support/api";
import { helloWorld } from "../../support/examples";
import premiumProvisioning from "../../../examples/workflows/premium-provisioning.ts?raw";

let org: TestOrganization;
let privateKey: CryptoKey;
let featureId: string;

beforeAll(async () => {
  org = await createOrganization("Tutorial");
  const keys = await generateKeyPair("RS256", { extractable: true });
  privateKey = keys.privateKey as CryptoKey;
  const document = helloWorld();
  document.authMethods = { "test-jwt": { publicKey: await exportSPKI(keys.publicKey), algorithms: ["RS256"], identifierClaim: "email" } };
  await publish(org.adminKey, document, [org.live.id]);
  featureId = (await call("GET", "/api/v1/admin/features/widget", { key: org.live.secretKey })).body.id;
});

const decide = (identity: Record<string, unknown>, key = org.live.secretKey, extra: Record<string, unknown> = {}) =>
  call("POST", "/api/v1/surface-decisions", { key, body: { surfaceSlug: "hello-world", identity, ...extra } });

describe("the tutorial flow", () => {
  it("meters an anonymous visitor: three widgets, then hasAccess false with remainingUnits 0", async () => {
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await decide({ anonymousIdentifier: "visitor-1" }, org.live.publishableKey));
    for (const result of results) expect(result.status).toBe(200);
    const enabled = results.map((result) => result.body.features.widget.properties.enabled);
    expect(enabled.map((e) => e.hasAccess)).toEqual([true, true, true, false]);
    expect(enabled.map((e) => e.consumedUnits)).toEqual([1, 2, 3, 3]);
    expect(enabled[3]).toMatchObject({
      type: "meterable",
      counterId: `default:${featureId}.enabled`,
      hasAccess: false,
      isFallback: false,
      consumedUnits: 3,
      remainingUnits: 0,
      totalUnits: 3,
      uniqueResources: false,
      resourceIdUsed: false,
      periodStart: "1970-01-01T00:00:00.000Z",
      consumedInRequest: false,
      excessUnitsInRequest: 1,
    });
    const first = results[0]!.body;
    expect(first).toMatchObject({
      status: "success",
      identity: { authType: "anonymous", identifier: "visitor-1", isAuthenticated: false, jwtClaims: {} },
      customer: { isCustomer: false, hasProducts: false, customerIdentifiers: [] },
      surfaceBehavior: {},
      componentsSkipped: false,
      componentBehaviors: {},
    });
    expect(first.eventId).toMatch(/^evt_/);
    expect(first.features.widget.properties.premium).toEqual({ type: "boolean", value: false, isFallback: false });
  });

  it("names a user with userIdentifier (secret key) and gives the registered plan", async () => {
    const result = await decide({ userIdentifier: "test@example.com" });
    expect(result.status).toBe(200);
    expect(result.body.identity).toEqual({ authType: "provided", identifier: "test@example.com", isAuthenticated: true, jwtClaims: {} });
    expect(result.body.features.widget.properties.enabled).toMatchObject({ hasAccess: true, consumedUnits: 1, totalUnits: 3 });
    expect(result.headers.get("server-timing")).toMatch(/auth;dur=[\d.]+.*identity;dur=.*meter;dur=/);
  });

  it("identifies the same user by JWT, returns the claims, and shares the user's counters", async () => {
    const byName = await decide({ userIdentifier: "john@example.com" });
    expect(byName.body.features.widget.properties.enabled).toMatchObject({ hasAccess: true, consumedUnits: 1 });
    const claims = { sub: "1234567890", name: "John Doe", email: "john@example.com", premium: true, iat: 1760714314 };
    const jwt = await new SignJWT(claims).setProtectedHeader({ alg: "RS256" }).sign(privateKey);
    const result = await decide({ userJwt: jwt }, org.live.publishableKey);
    expect(result.status).toBe(200);
    expect(result.body.identity).toEqual({ authType: "jwt", identifier: "john@example.com", isAuthenticated: true, jwtClaims: claims });
    // The second widget for john@example.com: the counter is the user's, whatever the identity form.
    expect(result.body.features.widget.properties.enabled).toMatchObject({ hasAccess: true, consumedUnits: 2 });
  });

  it("mints an anonymous identifier when asked", async () => {
    const a = await decide({ createAnonymousIdentifier: true }, org.live.publishableKey);
    const b = await decide({ createAnonymousIdentifier: true }, org.live.publishableKey);
    expect(a.body.identity.identifier).toMatch(/^anon_/);
    expect(a.body.identity.identifier).not.toBe(b.body.identity.identifier);
    expect(a.body.features.widget.properties.enabled.consumedUnits).toBe(1);
  });
});

describe("access checks", () => {
  it("report every feature without consuming", async () => {
    for (let i = 0; i < 5; i++) {
      const result = await call("POST", "/api/v1/access-checks", { key: org.live.publishableKey, body: { identity: { anonymousIdentifier: "reader-ac" } } });
      expect(result.status).toBe(200);
      expect(Object.keys(result.body.features)).toEqual(["widget"]);
      expect(result.body.features.widget).toMatchObject({ featureId, featureSlug: "widget" });
      expect(result.body.features.widget.properties.enabled).toMatchObject({ hasAccess: true, consumedUnits: 0, remainingUnits: 3 });
      expect(result.body.surfaceBehavior).toBeUndefined();
    }
  });
});

describe("a Premium user (part 4: the provisioning workflow)", () => {
  let premiumOrg: TestOrganization;
  let widgetId: string;
  let signingKey: CryptoKey;

  beforeAll(async () => {
    premiumOrg = await createOrganization("Tutorial premium");
    const keys = await generateKeyPair("RS256", { extractable: true });
    signingKey = keys.privateKey as CryptoKey;
    const document = helloWorld();
    document.authMethods = { "test-jwt": { publicKey: await exportSPKI(keys.publicKey), algorithms: ["RS256"], identifierClaim: "email" } };
    document.workflows = { "premium-provisioning": { type: "provisioning", source: premiumProvisioning } };
    await publish(premiumOrg.adminKey, document, [premiumOrg.live.id]);
    widgetId = (await call("GET", "/api/v1/admin/features/widget", { key: premiumOrg.live.secretKey })).body.id;
  });

  const jwtFor = (email: string, premium: boolean) =>
    new SignJWT({ sub: email, email, premium }).setProtectedHeader({ alg: "RS256" }).sign(signingKey);
  const surface = async (email: string, premium: boolean) =>
    call("POST", "/api/v1/surface-decisions", { key: premiumOrg.live.publishableKey, body: { surfaceSlug: "hello-world", identity: { userJwt: await jwtFor(email, premium) } } });

  it("gets unlimited widgets and still the counter's readings; a downgrade sees the true usage", async () => {
    const registered = await surface("ada@example.com", false);
    expect(registered.status).toBe(200);
    const metered = registered.body.features.widget.properties.enabled;
    expect(metered).toMatchObject({ hasAccess: true, consumedUnits: 1, remainingUnits: 2, totalUnits: 3 });

    const premium = [];
    for (let i = 0; i < 4; i++) premium.push(await surface("ada@example.com", true));
    for (const result of premium) expect(result.status, JSON.stringify(result.body)).toBe(200);
    const enabled = premium.map((result) => result.body.features.widget.properties.enabled);
    // Beyond Registered's 3: unlimited, and the counter keeps counting.
    expect(enabled.map((e) => [e.hasAccess, e.consumedUnits])).toEqual([[true, 2], [true, 3], [true, 4], [true, 5]]);
    expect(enabled[3]).toEqual({
      type: "meterable",
      counterId: `default:${widgetId}.enabled`,
      hasAccess: true,
      isFallback: false,
      consumedUnits: 5,
      remainingUnits: 0,
      totalUnits: 3,
      periodStart: "1970-01-01T00:00:00.000Z",
      uniqueResources: false,
      resourceIdUsed: false,
      consumedInRequest: true,
      consumedUnitsInRequest: 1,
      excessUnitsInRequest: 0,
    });
    // The same fields as the metered property, so a client reads both the same way.
    expect(Object.keys(enabled[3]).sort()).toEqual(Object.keys(metered).sort());
    expect(premium[3]!.body.features.widget.properties.premium).toEqual({ type: "boolean", value: true, isFallback: false });

    // An access check reads without consuming.
    const check = await call("POST", "/api/v1/access-checks", { key: premiumOrg.live.publishableKey, body: { identity: { userJwt: await jwtFor("ada@example.com", true) } } });
    expect(check.body.features.widget.properties.enabled).toMatchObject({ hasAccess: true, consumedUnits: 5, remainingUnits: 0, totalUnits: 3, consumedInRequest: false });

    // Back on Registered: the five widgets count against its three.
    const downgraded = await surface("ada@example.com", false);
    expect(downgraded.body.features.widget.properties.enabled).toMatchObject({ hasAccess: false, consumedUnits: 5, remainingUnits: 0, totalUnits: 3 });
  });
});
