import { describe, expect, it } from "vitest";
import { counterIdFor, decide, denials, finish, meterRequestsFor, renderFeatures, resolveFeatureStates, UNLIMITED_UNITS, type MeterReading } from "../../workers/engine";
import { reportedReading } from "../../workers/engine/meters";
import { featureIdFor, NEWS_SITE, preparedOf } from "./engineFixtures";

const ARTICLES = featureIdFor("articles");
const COMMENTS = featureIdFor("comments");

function reading(counterId: string, overrides: Partial<MeterReading> = {}): MeterReading {
  return {
    counterId,
    hasAccess: true,
    consumedUnits: 1,
    remainingUnits: 2,
    totalUnits: 3,
    periodStart: "2026-11-01T00:00:00.000Z",
    uniqueResources: true,
    resourceIdUsed: false,
    consumedInRequest: true,
    consumedUnitsInRequest: 1,
    excessUnitsInRequest: 0,
    ...overrides,
  };
}

describe("counterIdFor", () => {
  it("is {storeId}:{featureId}.{property}", () => {
    expect(counterIdFor("default", "feat_ab12cd34", "enabled")).toBe("default:feat_ab12cd34.enabled");
  });
});

describe("meterRequestsFor", async () => {
  const prepared = await preparedOf(NEWS_SITE);

  it("asks for every metered property, consuming only what the surface consumes", () => {
    const base = resolveFeatureStates(prepared, ["anonymous"]);
    const counterId = `production:${ARTICLES}.enabled`;
    expect(meterRequestsFor(prepared, base, "production")).toEqual([{ counterId, limit: 3, period: "month", uniqueResources: true, consume: false }]);
    expect(meterRequestsFor(prepared, base, "production", [{ featureId: ARTICLES, property: "enabled" }])).toEqual([
      { counterId, limit: 3, period: "month", uniqueResources: true, consume: true },
    ]);
    expect(meterRequestsFor(prepared, base, "production", [{ featureId: COMMENTS, property: "enabled" }])[0]!.consume).toBe(false);
  });

  it("asks for nothing when no resolved setting is metered", () => {
    expect(meterRequestsFor(prepared, resolveFeatureStates(prepared, ["anonymous", "registered"]), "production")).toEqual([]);
    expect(meterRequestsFor(prepared, resolveFeatureStates(prepared, []), "production")).toEqual([]);
  });
});

