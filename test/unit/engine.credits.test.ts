import { describe, expect, it } from "vitest";
import { ConfigDocument, type ConfigDocumentInput } from "../../schema/config";
import {
  creditsOrderKey,
  decide,
  denials,
  finish,
  priceAction,
  resolveFeatureStates,
  type CreditCosts,
  type CreditReading,
  type PricedResource,
} from "../../workers/engine";
import { featureIdFor, preparedOf, snapshotOf } from "./engineFixtures";

const AI = featureIdFor("ai-tools");
const TOKENS = `default:${AI}.tokens`;

const AI_TOOLS: ConfigDocumentInput = {
  features: {
    "ai-tools": {
      properties: {
        tokens: {
          type: "credits",
          costs: {
            base: 1,
            actions: { summarize: 2, generate: 5 },
            multipliers: [
              { when: { type: "model" }, factor: 5 },
              { when: { tag: "premium" }, factor: 2 },
            ],
          },
        },
      },
    },
  },
  plans: {
    free: { autoAssign: ["anonymous"], features: { "ai-tools": { enabled: "on", tokens: { credits: { amount: 20 } } } } },
    pro: { features: { "ai-tools": { enabled: "on", tokens: { credits: { amount: 1000, period: "month" } } } } },
    metered: { features: { "ai-tools": { enabled: { metered: { limit: 3, period: "day" } } } } },
  },
  surfaces: {
    playground: { consumes: ["ai-tools.tokens"] },
    both: { consumes: ["ai-tools.tokens", "ai-tools.enabled"] },
  },
};

function issues(input: unknown): { path: string; message: string }[] {
  const parsed = ConfigDocument.safeParse(input);
  if (parsed.success) return [];
  return parsed.error.issues.map((issue) => ({ path: issue.path.join("."), message: issue.message }));
}

describe("config: credits properties", () => {
  it("accepts the credits definition with defaults (base 1, conflict higher, onMeterFailure closed) and month allowances", () => {
    const doc = ConfigDocument.parse({
      features: { f: { properties: { t: { type: "credits" } } } },
      plans: { p: { features: { f: { t: { credits: { amount: 5 } } } } } },
      surfaces: { s: { consumes: ["f.t"] } },
    });
    expect(doc.features.f!.properties.t).toEqual({ type: "credits", costs: { base: 1 }, conflict: "higher", onMeterFailure: "closed" });
    expect(doc.plans.p!.features.f!.t).toEqual({ credits: { amount: 5, period: "month" } });
  });

  it.each([
    [{ t: { type: "credits", costs: { base: -1 } } }, "features.f.properties.t.costs.base"],
    [{ t: { type: "credits", costs: { actions: { generate: -2 } } } }, "features.f.properties.t.costs.actions.generate"],
    [{ t: { type: "credits", costs: { multipliers: [{ when: { type: "model" }, factor: 0 }] } } }, "features.f.properties.t.costs.multipliers.0.factor"],
    [{ t: { type: "credits", costs: { multipliers: [{ when: {}, factor: 2 }] } } }, "features.f.properties.t.costs.multipliers.0.when"],
    [{ t: { type: "credits", costs: { multipliers: [{ when: { colour: "red" }, factor: 2 }] } } }, "features.f.properties.t.costs.multipliers.0.when"],
    [{ t: { type: "credits", limit: 3 } }, "features.f.properties.t"],
  ])("rejects a bad definition %j at %s", (properties, path) => {
    expect(issues({ features: { f: { properties } } }).map((issue) => issue.path)).toContain(path);
  });

  it.each([
    [{ credits: { amount: -1 } }],
    [{ credits: { amount: 1.5 } }],
    [{ credits: { amount: 3, period: "fortnight" } }],
    [{ metered: { limit: 3 } }],
    [true],
    [10],
  ])("rejects the plan value %j for a credits property, at the value's path", (value) => {
    const found = issues({ features: { f: { properties: { t: { type: "credits" } } } }, plans: { p: { features: { f: { t: value } } } } });
    expect(found.length).toBeGreaterThan(0);
    expect(found.every((issue) => issue.path.startsWith("plans.p.features.f.t"))).toBe(true);
  });

  it("rejects a credits allowance on a property of another type", () => {
    const found = issues({
      features: { f: { properties: { n: { type: "number" } } } },
      plans: { p: { features: { f: { enabled: { credits: { amount: 3 } }, n: { credits: { amount: 3 } } } } } },
    });
    expect(found.map((issue) => issue.path).sort()).toEqual(["plans.p.features.f.enabled", "plans.p.features.f.n"]);
  });

  it("surfaces may consume enabled and credits properties, nothing else", () => {
    const found = issues({
      features: { f: { properties: { t: { type: "credits" }, n: { type: "number" } } } },
      surfaces: { s: { consumes: ["f.t", "f.enabled", "f.n"] } },
    });
    expect(found).toEqual([{ path: "surfaces.s.consumes.2", message: "f.n is not a meterable or credits property" }]);
  });

  it("compiles the definition with its costs and allowances to {kind: credits, amount, period}", async () => {
    const snapshot = await snapshotOf(AI_TOOLS);
    expect(snapshot.features[0]!.properties.find((property) => property.slug === "tokens")).toEqual({
      slug: "tokens",
      type: "credits",
      costs: (AI_TOOLS.features!["ai-tools"]!.properties!.tokens as { costs: unknown }).costs,
      conflict: "higher",
      onMeterFailure: "closed",
    });
    expect(snapshot.plans.find((plan) => plan.slug === "free")!.values[AI]).toEqual({
      enabled: { kind: "on" },
      tokens: { kind: "credits", amount: 20, period: "month" },
    });
  });
});

