/**
 * The decision trace (`?trace=true`): absent unless asked for, refused to publishable keys, and — for a decision with
 * two plans in conflict, a property no plan sets, a feature workflow's override, a metered reading, a workflow reading
 * a secret and an offer filtered out — every section says what happened and why, without the secret's value.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, createOrganization, publish, type TestOrganization } from "../../support/api";

const SECRET_VALUE = "s3cret-value-never-traced";

function document() {
  return {
    features: {
      articles: { properties: { enabled: { type: "enabled", fallback: "off", onMeterFailure: "closed" } } },
      widget: {
        properties: {
          quota: { type: "number", fallback: 1, conflict: "higher" },
          delay: { type: "number", fallback: 60, conflict: "lower" },
        },
      },
      reports: {},
      extras: {},
    },
    plans: {
      free: {
        autoAssign: ["authenticated"],
        features: {
          articles: { enabled: { metered: { limit: 5, period: "month" } } },
          widget: { enabled: "on", quota: 3, delay: 10 },
          reports: { enabled: "on" },
        },
      },
      pro: { stripeProductIds: ["prod_pro"], features: { widget: { enabled: "on", quota: 10, delay: 30 } } },
    },
    surfaces: { page: { consumes: ["articles.enabled", "reports.enabled", "extras.enabled"], offerGroups: ["paywall"] } },
    offers: {
      germany: {
        presentation: { title: "Angebot" },
        price: { currency: "eur", amount: 500, interval: "month" },
        redemption: { method: "checkout", plan: "pro", stripePriceId: "price_de" },
        targeting: { countries: ["DE"] },
      },
      yearly: {
        presentation: { title: "A year" },
        price: { currency: "usd", amount: 9900, interval: "year" },
        redemption: { method: "checkout", plan: "pro", stripePriceId: "price_year" },
      },
    },
    offerGroups: { paywall: { slots: [{ offers: ["germany", "yearly"] }] } },
    workflows: {
      promote: {
        type: "provisioning",
        source: `export default ({ identity, env }: any) => (env.CRM_TOKEN === "${SECRET_VALUE}" && identity.identifier.startsWith("pro-") ? ["pro"] : []);`,
      },
      "reports-off": { type: "feature", feature: "reports", source: `export default () => ({ enabled: false });` },
    },
  };
}

let org: TestOrganization;

beforeAll(async () => {
  org = await createOrganization("Decision trace");
  const variables = `/api/v1/admin/environments/${org.live.id}/variables`;
  expect((await call("PUT", `${variables}/CRM_TOKEN`, { key: org.adminKey, body: { value: SECRET_VALUE, secret: true } })).status).toBe(200);
  expect((await call("PUT", `${variables}/REGION`, { key: org.adminKey, body: { value: "eu-variable-value" } })).status).toBe(200);
  await publish(org.adminKey, document(), [org.live.id]);
});

const surfaceDecision = (key: string, identifier: string, query = "?trace=true") =>
  call("POST", `/api/v1/surface-decisions${query}`, { key, body: { surfaceSlug: "page", identity: { userIdentifier: identifier } } });

describe("the decision trace", () => {
  it("is absent unless asked for, and trace=false changes nothing", async () => {
    for (const query of ["", "?trace=false"]) {
      const plain = await surfaceDecision(org.live.secretKey, `plain-${crypto.randomUUID()}`, query);
      expect(plain.status, JSON.stringify(plain.body)).toBe(200);
      expect(plain.body).not.toHaveProperty("trace");
    }
    const check = await call("POST", "/api/v1/access-checks", { key: org.live.secretKey, body: { identity: { userIdentifier: "plain" } } });
    expect(check.status).toBe(200);
    expect(check.body).not.toHaveProperty("trace");
  });

  it("is documented as a query parameter of both decision routes", async () => {
    const document = (await call("GET", "/openapi.json")).body;
    for (const path of ["/api/v1/access-checks", "/api/v1/surface-decisions"]) {
      expect(document.paths[path].post.parameters).toContainEqual(expect.objectContaining({ name: "trace", in: "query", required: false }));
    }
  });

  it("needs a secret key: a publishable key asking for it is refused with 403", async () => {
    for (const path of ["/api/v1/access-checks?trace=true", "/api/v1/surface-decisions?trace=true"]) {
      const refused = await call("POST", path, { key: org.live.publishableKey, body: { surfaceSlug: "page", identity: { anonymousIdentifier: "visitor-1" } } });
      expect(refused.status).toBe(403);
      expect(refused.body.code).toBe("forbidden");
      expect(refused.body.message).toContain("secret key");
    }
  });

  it("explains plans, properties, the meter, workflows (secrets redacted), offers and denials", async () => {
    const identifier = `pro-${crypto.randomUUID()}@example.com`;
    const result = await surfaceDecision(org.live.secretKey, identifier);
    expect(result.status, JSON.stringify(result.body)).toBe(200);
    const { trace } = result.body;

    // The secret (and the plain variable's value) appear nowhere; their names do.
    const text = JSON.stringify(trace);
    expect(text).not.toContain(SECRET_VALUE);
    expect(text).not.toContain("eu-variable-value");

    expect(trace.versionId).toMatch(/^ver_/);
    const stages = trace.stages.map((stage: { stage: string }) => stage.stage);
    expect(stages.indexOf("identity")).toBeGreaterThan(-1);
    expect(stages.indexOf("identity")).toBeLessThan(stages.indexOf("plans"));
    expect(stages.indexOf("plans")).toBeLessThan(stages.indexOf("meter"));
    expect(trace.stages.every((stage: { ms: number }) => typeof stage.ms === "number" && stage.ms >= 0)).toBe(true);
    expect(trace.identity).toEqual({ authType: "provided", identifier, isAuthenticated: true, jwtError: null, bot: null, category: "authenticated", agentSignature: { status: "absent" } });

    // Two plans: one auto-assigned, one from the provisioning workflow.
    expect(trace.plans).toEqual(
      expect.arrayContaining([
        { slug: "free", source: "auto", detail: { category: "authenticated" } },
        { slug: "pro", source: "workflow" },
      ]),
    );
    expect(trace.plans).toHaveLength(2);
    expect(trace.unknownPlanSlugs).toEqual([]);

    const property = (featureSlug: string, name: string) => trace.properties.find((entry: any) => entry.featureSlug === featureSlug && entry.property === name);
    const byPlan = (candidates: { plan: string }[]) => [...candidates].sort((a, b) => a.plan.localeCompare(b.plan));
    // In conflict, `higher`: pro's 10 beats free's 3.
    expect(property("widget", "quota")).toMatchObject({ type: "number", value: { type: "number", value: 10, isFallback: false }, winner: { kind: "plan", plan: "pro" }, conflictRule: "higher" });
    expect(byPlan(property("widget", "quota").candidates)).toEqual([{ plan: "free", value: 3 }, { plan: "pro", value: 10 }]);
    // In conflict, `lower`: free's 10 beats pro's 30.
    expect(property("widget", "delay")).toMatchObject({ value: { value: 10 }, winner: { kind: "plan", plan: "free" }, conflictRule: "lower" });
    expect(byPlan(property("widget", "delay").candidates)).toEqual([{ plan: "free", value: 10 }, { plan: "pro", value: 30 }]);
    // No plan sets it: the fallback.
    expect(property("extras", "enabled")).toMatchObject({ type: "enabled", value: { hasAccess: false, isFallback: true }, winner: { kind: "fallback" }, candidates: [] });
    // A feature workflow set it off over free's `on`.
    expect(property("reports", "enabled")).toMatchObject({ value: { hasAccess: false }, winner: { kind: "workflow", workflow: "reports-off" }, candidates: [{ plan: "free", value: { kind: "on" } }] });
    // Every property of every feature is there.
    expect(trace.properties).toHaveLength(6);

    // The metered read, consumed by the surface.
    const counterId = result.body.features.articles.properties.enabled.counterId;
    expect(trace.meter.status).toBe("ok");
    expect(trace.meter.readings).toEqual([
      expect.objectContaining({ counterId, featureSlug: "articles", property: "enabled", used: 1, limit: 5, remaining: 4, granted: true, consumedInRequest: true, consume: true }),
    ]);
    expect(trace.meter.credits).toEqual([]);

    // Workflows: what they were given (env as names) and returned.
    const promote = trace.workflows.find((workflow: any) => workflow.slug === "promote");
    expect(promote).toMatchObject({ type: "provisioning", ok: true, output: ["pro"] });
    expect(promote.input.env).toEqual(["CRM_TOKEN", "REGION"]);
    expect(promote.input.identity.identifier).toBe(identifier);
    const reportsOff = trace.workflows.find((workflow: any) => workflow.slug === "reports-off");
    expect(reportsOff).toMatchObject({ type: "feature", ok: true, output: { enabled: false } });
    expect(reportsOff.input.feature.featureSlug).toBe("reports");

    // Offers: the one shown, the one filtered out and why.
    expect(trace.offers.shown).toEqual([expect.objectContaining({ group: "paywall", slot: 0, offer: "yearly", variant: null })]);
    expect(trace.offers.filtered).toEqual([{ offer: "germany", reason: "countries" }]);

    expect(trace.denials).toEqual([
      { featureSlug: "extras", property: "enabled", reason: "no_plan" },
      { featureSlug: "reports", property: "enabled", reason: "workflow_override" },
    ]);
  });

  it("on an access check: no offers, and the same provenance", async () => {
    const result = await call("POST", "/api/v1/access-checks?trace=true", { key: org.live.secretKey, body: { identity: { userIdentifier: `reader-${crypto.randomUUID()}` } } });
    expect(result.status, JSON.stringify(result.body)).toBe(200);
    const { trace } = result.body;
    expect(trace.offers).toBeNull();
    expect(trace.plans).toEqual([{ slug: "free", source: "auto", detail: { category: "authenticated" } }]);
    const quota = trace.properties.find((entry: any) => entry.featureSlug === "widget" && entry.property === "quota");
    expect(quota).toMatchObject({ value: { value: 3 }, winner: { kind: "plan", plan: "free" }, candidates: [{ plan: "free", value: 3 }] });
    // An access check only reads: the counter is read, not consumed.
    expect(trace.meter.readings).toEqual([expect.objectContaining({ featureSlug: "articles", used: 0, consume: false, consumedInRequest: false })]);
  });
});