describe("renderFeatures", async () => {
  const prepared = await preparedOf(NEWS_SITE);
  const articlesCounter = `default:${ARTICLES}.enabled`;
  const commentsCounter = `default:${COMMENTS}.enabled`;

  it("on / off / unassigned, and value properties", () => {
    const features = renderFeatures(resolveFeatureStates(prepared, ["premium"]), "default", undefined);
    expect(Object.keys(features)).toEqual(["articles", "comments"]);
    expect(features.articles).toEqual({
      featureId: ARTICLES,
      featureSlug: "articles",
      properties: {
        enabled: { type: "meterable", counterId: articlesCounter, hasAccess: true, isFallback: false },
        premium: { type: "boolean", value: true, isFallback: false },
        quality: { type: "string", value: "ultra", isFallback: false },
      },
    });
    // comments: no provisioned plan sets it → fallback off.
    expect(features.comments).toEqual({
      featureId: COMMENTS,
      featureSlug: "comments",
      properties: { enabled: { type: "meterable", counterId: commentsCounter, hasAccess: false, isFallback: true } },
    });
  });

  it("an explicit off is not a fallback; an 'on' fallback grants", async () => {
    const custom = await preparedOf({
      features: { a: {}, b: { properties: { enabled: { type: "enabled", fallback: "on" } } } },
      plans: { p: { features: { a: { enabled: "off" } } } },
    });
    const features = renderFeatures(resolveFeatureStates(custom, ["p"]), "s", undefined);
    expect(features.a!.properties.enabled).toEqual({ type: "meterable", counterId: `s:${featureIdFor("a")}.enabled`, hasAccess: false, isFallback: false });
    expect(features.b!.properties.enabled).toEqual({ type: "meterable", counterId: `s:${featureIdFor("b")}.enabled`, hasAccess: true, isFallback: true });
  });

  it("metered with a reading: every reading field and the reading's access", () => {
    const base = resolveFeatureStates(prepared, ["anonymous"]);
    const denied = reading(articlesCounter, { hasAccess: false, consumedUnits: 3, remainingUnits: 0, consumedInRequest: false, consumedUnitsInRequest: 0, excessUnitsInRequest: 1 });
    const features = renderFeatures(base, "default", new Map([[articlesCounter, denied]]));
    expect(features.articles!.properties.enabled).toEqual({
      type: "meterable",
      counterId: articlesCounter,
      hasAccess: false,
      isFallback: false,
      consumedUnits: 3,
      remainingUnits: 0,
      totalUnits: 3,
      periodStart: "2026-11-01T00:00:00.000Z",
      uniqueResources: true,
      resourceIdUsed: false,
      consumedInRequest: false,
      consumedUnitsInRequest: 0,
      excessUnitsInRequest: 1,
    });
    expect(features.articles!.properties.quality).toEqual({ type: "string", value: "standard", isFallback: false });
  });

  it("metered while the meter failed: onMeterFailure decides, marked isFallback", async () => {
    const base = resolveFeatureStates(prepared, ["anonymous"]);
    // articles fails OPEN in NEWS_SITE; readings are ignored once a failure is reported.
    const open = renderFeatures(base, "default", new Map([[articlesCounter, reading(articlesCounter, { hasAccess: false })]]), "unreachable");
    expect(open.articles!.properties.enabled).toEqual({ type: "meterable", counterId: articlesCounter, hasAccess: true, isFallback: true });

    const closedConfig = await preparedOf({ features: { a: {} }, plans: { p: { features: { a: { enabled: { metered: { limit: 5 } } } } } } });
    const closed = renderFeatures(resolveFeatureStates(closedConfig, ["p"]), "default", undefined, "unreachable");
    expect(closed.a!.properties.enabled).toEqual({ type: "meterable", counterId: `default:${featureIdFor("a")}.enabled`, hasAccess: false, isFallback: true });
    const counterId = `default:${featureIdFor("a")}.enabled`;
    expect(denials(closed, { metered: new Set([counterId]) })).toEqual([{ featureSlug: "a", property: "enabled", reason: "meter_unavailable" }]);
    // The same state, for a decision that never asked the meter, is a plain fallback: the answer depends only on the arguments.
    expect(denials(closed)).toEqual([{ featureSlug: "a", property: "enabled", reason: "no_plan" }]);
  });
});

describe("denials", async () => {
  const prepared = await preparedOf({
    features: { gone: {}, never: {}, spent: {}, fine: {} },
    plans: { p: { features: { gone: { enabled: "off" }, spent: { enabled: { metered: { limit: 1 } } }, fine: { enabled: "on" } } } },
  });
  const base = resolveFeatureStates(prepared, ["p"]);
  const spentCounter = `s:${featureIdFor("spent")}.enabled`;
  const features = renderFeatures(base, "s", new Map([[spentCounter, reading(spentCounter, { hasAccess: false })]]));

  it("lists every meterable property without access, with the reason", () => {
    expect(denials(features)).toEqual([
      { featureSlug: "gone", property: "enabled", reason: "off" },
      { featureSlug: "never", property: "enabled", reason: "no_plan" },
      { featureSlug: "spent", property: "enabled", reason: "limit_reached" },
    ]);
  });

  it("can be limited to given properties (what a surface consumes)", () => {
    expect(denials(features, { only: [{ featureSlug: "spent", property: "enabled" }] })).toEqual([{ featureSlug: "spent", property: "enabled", reason: "limit_reached" }]);
    expect(denials(features, { only: [{ featureSlug: "fine", property: "enabled" }] })).toEqual([]);
  });

  it("a property a feature workflow set off is a workflow_override, whatever plans and the meter said", () => {
    const fine = features.fine!;
    const spent = features.spent!;
    const overridden = {
      ...features,
      fine: { ...fine, properties: { enabled: { ...fine.properties.enabled!, hasAccess: false, isFallback: false } } },
      spent: { ...spent, properties: { enabled: { ...spent.properties.enabled!, hasAccess: false, isFallback: false } } },
    } as typeof features;
    const byWorkflow = [
      { featureSlug: "fine", property: "enabled" },
      { featureSlug: "spent", property: "enabled" },
    ];
    expect(denials(overridden, { overridden: byWorkflow })).toEqual([
      { featureSlug: "fine", property: "enabled", reason: "workflow_override" },
      { featureSlug: "gone", property: "enabled", reason: "off" },
      { featureSlug: "never", property: "enabled", reason: "no_plan" },
      { featureSlug: "spent", property: "enabled", reason: "workflow_override" },
    ]);
  });
});