describe("priceAction", () => {
  const costs: CreditCosts = {
    base: 1,
    actions: { summarize: 2, generate: 5, free: 0 },
    multipliers: [
      { when: { type: "model" }, factor: 5 },
      { when: { tag: "premium" }, factor: 2 },
      { when: { type: "dataset", tag: "large" }, factor: 3 },
      { when: { tag: "discount" }, factor: 0.1 },
    ],
  };
  const cases: [string, string | undefined, PricedResource | undefined, number][] = [
    ["no action, no resource → base", undefined, undefined, 1],
    ["known action", "summarize", undefined, 2],
    ["unknown action → base", "translate", undefined, 1],
    ["inherited Object member is not an action", "constructor", undefined, 1],
    ["action priced 0", "free", { meta: { type: "model" } }, 0],
    ["type from meta", "generate", { meta: { type: "model" } }, 25],
    ["type from the resource itself", "generate", { type: "model" }, 25],
    ["tag from meta.tags", "summarize", { meta: { tags: ["premium"] } }, 4],
    ["tag from resource.tags", undefined, { tags: ["premium"] }, 2],
    ["type and tag: every matching multiplier", "generate", { id: "m1", meta: { type: "model", tags: ["premium"] } }, 50],
    ["type in meta, tag on the resource", "generate", { meta: { type: "model" }, tags: ["premium"] }, 50],
    ["a multiplier counts once even if both places match", undefined, { type: "model", meta: { type: "model", tags: ["premium"] }, tags: ["premium"] }, 10],
    ["a when with type AND tag needs both (only type)", undefined, { meta: { type: "dataset" } }, 1],
    ["a when with type AND tag needs both (both)", undefined, { meta: { type: "dataset", tags: ["large"] } }, 3],
    ["non-matching type and tags", "generate", { meta: { type: "article", tags: ["free"] } }, 5],
    ["tags that are not an array are ignored", undefined, { meta: { tags: "premium" } }, 1],
    ["a tag is matched exactly (no substring)", undefined, { meta: { tags: ["premium-plus"] } }, 1],
    ["fractions are rounded to 6 decimals", undefined, { tags: ["discount"], meta: { tags: ["discount"] } }, 0.1],
    ["fraction times 3", undefined, { meta: { type: "dataset", tags: ["large", "discount"] } }, 0.3],
  ];
  it.each(cases)("%s: action %j, resource %j → %d", (_name, action, resource, expected) => {
    expect(priceAction(costs, action, resource)).toBe(expected);
  });

  it("is deterministic and rounds to 6 decimals", () => {
    const thirds: CreditCosts = { base: 1, multipliers: [{ when: { tag: "t" }, factor: 1 / 3 }] };
    expect(priceAction(thirds, undefined, { tags: ["t"] })).toBe(0.333333);
    expect(priceAction(thirds, undefined, { tags: ["t"] })).toBe(priceAction(thirds, undefined, { tags: ["t"] }));
    expect(priceAction({ base: 0.1, multipliers: [{ when: { type: "x" }, factor: 3 }] }, undefined, { type: "x" })).toBe(0.3);
  });

  it("without multipliers or actions only the base counts", () => {
    expect(priceAction({ base: 7 }, "generate", { meta: { type: "model" } })).toBe(7);
  });
});