describe("decide → finish", async () => {
  const prepared = await preparedOf(NEWS_SITE);
  const anonymous = { isAuthenticated: false };

  it("an anonymous reader on the article page: the metered allowance is consumed", () => {
    const decision = decide({ prepared, identity: anonymous, bot: undefined, storeId: "default", surfaceSlug: "article-page" });
    expect(decision.category).toBe("anonymous");
    expect(decision.planSlugs).toEqual(["anonymous"]);
    expect(decision.meterRequests).toEqual([{ counterId: `default:${ARTICLES}.enabled`, limit: 3, period: "month", uniqueResources: true, consume: true }]);
    const counterId = decision.meterRequests[0]!.counterId;
    const features = finish(decision, new Map([[counterId, reading(counterId)]]));
    expect(features.articles!.properties.enabled).toMatchObject({ hasAccess: true, consumedUnits: 1, remainingUnits: 2, isFallback: false });
  });

  it("an access check consumes nothing; Stripe and workflow plans stack", () => {
    const decision = decide({
      prepared,
      identity: { isAuthenticated: true },
      bot: undefined,
      stripeProductIds: ["prod_premium_yearly"],
      workflowPlanSlugs: ["anonymous", "gold"],
      storeId: "default",
    });
    expect(decision.planSlugs).toEqual(["registered", "premium", "anonymous"]);
    expect(decision.unknownPlanSlugs).toEqual(["gold"]);
    // premium and registered are "on", which beats anonymous's metered allowance: nothing to meter.
    expect(decision.meterRequests).toEqual([]);
    expect(finish(decision, undefined).articles!.properties).toMatchObject({ enabled: { hasAccess: true }, premium: { value: true }, quality: { value: "ultra" } });
  });

  it("a verified AI agent gets the ai-agent plan; an explicit category wins", () => {
    const bot = { category: "ai-assistant" as const, code: "chatgpt-user", isVerified: true, operator: "OpenAI", product: "ChatGPT" };
    expect(decide({ prepared, identity: anonymous, bot, storeId: "default" }).planSlugs).toEqual(["ai-agents"]);
    expect(decide({ prepared, identity: anonymous, bot, category: "search-crawler", storeId: "default" }).planSlugs).toEqual(["search-crawlers"]);
  });
});