describe("priceAction: assets and bundles", () => {
  const costs: CreditCosts = {
    base: 1,
    actions: { render: 3 },
    multipliers: [{ when: { tag: "premium" }, factor: 2 }],
    assets: { logo: 4, font: 6, photo: 10, music: 20 },
    bundles: [
      { assets: ["logo", "font"], factor: 0.5 },
      { assets: ["font", "photo"], factor: 0.1 },
      { assets: ["photo", "music"], factor: 0.25 },
    ],
  };
  const cases: [string, string | undefined, PricedResource | undefined, number][] = [
    ["one listed asset costs its price", undefined, { assets: ["photo"] }, 10],
    ["listed assets add up", undefined, { assets: ["logo", "music"] }, 24],
    ["an unlisted asset costs the base", undefined, { assets: ["logo", "banner"] }, 5],
    ["an unlisted asset costs the action's price", "render", { assets: ["logo", "banner"] }, 7],
    ["assets from resource.meta.assets", undefined, { meta: { assets: ["logo", "music"] } }, 24],
    ["non-strings are ignored", undefined, { assets: ["logo", 7, null, { id: "x" }, "music"] }, 24],
    ["a name listed twice is priced once", undefined, { assets: ["logo", "logo"] }, 4],
    ["an empty list prices the action", "render", { assets: [] }, 3],
    ["assets that are not a list price the action", "render", { assets: "logo" }, 3],
    ["a bundle multiplies the sum of its own assets", undefined, { assets: ["logo", "font", "music"] }, 5 + 20],
    ["a later bundle cannot take an asset an earlier one took", undefined, { assets: ["logo", "font", "photo"] }, 5 + 10],
    ["bundles that do not overlap both apply", undefined, { assets: ["logo", "font", "photo", "music"] }, 5 + 7.5],
    ["a bundle needs all its assets", undefined, { assets: ["font", "music"] }, 26],
    ["multipliers apply after the assets", undefined, { assets: ["logo", "font"], tags: ["premium"] }, 10],
  ];
  it.each(cases)("%s: action %j, resource %j → %d", (_name, action, resource, expected) => {
    expect(priceAction(costs, action, resource)).toBe(expected);
  });

  it("without costs.assets the assets of a request change nothing", () => {
    expect(priceAction({ base: 2, actions: { render: 3 } }, "render", { assets: ["logo", "font"] })).toBe(3);
    expect(priceAction({ base: 2, bundles: [{ assets: ["logo", "font"], factor: 0.5 }] }, undefined, { assets: ["logo", "font"] })).toBe(2);
  });

  it("prices at most 100 distinct assets", () => {
    const many = Array.from({ length: 150 }, (_, index) => `asset-${index}`);
    expect(priceAction({ base: 1, assets: {} }, undefined, { assets: many })).toBe(100);
  });
});

describe("conflict resolution: credits allowances", () => {
  const allowance = (amount: number, period: string) => ({ credits: { amount, period } });
  it.each([
    ["higher", [allowance(20, "month"), allowance(1000, "month")], { amount: 1000, period: "month" }],
    ["lower", [allowance(20, "month"), allowance(1000, "month")], { amount: 20, period: "month" }],
    // Equal amounts: the shorter period grants more often, so it is higher.
    ["higher", [allowance(10, "month"), allowance(10, "day")], { amount: 10, period: "day" }],
    ["lower", [allowance(10, "month"), allowance(10, "day")], { amount: 10, period: "month" }],
    ["higher", [allowance(10, "lifetime"), allowance(10, "year")], { amount: 10, period: "year" }],
    ["higher", [allowance(0, "minute"), allowance(1, "lifetime")], { amount: 1, period: "lifetime" }],
  ])("%s of %j → %j", async (conflict, values, expected) => {
    const plans: Record<string, unknown> = {};
    values.forEach((value, i) => (plans[`v${i}`] = { features: { f: { t: value } } }));
    const prepared = await preparedOf({ features: { f: { properties: { t: { type: "credits", conflict } } } }, plans } as ConfigDocumentInput);
    for (const order of [values.map((_, i) => `v${i}`), values.map((_, i) => `v${i}`).reverse()]) {
      prepared.resolvedByPlanSet.clear();
      const [feature] = resolveFeatureStates(prepared, order);
      expect(feature!.properties.t).toEqual({ type: "credits", allowance: { kind: "credits", ...expected }, isFallback: false });
    }
  });

  it("no plan value → no allowance, isFallback", async () => {
    const prepared = await preparedOf({ features: { f: { properties: { t: { type: "credits" } } } } });
    expect(resolveFeatureStates(prepared, [])[0]!.properties.t).toEqual({ type: "credits", allowance: undefined, isFallback: true });
  });

  it("creditsOrderKey is a total order: amount first, then the shorter period", () => {
    expect(creditsOrderKey({ kind: "credits", amount: 2, period: "lifetime" })).toBeGreaterThan(creditsOrderKey({ kind: "credits", amount: 1, period: "minute" }));
    expect(creditsOrderKey({ kind: "credits", amount: 1, period: "minute" })).toBeGreaterThan(creditsOrderKey({ kind: "credits", amount: 1, period: "hour" }));
  });
});

describe("decide: credit requests", async () => {
  const prepared = await preparedOf(AI_TOOLS);

  it("surface decisions consume the credits the surface consumes, priced by action and resource, with the plan allowance", () => {
    const decision = decide({
      prepared,
      storeId: "default",
      surfaceSlug: "playground",
      action: "generate",
      resource: { id: "gpt", meta: { type: "model", tags: ["premium"] } },
    });
    expect(decision.planSlugs).toEqual(["free"]);
    expect(decision.creditRequests).toEqual([{ creditId: TOKENS, cost: 50, consume: true, grant: { amount: 20, period: "month" } }]);
    expect(decision.meterRequests).toEqual([]);
  });

  it("access checks only read; the highest allowance of the plans is granted", () => {
    const decision = decide({ prepared, storeId: "default", workflowPlanSlugs: ["pro"], action: "summarize" });
    expect(decision.creditRequests).toEqual([{ creditId: TOKENS, cost: 2, consume: false, grant: { amount: 1000, period: "month" } }]);
  });

  it("a plan's carryOver travels with its allowance's grant", async () => {
    const withCarryOver = structuredClone(AI_TOOLS);
    (withCarryOver.plans!.pro!.features!["ai-tools"]!.tokens as { credits: Record<string, unknown> }).credits.carryOver = 250;
    const decision = decide({ prepared: await preparedOf(withCarryOver), storeId: "default", workflowPlanSlugs: ["pro"] });
    expect(decision.creditRequests).toEqual([{ creditId: TOKENS, cost: 1, consume: false, grant: { amount: 1000, period: "month", carryOver: 250 } }]);
  });

  it("no allowance → a request without a grant (balance from top-ups only)", () => {
    const decision = decide({ prepared, storeId: "default", category: "authenticated" });
    expect(decision.creditRequests).toEqual([{ creditId: TOKENS, cost: 1, consume: false }]);
  });

  it("a surface consuming a metered counter and credits sends both in one decision", () => {
    const decision = decide({ prepared, storeId: "default", surfaceSlug: "both", category: "authenticated", workflowPlanSlugs: ["metered"] });
    expect(decision.meterRequests).toEqual([{ counterId: `default:${AI}.enabled`, limit: 3, period: "day", uniqueResources: false, consume: true }]);
    expect(decision.creditRequests[0]).toMatchObject({ creditId: TOKENS, consume: true, cost: 1 });
  });
});

describe("finish / denials: credits", async () => {
  const prepared = await preparedOf(AI_TOOLS);
  const decision = decide({ prepared, storeId: "default", surfaceSlug: "playground", action: "generate", resource: { meta: { type: "model" } } });
  const read = (overrides: Partial<CreditReading>): Map<string, CreditReading> =>
    new Map([[TOKENS, { creditId: TOKENS, hasAccess: true, balance: 15, cost: 25, deductedInRequest: true, ...overrides }]]);

  it("renders a reading", () => {
    const features = finish(decision, new Map(), undefined, read({}));
    expect(features["ai-tools"]!.properties.tokens).toEqual({
      type: "credits",
      creditId: TOKENS,
      hasAccess: true,
      isFallback: false,
      balance: 15,
      cost: 25,
      deductedInRequest: true,
    });
    expect(denials(features, { only: [{ featureSlug: "ai-tools", property: "tokens" }] })).toEqual([]);
  });

  it("insufficient credits: hasAccess false with the reason, and a denial", () => {
    const features = finish(decision, new Map(), undefined, read({ hasAccess: false, balance: 20, deductedInRequest: false, reason: "insufficient_credits" }));
    expect(features["ai-tools"]!.properties.tokens).toMatchObject({ hasAccess: false, reason: "insufficient_credits", balance: 20 });
    expect(denials(features)).toContainEqual({ featureSlug: "ai-tools", property: "tokens", reason: "insufficient_credits" });
  });

  it("meter failure: onMeterFailure decides, isFallback true, the price is still shown", async () => {
    const closed = finish(decision, undefined, "unreachable", read({}));
    expect(closed["ai-tools"]!.properties.tokens).toEqual({ type: "credits", creditId: TOKENS, hasAccess: false, isFallback: true, cost: 25, deductedInRequest: false });
    expect(denials(closed)).toContainEqual({ featureSlug: "ai-tools", property: "tokens", reason: "meter_unavailable" });

    const openDoc = structuredClone(AI_TOOLS) as any;
    openDoc.features["ai-tools"].properties.tokens.onMeterFailure = "open";
    const open = decide({ prepared: await preparedOf(openDoc), storeId: "default", surfaceSlug: "playground" });
    expect(finish(open, undefined, "unreachable")["ai-tools"]!.properties.tokens).toMatchObject({ hasAccess: true, isFallback: true, cost: 1 });
  });

  it("refused only because another counter of the request had no room → limit_reached", () => {
    const features = finish(decision, new Map(), undefined, read({ hasAccess: false, balance: 100, deductedInRequest: false }));
    expect(denials(features)).toContainEqual({ featureSlug: "ai-tools", property: "tokens", reason: "limit_reached" });
  });
});