describe("a plan's `on` over another plan's metered setting (the tutorial's Premium over Registered)", async () => {
  const prepared = await preparedOf({
    features: { widget: { properties: { enabled: { type: "enabled", fallback: "off" } } } },
    plans: {
      registered: { autoAssign: ["authenticated"], features: { widget: { enabled: { metered: { limit: 3, period: "lifetime" } } } } },
      premium: { features: { widget: { enabled: "on" } } },
    },
    surfaces: { "hello-world": { consumes: ["widget.enabled"] } },
  });
  const WIDGET = featureIdFor("widget");
  const counterId = `default:${WIDGET}.enabled`;
  const premium = () => decide({ prepared, identity: { isAuthenticated: true }, workflowPlanSlugs: ["premium"], storeId: "default", surfaceSlug: "hello-world" });

  it("asks the meter for the counter without a limit, consuming what the surface consumes, and no limit of the user's", () => {
    const decision = premium();
    expect(decision.planSlugs).toEqual(["registered", "premium"]);
    expect(decision.meterRequests).toEqual([]);
    // The overridden setting's limit rides along, for reporting only.
    expect(decision.unlimitedMeterRequests).toEqual([{ counterId, limit: UNLIMITED_UNITS, period: "lifetime", uniqueResources: false, consume: true, overriddenLimit: 3 }]);
    const check = decide({ prepared, identity: { isAuthenticated: true }, workflowPlanSlugs: ["premium"], storeId: "default" });
    expect(check.unlimitedMeterRequests).toEqual([{ counterId, limit: UNLIMITED_UNITS, period: "lifetime", uniqueResources: false, consume: false, overriddenLimit: 3 }]);
    // Premium alone meters nothing: no counter, no meter call for it.
    expect(decide({ prepared, workflowPlanSlugs: ["premium"], category: "search-crawler", storeId: "default" }).unlimitedMeterRequests).toEqual([]);
  });

  it("reports the counter's readings with access granted, the same fields as a metered property, limit and remainder those of the overridden metered setting", () => {
    const answered = reading(counterId, { consumedUnits: 7, remainingUnits: UNLIMITED_UNITS - 7, totalUnits: UNLIMITED_UNITS, periodStart: "1970-01-01T00:00:00.000Z", uniqueResources: false });
    const features = finish(premium(), new Map([[counterId, answered]]));
    const metered = finish(decide({ prepared, identity: { isAuthenticated: true }, storeId: "default", surfaceSlug: "hello-world" }), new Map([[counterId, reading(counterId)]]));
    expect(features.widget!.properties.enabled).toEqual({
      type: "meterable",
      counterId,
      hasAccess: true,
      isFallback: false,
      consumedUnits: 7,
      remainingUnits: 0,
      totalUnits: 3,
      periodStart: "1970-01-01T00:00:00.000Z",
      uniqueResources: false,
      resourceIdUsed: false,
      consumedInRequest: true,
      consumedUnitsInRequest: 1,
      excessUnitsInRequest: 0,
    });
    expect(Object.keys(features.widget!.properties.enabled!).sort()).toEqual(Object.keys(metered.widget!.properties.enabled!).sort());
    // Refused only because another counter of the all-or-nothing request had no room: still unlimited access.
    const refused = finish(premium(), new Map([[counterId, reading(counterId, { hasAccess: false, consumedInRequest: false, consumedUnitsInRequest: 0, excessUnitsInRequest: 1 })]]));
    expect(refused.widget!.properties.enabled).toMatchObject({ hasAccess: true, consumedInRequest: false, totalUnits: 3 });
    expect(denials(refused)).toEqual([]);
  });

  it("outside the response (triggers, counter updates) its readings are reported as the response renders them; others as the meter gave them", () => {
    const decision = premium();
    const answered = reading(counterId, { consumedUnits: 7, remainingUnits: UNLIMITED_UNITS - 7, totalUnits: UNLIMITED_UNITS, periodStart: "1970-01-01T00:00:00.000Z", uniqueResources: false });
    const rendered = finish(decision, new Map([[counterId, answered]])).widget!.properties.enabled!;
    const { type: _type, isFallback: _isFallback, ...renderedReading } = rendered as Record<string, unknown>;
    expect(reportedReading(answered, decision.unlimitedMeterRequests)).toEqual(renderedReading);
    expect(reportedReading({ ...answered, consumedUnits: 1 }, decision.unlimitedMeterRequests)).toMatchObject({ totalUnits: 3, remainingUnits: 2, hasAccess: true });
    // A metered counter's reading, or one with no unlimited request, is the meter's own.
    const other = reading("default:feat_other.enabled");
    expect(reportedReading(other, decision.unlimitedMeterRequests)).toBe(other);
    expect(reportedReading(answered, [])).toBe(answered);
  });

  it("without a reading (the meter failed) it is plain `on`: the meter cannot take unlimited access away", () => {
    const features = finish(premium(), undefined, "unreachable");
    expect(features.widget!.properties.enabled).toEqual({ type: "meterable", counterId, hasAccess: true, isFallback: false });
  });

  it("a workflow that denies it is an `off`, not a reached limit", () => {
    const decision = premium();
    const features = finish(decision, new Map([[counterId, reading(counterId)]]));
    const denied = { widget: { ...features.widget!, properties: { enabled: { ...features.widget!.properties.enabled!, hasAccess: false } } } };
    const metered = new Set(decision.meterRequests.map((request) => request.counterId));
    expect(denials(denied, { metered })).toEqual([{ featureSlug: "widget", property: "enabled", reason: "off" }]);
  });
});
